"""Random fixed-length waveform crops for the vocoders: a seeded, resumable, infinite iterator of batches.

Batch: {"audio": (B, S) float32, "context": (B, S + n_fft) float32} with S = segment_frames * hop: the crop starts on
a frame boundary (sample f * hop of its utterance) and "context" adds n_fft / 2 samples on each side — the
utterance's own samples where it has them, its reflection at its ends (the feature cache's `center=True` padding),
so `log_mel(context, center=False)` equals the cache's frames f .. f + segment_frames of that utterance. With
`mels` (utterance -> (T, M) frames on the same grid, e.g. FastSpeech2's teacher-forced mels), the batch also holds
"log_mel" (B, segment_frames + 1, M): those frames, which the vocoder then takes instead of the recording's.

With `context_frames` R > 0, "context" holds R * hop more samples on each side (B, S + n_fft + 2 R hop), so its
log-mel has R frames before and R after the crop's (B, segment_frames + 1 + 2 R, M), and "log_mel" likewise (the
teacher-forced frames, reflected at the utterance's ends): the generator sees the crop as inside an utterance, and
the loss scores only the crop (`models/vocoder.make_vocoder_loss_fn`).

Batch k is a pure function of (seed, k): rows drawn uniformly from the utterances, each with a uniform frame offset.
The state is k alone (`get_state` / `set_state`, kept in the trainer's checkpoints): a resumed run sees the same
batches. `fixed_batches` gives the deterministic evaluation crops (one per utterance, from its middle).

Sources: `CropSource`, the utterances' lengths and a `read(i, start, stop)` of samples at the vocoder's rate;
`corpus_crop_source` reads the embedded corpus's files by seeking (soundfile), `loaded_crop_source` any
`SourceUtterance` sequence (LJSpeech through TFDS) by loading the whole utterance.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from mmspeech_jax.errors import ConfigError, CorpusNotFoundError


@dataclasses.dataclass(frozen=True)
class CropSource:
    """Utterances to crop: `lengths` (U,) samples at `sample_rate`, `read(i, start, stop)` -> float32 samples
    [start, stop) of utterance i (0 <= start <= stop <= lengths[i])."""
    lengths: np.ndarray
    read: Callable[[int, int, int], np.ndarray]
    sample_rate: int


def corpus_crop_source(corpus, split: str, ids=None) -> CropSource:
    """The utterances of `split` of an embedded corpus (`synthetic_corpus.Corpus`), read by seeking in their files;
    with `ids`, only those utterances, in that order."""
    import soundfile as sf

    utterances = corpus.split(split)
    if ids is not None:
        by_id = {u.id: u for u in utterances}
        utterances = tuple(by_id[i] for i in ids)
    if not utterances:
        raise CorpusNotFoundError(f"the corpus {corpus.root} has no {split!r} utterances")
    rates = {u.sample_rate for u in utterances}
    if len(rates) != 1:
        raise ConfigError(f"corpus {corpus.root}: utterances at several sample rates {sorted(rates)}")

    def read(i: int, start: int, stop: int) -> np.ndarray:
        with sf.SoundFile(str(corpus.root / utterances[i].audio_path)) as f:
            f.seek(start)
            return f.read(stop - start, dtype="float32")

    return CropSource(np.asarray([u.num_samples for u in utterances], np.int64), read, rates.pop())


def loaded_crop_source(utterances: Sequence, sample_rate: int) -> CropSource:
    """Any `feature_cache.SourceUtterance` sequence: each utterance loaded whole (and resampled) when read."""
    from mmspeech_jax.audio.io import resample

    def load(i: int) -> np.ndarray:
        audio, rate = utterances[i].load_audio()
        return resample(audio, rate, sample_rate) if rate != sample_rate else audio

    lengths = np.asarray([load(i).size for i in range(len(utterances))], np.int64)
    return CropSource(lengths, lambda i, start, stop: load(i)[start:stop], sample_rate)


def read_crop(source: CropSource, i: int, frame: int, segment_frames: int, hop: int, n_fft: int,
              context_frames: int = 0):
    """(audio (S,), context (S + n_fft + 2 context_frames hop,)) of utterance i from frame `frame` (see the module
    docstring)."""
    length, samples = int(source.lengths[i]), segment_frames * hop
    half = n_fft // 2 + context_frames * hop
    start, stop = frame * hop - half, frame * hop + samples + half
    lo, hi = max(start, 0), min(stop, length)
    context = np.asarray(source.read(i, lo, hi), np.float32)
    if lo > start or hi < stop:  # the utterance's ends: its reflection, as `features.center_pad`
        context = np.pad(context, (lo - start, stop - hi), mode="reflect")
    return context[half: half + samples], context


def reflected_frames(frames: np.ndarray, first: int, count: int) -> np.ndarray:
    """frames (T, ...) -> (count, ...): frames first .. first + count - 1, reflected about frame 0 and frame T - 1
    where the range leaves [0, T) (as `np.pad(mode="reflect")`)."""
    last = frames.shape[0] - 1
    index = np.arange(first, first + count)
    if last == 0:
        return frames[np.zeros(count, np.int64)]
    period = 2 * last
    index = np.abs(np.mod(index, period))
    index = np.where(index > last, period - index, index)
    return frames[index]


class WaveformCrops:
    """Infinite iterator of crop batches (see the module docstring); utterances shorter than one segment are left
    out (`self.skipped` counts them)."""

    def __init__(self, source: CropSource, batch_size: int, segment_frames: int, hop: int, n_fft: int,
                 seed: int = 0, mels: Callable[[int], np.ndarray] | None = None, context_frames: int = 0):
        if batch_size < 1 or segment_frames < 1 or hop < 1 or n_fft < 2 or context_frames < 0:
            raise ConfigError(f"WaveformCrops: need batch_size, segment_frames, hop >= 1, n_fft >= 2 and "
                              f"context_frames >= 0, got {batch_size}, {segment_frames}, {hop}, {n_fft}, "
                              f"{context_frames}")
        self.source, self.batch_size, self.segment_frames = source, batch_size, segment_frames
        self.context_frames = context_frames
        self.hop, self.n_fft, self.seed, self.mels = hop, n_fft, seed, mels
        samples = segment_frames * hop
        # the last frame a crop may start on keeps all S samples inside the utterance
        self._last_frame = (source.lengths - samples) // hop
        self._usable = np.flatnonzero(source.lengths >= samples + n_fft // 2 + 1)
        self.skipped = int(len(source.lengths) - len(self._usable))
        if not len(self._usable):
            raise CorpusNotFoundError(f"no utterance is longer than a {samples}-sample crop")
        self.position = 0

    @property
    def segment_samples(self) -> int:
        """S: samples of each crop."""
        return self.segment_frames * self.hop

    def batch(self, index: int) -> dict[str, np.ndarray]:
        """Batch `index` of the stream (a pure function of (seed, index))."""
        rng = np.random.default_rng([self.seed, index])
        rows = self._usable[rng.integers(0, len(self._usable), self.batch_size)]
        frames = [int(rng.integers(0, self._last_frame[i] + 1)) for i in rows]
        return self._collate(rows, frames)

    def _collate(self, rows, frames) -> dict[str, np.ndarray]:
        crops = [read_crop(self.source, int(i), f, self.segment_frames, self.hop, self.n_fft, self.context_frames)
                 for i, f in zip(rows, frames)]
        batch = {"audio": np.stack([a for a, _ in crops]), "context": np.stack([c for _, c in crops])}
        if self.mels is not None:
            r = self.context_frames
            batch["log_mel"] = np.stack([np.asarray(reflected_frames(self.mels(int(i)), f - r, self.segment_frames
                                                                     + 1 + 2 * r), np.float32)
                                         for i, f in zip(rows, frames)])
        return batch

    def fixed_batches(self, max_rows: int | None = None) -> list[dict[str, np.ndarray]]:
        """Evaluation: one crop from the middle of each usable utterance (the first `max_rows`), in full batches
        (the last filled by repeating rows, so every batch has one shape)."""
        rows = self._usable[:max_rows]
        frames = [int(self._last_frame[i] // 2) for i in rows]
        batches = []
        for s in range(0, len(rows), self.batch_size):
            r, f = list(rows[s: s + self.batch_size]), frames[s: s + self.batch_size]
            while len(r) < self.batch_size:
                r, f = r + r[: self.batch_size - len(r)], f + f[: self.batch_size - len(f)]
            batches.append(self._collate(r, f))
        return batches

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.batch(self.position)
        self.position += 1
        return batch

    def get_state(self) -> dict:
        """The stream position (saved in checkpoints)."""
        return {"position": self.position}

    def set_state(self, state: dict) -> None:
        """Resume at a saved position."""
        self.position = int(state["position"])
