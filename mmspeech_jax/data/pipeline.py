"""Bucketed, padded, fixed-shape batches from a feature cache, served by Grain.

Bucketing: `plan_buckets` picks K frame-length boundaries at quantiles of the cache's utterance lengths (all splits,
so train and evaluation share shapes) and gives each bucket the token and character widths its longest member
needs, rounded up to multiples. Every batch is padded to one of these K shapes, so a jit-compiled step sees at
most K input shapes. Each utterance belongs to the smallest shape that holds it.

Epoch plan (`epoch_batches`, a pure function of (seed, epoch)): within each bucket, utterances are shuffled and
cut into batches of `batch_size`; then the order of all batches is shuffled. The number of batches per epoch is
fixed, so the Grain iterator state (one integer) restores the exact data order after any restart. The last batch
of a bucket may be partial: its empty rows have `example_mask == False` and all-False masks (or it is dropped
with `drop_remainder=True`).

Multi-host: every process plans the same global batches and keeps rows [p * B/P, (p + 1) * B/P) of each, where p
is `jax.process_index()` and P `jax.process_count()` (override with the arguments), so all hosts step in lockstep
with the same shapes.

A batch is a dict of NumPy arrays (padding is zeros; masks are bool, True = valid):
  tokens (B, N) int32 · token_mask (B, N) · token_lengths (B,) int32
  mel (B, T, M) float32 log-mel · frame_mask (B, T) · frame_lengths (B,) int32
  f0_hz (B, T) float32, 0 where unvoiced · voiced (B, T) bool
  pitch (B, T) float32: z-scored log-F0 with unvoiced frames interpolated (0 for padding)
  energy (B, T) float32: z-scored frame energy
  durations (B, N) int32 frames per token, summing to frame_lengths (only when the cache has durations)
  speaker (B,) int32 · transcript_ids (B, L) int32 characters · transcript_mask (B, L) · transcript_lengths (B,)
  example_mask (B,) bool · index (B,) int32 row in the cache (-1 for empty rows)
"""

from __future__ import annotations

import dataclasses
import threading

import grain
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.audio.pitch import interpolate_unvoiced
from mmspeech_jax.data.feature_cache import FeatureCache
from mmspeech_jax.errors import ConfigError

BATCH_KEYS = ("tokens", "token_mask", "token_lengths", "mel", "frame_mask", "frame_lengths", "f0_hz", "voiced",
              "pitch", "energy", "speaker", "transcript_ids", "transcript_mask", "transcript_lengths",
              "example_mask", "index")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Batching: batch size, K bucket shapes, shuffling seed, epochs (None: endless), padding multiples of the frame
    and token axes, Grain worker threads and prefetch depth. Checked when built."""
    batch_size: int = 16
    num_buckets: int = 4
    seed: int = 0
    shuffle: bool = True
    drop_remainder: bool = False
    num_epochs: int | None = 1  # None: repeat without end
    frame_multiple: int = 16
    token_multiple: int = 8
    num_threads: int = 2
    prefetch: int = 4

    def __post_init__(self):
        config_checks.integers(self, batch_size=1, num_buckets=1, seed=0, frame_multiple=1, token_multiple=1,
                               num_threads=0, prefetch=0)  # grain: 0 threads reads in the calling thread
        config_checks.integer(self, "num_epochs", 1, none_ok=True)
        config_checks.flag(self, "shuffle", "drop_remainder")


@dataclasses.dataclass(frozen=True)
class BucketShape:
    """One padded batch shape: frames (T), tokens (N) and transcript characters (L)."""
    frames: int
    tokens: int
    chars: int


def _round_up(x, multiple: int):
    return -(-np.asarray(x) // multiple) * multiple


def plan_buckets(num_frames, num_tokens, num_chars, num_buckets: int, frame_multiple: int = 16,
                 token_multiple: int = 8) -> tuple[tuple[BucketShape, ...], np.ndarray]:
    """Returns (shapes sorted by frames, bucket index of every utterance). At most `num_buckets` shapes."""
    num_frames, num_tokens, num_chars = (np.asarray(a, np.int64) for a in (num_frames, num_tokens, num_chars))
    if num_frames.size == 0:
        raise ConfigError("plan_buckets: no utterances")
    quantiles = np.quantile(num_frames, np.arange(1, num_buckets + 1) / num_buckets, method="higher")
    bounds = np.unique(_round_up(quantiles, frame_multiple))
    bucket = np.searchsorted(bounds, num_frames, side="left")
    shapes = []
    for b, frames in enumerate(bounds):
        members = bucket == b
        tokens = int(_round_up(num_tokens[members].max(), token_multiple)) if members.any() else token_multiple
        chars = int(_round_up(num_chars[members].max(), token_multiple)) if members.any() else token_multiple
        shapes.append(BucketShape(int(frames), tokens, chars))
    return tuple(shapes), bucket.astype(np.int64)


def epoch_batches(bucket_of: np.ndarray, batch_size: int, seed: int, epoch: int, *, shuffle: bool = True,
                  drop_remainder: bool = False) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches as (bucket, positions into `bucket_of`). Pure in (seed, epoch); fixed count per epoch."""
    batches = []
    for b in np.unique(bucket_of):
        members = np.flatnonzero(bucket_of == b)
        if shuffle:
            members = np.random.default_rng([seed, epoch, int(b)]).permutation(members)
        for start in range(0, members.size, batch_size):
            chunk = members[start : start + batch_size]
            if chunk.size == batch_size or not drop_remainder:
                batches.append((int(b), chunk))
    if shuffle:
        order = np.random.default_rng([seed, epoch, 1 << 20]).permutation(len(batches))
        batches = [batches[i] for i in order]
    return batches


def collate(cache: FeatureCache, rows: np.ndarray, shape: BucketShape, batch_size: int) -> dict[str, np.ndarray]:
    """Pads the cache rows into one batch of `shape` (see the module docstring for the keys)."""
    m, stats = cache.n_mels, cache.stats
    batch = {
        "tokens": np.zeros((batch_size, shape.tokens), np.int32), "token_mask": np.zeros((batch_size, shape.tokens), bool),
        "token_lengths": np.zeros(batch_size, np.int32), "mel": np.zeros((batch_size, shape.frames, m), np.float32),
        "frame_mask": np.zeros((batch_size, shape.frames), bool), "frame_lengths": np.zeros(batch_size, np.int32),
        "f0_hz": np.zeros((batch_size, shape.frames), np.float32), "voiced": np.zeros((batch_size, shape.frames), bool),
        "pitch": np.zeros((batch_size, shape.frames), np.float32), "energy": np.zeros((batch_size, shape.frames), np.float32),
        "speaker": np.zeros(batch_size, np.int32), "transcript_ids": np.zeros((batch_size, shape.chars), np.int32),
        "transcript_mask": np.zeros((batch_size, shape.chars), bool), "transcript_lengths": np.zeros(batch_size, np.int32),
        "example_mask": np.zeros(batch_size, bool), "index": np.full(batch_size, -1, np.int32),
    }
    if cache.has_durations:
        batch["durations"] = np.zeros((batch_size, shape.tokens), np.int32)
    for r, i in enumerate(rows):
        item = cache[int(i)]
        t, n, c = item["mel"].shape[0], item["tokens"].size, item["chars"].size
        batch["tokens"][r, :n], batch["token_mask"][r, :n], batch["token_lengths"][r] = item["tokens"], True, n
        batch["mel"][r, :t], batch["frame_mask"][r, :t], batch["frame_lengths"][r] = item["mel"], True, t
        batch["f0_hz"][r, :t], batch["voiced"][r, :t] = item["f0_hz"], item["voiced"]
        if item["voiced"].any():
            log_f0 = np.log(interpolate_unvoiced(item["f0_hz"], item["voiced"]))
            batch["pitch"][r, :t] = (log_f0 - stats["log_f0_mean"]) / stats["log_f0_std"]
        batch["energy"][r, :t] = (item["energy"] - stats["energy_mean"]) / stats["energy_std"]
        batch["speaker"][r] = item["speaker"]
        batch["transcript_ids"][r, :c], batch["transcript_mask"][r, :c], batch["transcript_lengths"][r] = item["chars"], True, c
        batch["example_mask"][r], batch["index"][r] = True, i
        if cache.has_durations:
            batch["durations"][r, :n] = item["durations"]
    return batch


class _BatchSource:
    """Random access to the batches of all epochs: a Grain data source (len and getitem)."""

    def __init__(self, cache, positions, bucket_of, shapes, config, host_slice):
        self.cache, self.positions, self.bucket_of, self.shapes = cache, positions, bucket_of, shapes
        self.config, self.host_slice = config, host_slice
        self._plans, self._lock = {}, threading.Lock()
        self.batches_per_epoch = len(self._plan(0))
        epochs = config.num_epochs if config.num_epochs is not None else 1 << 30
        self._length = self.batches_per_epoch * epochs

    def _plan(self, epoch: int):
        """The epoch's batch plan, memoised for the most recent epochs (Grain reads from several threads)."""
        with self._lock:
            if epoch not in self._plans:
                c = self.config
                self._plans[epoch] = epoch_batches(self.bucket_of, c.batch_size, c.seed, epoch, shuffle=c.shuffle,
                                                   drop_remainder=c.drop_remainder)
                while len(self._plans) > 4:
                    self._plans.pop(next(iter(self._plans)))
            return self._plans[epoch]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        epoch, j = divmod(int(i), self.batches_per_epoch)
        bucket, members = self._plan(epoch)[j]
        rows = self.positions[members]
        global_rows = np.full(self.config.batch_size, -1, np.int64)
        global_rows[: rows.size] = rows
        mine = global_rows[self.host_slice]
        batch = collate(self.cache, mine[mine >= 0], self.shapes[bucket], mine.size)
        batch["epoch"] = np.int32(epoch)
        return batch


class BatchIterator:
    """Iterates fixed-shape batches; `get_state()` / `set_state()` save and restore the position exactly."""

    def __init__(self, source: _BatchSource, config: PipelineConfig):
        self.source, self.shapes = source, source.shapes
        self.batches_per_epoch = source.batches_per_epoch
        dataset = grain.MapDataset.source(source)
        options = grain.ReadOptions(num_threads=config.num_threads, prefetch_buffer_size=config.prefetch)
        self._iterator = iter(dataset.to_iter_dataset(options))

    @property
    def num_shapes(self) -> int:
        """How many bucket shapes the batches take (the most compilations a jitted step needs)."""
        return len(self.shapes)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    def get_state(self) -> dict:
        """The iterator's position (a JSON-able dict) for an exact resume with `set_state`."""
        return self._iterator.get_state()

    def set_state(self, state: dict) -> None:
        """Continue from a position returned by `get_state`."""
        self._iterator.set_state(state)


def make_batch_iterator(cache: FeatureCache, split: str, config: PipelineConfig = PipelineConfig(), *,
                        process_index: int | None = None, process_count: int | None = None,
                        positions: np.ndarray | None = None, verbose: bool = True) -> BatchIterator:
    """Bucketed batches of one split (or of `positions`, cache rows within it, e.g. a labelled subset). Prints the
    K bucket shapes (the most a jitted step will compile)."""
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if config.batch_size % process_count:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {process_count} processes")
    shapes, bucket_all = plan_buckets(cache.num_frames, cache.num_tokens, cache.num_chars, config.num_buckets,
                                      config.frame_multiple, config.token_multiple)
    split_rows = cache.indices(split)
    if positions is not None:
        outside = np.setdiff1d(positions, split_rows)
        if outside.size:
            raise ConfigError(f"{outside.size} of the requested rows are not in split {split!r}")
        positions = np.asarray(positions, np.int64)
    else:
        positions = split_rows
    if positions.size == 0:
        raise ConfigError(f"split {split!r} of {cache.path} is empty")
    per_host = config.batch_size // process_count
    host_slice = slice(process_index * per_host, (process_index + 1) * per_host)
    source = _BatchSource(cache, positions, bucket_all[positions], shapes, config, host_slice)
    if verbose:
        listed = ", ".join(f"{s.frames}x{s.tokens}" for s in shapes)
        print(f"bucketing {split}: K={len(shapes)} shapes (frames x tokens): {listed}; "
              f"{source.batches_per_epoch} batches/epoch of {config.batch_size}")
    return BatchIterator(source, config)
