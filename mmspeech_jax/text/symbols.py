"""Versioned symbol tables. A trained model saves its table (`symbols.json`) and refuses one that differs.

Id 0 is always the padding symbol "<pad>" (also usable as the CTC blank). The four clause marks `, . ? !` are
symbols in every table: they are where a speaker pauses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from mmspeech_jax.errors import CorpusMismatchError, UnknownSymbolError
from mmspeech_jax.text.alphabet import PUNCTUATION

PAD = "<pad>"

ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
ARPABET_CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
                      "T", "TH", "V", "W", "Y", "Z", "ZH")


@dataclasses.dataclass(frozen=True)
class SymbolTable:
    """An ordered, versioned list of symbols. ids are positions; id 0 is `PAD`."""

    name: str
    version: str
    symbols: tuple[str, ...]

    def __post_init__(self):
        if not self.symbols or self.symbols[0] != PAD:
            raise ValueError(f"SymbolTable {self.name}: symbol 0 must be {PAD!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"SymbolTable {self.name}: duplicate symbols")
        object.__setattr__(self, "_index", {s: i for i, s in enumerate(self.symbols)})

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index

    @property
    def pad_id(self) -> int:
        """The padding id, always 0 (also the CTC blank and the LM's sentence boundary)."""
        return 0

    def id(self, symbol: str) -> int:
        """The id of one symbol; `UnknownSymbolError` (one line) when it is not in the table."""
        try:
            return self._index[symbol]
        except KeyError:
            raise UnknownSymbolError(f"symbol {symbol!r} is not in the {self.name} table ({self.version})") from None

    def ids(self, symbols) -> list[int]:
        """Ids of a sequence of symbols (each as `id`)."""
        return [self.id(s) for s in symbols]

    def lookup(self, ids) -> list[str]:
        """Symbols of a sequence of ids."""
        return [self.symbols[int(i)] for i in ids]

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the table's name, version and symbols."""
        return hashlib.sha256("\n".join((self.name, self.version) + self.symbols).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        """The table as symbols.json holds it (with its fingerprint)."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint, "symbols": list(self.symbols)}

    @classmethod
    def from_json(cls, data: dict) -> "SymbolTable":
        """Inverse of `to_json`; `CorpusMismatchError` when the stored fingerprint disagrees (an edited file)."""
        table = cls(data["name"], data["version"], tuple(data["symbols"]))
        if "fingerprint" in data and data["fingerprint"] != table.fingerprint:
            raise CorpusMismatchError(f"symbol table {table.name}: fingerprint mismatch (file edited or corrupt)")
        return table

    def save(self, path: str | os.PathLike) -> Path:
        """Write symbols.json atomically to `path`; returns the path."""
        path = Path(path)
        from mmspeech_jax.workdir import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SymbolTable":
        """Reads `symbols.json`; a missing or damaged file is a one-line `WorkdirDamagedError`."""
        from mmspeech_jax.errors import WorkdirDamagedError

        path = Path(path)
        if not path.is_file():
            raise WorkdirDamagedError(f"{path} is missing: the symbol table a model was trained with must stay "
                                      f"beside its checkpoints")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise WorkdirDamagedError(f"{path} is damaged ({type(exc).__name__}: {exc})") from None

    def check_compatible(self, other: "SymbolTable") -> None:
        """Raises `CorpusMismatchError` unless both tables assign the same ids."""
        if self.fingerprint != other.fingerprint:
            raise CorpusMismatchError(
                f"symbol table mismatch: {self.name} {self.version} ({self.fingerprint}) vs "
                f"{other.name} {other.version} ({other.fingerprint})"
            )


def character_table() -> SymbolTable:
    """Normalized-text characters: pad, space, apostrophe, clause marks, a-z."""
    return SymbolTable("characters", "chars-v1", (PAD, " ", "'") + PUNCTUATION + tuple("abcdefghijklmnopqrstuvwxyz"))


def arpabet_table() -> SymbolTable:
    """CMUdict ARPAbet: 24 consonants, 15 vowels x stress 0/1/2, clause marks."""
    vowels = tuple(f"{v}{stress}" for v in ARPABET_VOWELS for stress in "012")
    return SymbolTable("arpabet", "arpabet-v1", (PAD,) + PUNCTUATION + ARPABET_CONSONANTS + vowels)


def espeak_table() -> SymbolTable:
    """espeak-ng en-us phoneme mnemonics (from the packaged inventory), clause marks."""
    text = resources.files("mmspeech_jax.text").joinpath("espeak_en_us_phonemes.txt").read_text()
    phonemes = tuple(line for line in text.splitlines() if line and not line.startswith("#"))
    return SymbolTable("espeak-en-us", "espeak-en-us-v1", (PAD,) + PUNCTUATION + phonemes)
