"""Natural English sentences for the embedded corpus and the language model, read from installed Debian packages.

Two sources, both installed by `make install` (Debian packages; nothing is fetched at run time):

  * WordNet 3.0 usage examples (`wordnet-base`, /usr/share/wordnet/data.*): the quoted examples in the synset
    glosses ("she put the slippers under the bed neatly"). WordNet 3.0 licence (permissive, with notice).
  * Fortune cookies (`fortunes`, /usr/share/games/fortunes): the non-offensive collections, split into sentences.
    BSD-style licence of fortune-mod; the offensive collections are a separate package that is never read.

Every sentence is checked for speakability: only characters the normalizer maps (`normalize_text` must accept it),
MIN_WORDS..MAX_WORDS words, no quoted-word metalanguage (WordNet's `which' examples), no fortune dialogue markers.
The result is sorted and deduplicated, so it does not depend on file order; `text_fingerprint` names its content
(a corpus built from it records the fingerprint, so a changed package gives a new corpus, never a silently
different one).

The natural evaluation set (`natural_eval.txt` beside this file: hand-written everyday sentences, a source disjoint
from both packages) is removed from the training text by normalized form, and is never used for training or
tuning: `evaluation_sentences()` is what reports score models on.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

from mmspeech_jax.errors import TextError, TextSourceError
from mmspeech_jax.text.normalize import normalize_text

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
# Collections that are not prose: pictures, another language, code, and the Debian/Linux/Perl in-jokes full of
# commands and identifiers a speaker cannot say.
FORTUNE_EXCLUDED = frozenset({"art", "ascii-art", "translate-me", "debian", "linux", "linuxcookie", "perl",
                              "knghtbrd", "zippy"})
MIN_WORDS, MAX_WORDS = 3, 24
TEXT_RULES_VERSION = 1  # bump when the selection rules below change: corpora record it through source_fingerprint
SOURCES = {
    "wordnet": "WordNet 3.0 usage examples (Debian wordnet-base; WordNet 3.0 licence, Princeton University)",
    "fortunes": "fortune-mod cookies, non-offensive collections (Debian fortunes; BSD-style licence)",
}
_ALLOWED = re.compile(r"[A-Za-z0-9 ,.;:?!'$%&-]+")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z0-9])")


def speakable(sentence: str) -> bool:
    """Whether a candidate sentence is kept: plain characters, MIN_WORDS..MAX_WORDS words, accepted by the normalizer."""
    return _normalized_if_speakable(sentence) is not None


def _normalized_if_speakable(sentence: str) -> str | None:
    if not _ALLOWED.fullmatch(sentence) or not MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
        return None
    if not sentence[0].isalpha() or re.search(r"[A-Za-z]'[a-z]*'|\s'|'\s|[:;]$|\b[A-Z]{4,}\b|\d{5,}", sentence):
        return None  # quoted words, a dangling quote, a heading, shouting, long digit strings
    try:
        return normalize_text(sentence)
    except TextError:
        return None


def _capitalized(sentence: str) -> str:
    sentence = sentence.strip().rstrip(";:,")
    if sentence[-1:] not in (".", "?", "!"):
        sentence += "."
    return sentence[0].upper() + sentence[1:]


def wordnet_examples(directory: str | os.PathLike = WORDNET_DIR) -> tuple[str, ...]:
    """The quoted usage examples of WordNet's data files, as written (unchecked, in file order)."""
    directory = Path(directory)
    missing = [name for name in WORDNET_FILES if not (directory / name).is_file()]
    if missing:
        raise TextSourceError(f"WordNet data not found in {directory} (missing {', '.join(missing)}): install the "
                              "Debian package wordnet-base (`make install` does)")
    examples = []
    for name in WORDNET_FILES:
        with open(directory / name, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the licence header, or a synset without a gloss
                examples += re.findall(r'"([^"]+)"', line.split("|", 1)[1])
    return tuple(examples)


def fortune_sentences(directory: str | os.PathLike = FORTUNES_DIR) -> tuple[str, ...]:
    """Sentences of the fortune collections in `directory` less FORTUNE_EXCLUDED (unchecked, in file order).

    A cookie's attribution lines ("-- Mark Twain") are dropped, its lines joined, and it is split after . ? or !.
    """
    directory = Path(directory)
    if not directory.is_dir() or not (directory / "fortunes").is_file():
        raise TextSourceError(f"fortune collections not found in {directory}: install the Debian package fortunes "
                              "(`make install` does)")
    sentences = []
    for path in sorted(directory.iterdir()):
        if "." in path.name or path.is_symlink() or not path.is_file() or path.name in FORTUNE_EXCLUDED:
            continue
        for cookie in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line.strip() for line in cookie.splitlines()]
            if any(re.match(r"[A-Za-z ]{1,20}:\s", line) for line in lines):
                continue  # a dialogue or Q/A script: its speaker names are not spoken
            text = " ".join(" ".join(line for line in lines if line and not line.startswith("-")).split())
            sentences += [s for s in _SENTENCE_END.split(text) if s]
    return tuple(sentences)


@functools.cache
def evaluation_sentences() -> tuple[str, ...]:
    """The natural evaluation set: hand-written everyday sentences, never trained or tuned on (file order)."""
    text = resources.files("mmspeech_jax.data").joinpath("natural_eval.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


@functools.cache
def english_sentences(wordnet_dir: str = str(WORDNET_DIR), fortunes_dir: str = str(FORTUNES_DIR)) -> tuple[str, ...]:
    """The training text: speakable, capitalized sentences of both sources, sorted, unique by normalized form, with
    every sentence of the natural evaluation set removed. Raises `TextSourceError` if a package is missing."""
    held_out = {normalize_text(s) for s in evaluation_sentences()}
    chosen: dict[str, str] = {}
    for raw in wordnet_examples(wordnet_dir) + fortune_sentences(fortunes_dir):
        candidate = " ".join(raw.split())
        key = _normalized_if_speakable(candidate) if candidate else None
        if key is not None and key not in held_out:
            chosen.setdefault(key, _capitalized(candidate))  # capitals and a final mark change no spoken word
    return tuple(sorted(chosen.values()))


def text_fingerprint(sentences: tuple[str, ...]) -> str:
    """SHA-256 (12 hex digits) of the sentences, one per line: names a selected text."""
    return hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:12]


@functools.cache
def source_fingerprint(wordnet_dir: str = str(WORDNET_DIR), fortunes_dir: str = str(FORTUNES_DIR)) -> str:
    """SHA-256 (12 hex digits) of the source files' bytes, the selection rules' version and the evaluation set:
    cheap (no parsing), and it changes whenever `english_sentences()` could. Raises `TextSourceError` if missing."""
    digest = hashlib.sha256(f"{TEXT_RULES_VERSION}\n".encode())
    wordnet = Path(wordnet_dir)
    if any(not (wordnet / name).is_file() for name in WORDNET_FILES):
        wordnet_examples(wordnet)  # raises the one-line error
    fortunes = Path(fortunes_dir)
    if not (fortunes / "fortunes").is_file():
        fortune_sentences(fortunes)  # raises the one-line error
    paths = [wordnet / name for name in WORDNET_FILES] + sorted(
        p for p in fortunes.iterdir() if "." not in p.name and p.is_file() and not p.is_symlink())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update("\n".join(evaluation_sentences()).encode())
    return digest.hexdigest()[:12]


@functools.cache
def _order(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng([int(seed), 0x454E]).permutation(count)


def natural_sentence(seed: int, index: int) -> str:
    """The index-th sentence of a seeded permutation of `english_sentences()`: distinct for distinct indices below
    its length (then it wraps around). Pure in (seed, index) for a given text fingerprint."""
    sentences = english_sentences()
    return sentences[int(_order(seed, len(sentences))[index % len(sentences)])]
