"""Tokenizers: characters, ARPAbet phonemes (CMUdict), espeak-ng phonemes.

Every tokenizer maps raw text -> `normalize_text` -> a list of symbols -> int32 ids of its versioned
`SymbolTable`. Phoneme tokenizers emit, per clause, the phonemes of its words followed by the clause mark
(`, . ? !`), which stands for the pause that ends the clause. No word boundaries are emitted by phoneme tokenizers;
the character tokenizer keeps spaces.

Errors: empty text -> `EmptyTextError`; a character the normalizer cannot map -> `UnsupportedCharacterError`;
too long -> `TextTooLongError`; a symbol outside the table (e.g. a phoneme a newer espeak invents) ->
`UnknownSymbolError`, except that the espeak tokenizer's `encode` maps the few mnemonics espeak emits only in rare
phrase contexts to their nearest table symbol (`symbol_fallback`) and says so with a `SymbolSubstitutionWarning`.
Nothing is dropped or changed silently.
"""

from __future__ import annotations

import warnings

import numpy as np

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.text.cmudict_g2p import word_to_arpabet
from mmspeech_jax.text.espeak import Voice, espeak_engine
from mmspeech_jax.text.normalize import DEFAULT_MAX_CHARS, normalize_text, split_clauses
from mmspeech_jax.text.symbol_fallback import SymbolSubstitutionWarning, substitute
from mmspeech_jax.text.symbols import SymbolTable, arpabet_table, character_table, espeak_table

TOKENIZERS = ("characters", "arpabet", "espeak")


class Tokenizer:
    """Base: subclasses define `kind`, `table` and `_symbols(normalized_text)`."""

    kind: str
    table: SymbolTable

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS):
        self.max_chars = max_chars

    def normalize(self, text: str) -> str:
        """`normalize_text` with this tokenizer's length limit (one-line errors for empty, unsupported or too long text)."""
        return normalize_text(text, max_chars=self.max_chars)

    def tokens(self, text: str, *, normalized: bool = False) -> list[str]:
        """Text -> symbols. Pass `normalized=True` for text that already went through `normalize_text`."""
        return self._symbols(text if normalized else self.normalize(text))

    def encode(self, text: str, *, normalized: bool = False) -> np.ndarray:
        """Text -> (N,) int32 ids."""
        return np.asarray(self.table.ids(self.tokens(text, normalized=normalized)), dtype=np.int32)

    def decode(self, ids) -> list[str]:
        """ids -> symbols, padding removed."""
        return [s for s in self.table.lookup(ids) if s != self.table.symbols[0]]

    def _symbols(self, normalized: str) -> list[str]:
        raise NotImplementedError


class CharacterTokenizer(Tokenizer):
    """Characters of the normalized text (33 symbols: a-z, apostrophe, space, , . ? ! and padding)."""
    kind = "characters"
    table = character_table()

    def _symbols(self, normalized: str) -> list[str]:
        return list(normalized)

    def decode_text(self, ids) -> str:
        """Ids -> the text they spell."""
        return "".join(self.decode(ids))


class ArpabetTokenizer(Tokenizer):
    """CMUdict ARPAbet phonemes with stress, each clause followed by its mark; out-of-vocabulary words by the
    documented fallback (`cmudict_g2p`)."""
    kind = "arpabet"
    table = arpabet_table()

    def _symbols(self, normalized: str) -> list[str]:
        out = []
        for words, mark in split_clauses(normalized):
            for word in words.split():
                out += word_to_arpabet(word)[0]
            out.append(mark)
        return out


class EspeakTokenizer(Tokenizer):
    """espeak-ng phonemes via espeak_TextToPhonemes, the same symbols as the embedded corpus's phoneme events."""

    kind = "espeak"
    table = espeak_table()

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, language: str = "en-us"):
        super().__init__(max_chars)
        self.voice = Voice(language)

    def _symbols(self, normalized: str) -> list[str]:
        engine = espeak_engine()
        out = []
        for words, mark in split_clauses(normalized):
            for phonemes in engine.phonemize(words, self.voice):
                out += phonemes
            out.append(mark)
        return out

    def encode(self, text: str, *, normalized: bool = False) -> np.ndarray:
        """Text -> (N,) int32 ids; a phoneme outside the table becomes its `symbol_fallback.nearest_symbol`, with
        one `SymbolSubstitutionWarning` naming every substitution (`UnknownSymbolError` when none is near)."""
        symbols, made = substitute(self.tokens(text, normalized=normalized), self.table)
        if made:
            pairs = ", ".join(f"{a!r} -> {b!r}" for a, b in made)
            warnings.warn(SymbolSubstitutionWarning(f"phonemes outside the {self.table.name} table "
                                                    f"({self.table.version}) replaced: {pairs}"), stacklevel=2)
        return np.asarray(self.table.ids(symbols), dtype=np.int32)


def make_tokenizer(kind: str, **kwargs) -> Tokenizer:
    """Builds a tokenizer by name: "characters", "arpabet" or "espeak"."""
    classes = {"characters": CharacterTokenizer, "arpabet": ArpabetTokenizer, "espeak": EspeakTokenizer}
    if kind not in classes:
        raise ConfigError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")
    return classes[kind](**kwargs)
