"""LJSpeech through the real TFDS `ljspeech` builder, read back with random access (ArrayRecord) for Grain.

    builder = tfds.builder("ljspeech", data_dir=..., file_format="array_record")
    builder.download_and_prepare()        # on a machine with internet: downloads LJSpeech-1.1 (2.6 GB) and prepares
    builder.as_data_source("train")       # random-access records: id, speech (int16, 22 050 Hz), text, text_normalized

LJSpeech has a single TFDS split ("train", 13 100 clips). `split_indices` divides it deterministically into
train / validation / test with the common 12 500 / 100 / 500 proportions: a fixed-seed permutation of the record
indices (TFDS orders records deterministically), validation first, then test, the rest train. Smaller (test-made)
datasets keep the same proportions, at least one utterance per held-out split.

`prepare_ljspeech(..., download=False)` never touches the network (an offline `download_and_prepare` spends minutes
in DNS retries); without prepared data it raises `CorpusNotFoundError` with the command that prepares it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from mmspeech_jax.errors import ConfigError, CorpusNotFoundError

SAMPLE_RATE = 22050
FULL_SIZE = 13100
HELD_OUT = {"validation": 100, "test": 500}
SPLIT_SEED = 20170705  # LJSpeech-1.1's release date; any fixed value would do, this one is documented


def ljspeech_builder(data_dir: str | os.PathLike):
    """The real TFDS builder, writing ArrayRecord files so that prepared data can be read with random access."""
    import tensorflow_datasets as tfds  # heavy import (TensorFlow): only when LJSpeech is used

    return tfds.builder("ljspeech", data_dir=str(data_dir), file_format="array_record")


def is_prepared(data_dir: str | os.PathLike) -> bool:
    """True when `data_dir` holds a prepared TFDS `ljspeech` (nothing is downloaded to find out)."""
    return Path(data_dir).is_dir() and ljspeech_builder(data_dir).is_prepared()


def prepare_ljspeech(data_dir: str | os.PathLike, *, download: bool = True):
    """Downloads (if allowed) and prepares LJSpeech under `data_dir`. Returns the builder."""
    builder = ljspeech_builder(data_dir)
    if builder.is_prepared():
        return builder
    if not download:
        raise CorpusNotFoundError(
            f"LJSpeech is not prepared under {data_dir}; prepare it on a machine with internet: "
            f"python -c \"from mmspeech_jax.data.ljspeech import prepare_ljspeech; prepare_ljspeech('{data_dir}')\""
        )
    builder.download_and_prepare()
    return builder


def split_indices(num_records: int, split: str) -> np.ndarray:
    """Record indices of `split` in the single TFDS split, sorted. Deterministic; see the module docstring."""
    if split not in ("train", "validation", "test"):
        raise ConfigError(f"unknown LJSpeech split {split!r}; choose train, validation or test")
    order = np.random.default_rng(SPLIT_SEED).permutation(num_records)
    sizes = {name: (max(1, round(num_records * count / FULL_SIZE)) if num_records >= 3 else 0)
             for name, count in HELD_OUT.items()}
    bounds = {"validation": (0, sizes["validation"]),
              "test": (sizes["validation"], sizes["validation"] + sizes["test"]),
              "train": (sizes["validation"] + sizes["test"], num_records)}
    start, stop = bounds[split]
    return np.sort(order[start:stop])


@dataclasses.dataclass(frozen=True)
class LJSpeechRecord:
    """One LJSpeech clip: id, audio (S,) float32 in [-1, 1] at `sample_rate`, the transcript and its normalized text."""
    id: str
    audio: np.ndarray  # (S,) float32 in [-1, 1]
    sample_rate: int
    transcript: str
    text_normalized: str


class LJSpeechSource:
    """Random access to one split of prepared LJSpeech: len() and [i] -> LJSpeechRecord."""

    def __init__(self, data_dir: str | os.PathLike, split: str):
        self.builder = prepare_ljspeech(data_dir, download=False)
        self._records = self.builder.as_data_source("train")
        self._indices = split_indices(len(self._records), split)
        self.split = split

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> LJSpeechRecord:
        record = self._records[int(self._indices[i])]
        text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
        speech = np.asarray(record["speech"])
        return LJSpeechRecord(
            id=text(record["id"]), audio=(speech.astype(np.float32) / 32768.0).reshape(-1), sample_rate=SAMPLE_RATE,
            transcript=text(record["text"]), text_normalized=text(record["text_normalized"]),
        )
