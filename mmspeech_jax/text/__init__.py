"""Text front-end: English normalization, symbol tables and tokenizers (characters, ARPAbet, espeak-ng)."""

from mmspeech_jax.text.normalize import normalize_text, split_clauses
from mmspeech_jax.text.symbols import SymbolTable, arpabet_table, character_table, espeak_table
from mmspeech_jax.text.tokenizer import (ArpabetTokenizer, CharacterTokenizer, EspeakTokenizer, Tokenizer,
                                         make_tokenizer)

__all__ = ["ArpabetTokenizer", "CharacterTokenizer", "EspeakTokenizer", "SymbolTable", "Tokenizer",
           "arpabet_table", "character_table", "espeak_table", "make_tokenizer", "normalize_text", "split_clauses"]
