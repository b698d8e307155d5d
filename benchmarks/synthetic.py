"""The seeded synthetic batches of the step benchmarks, NumPy only (no JAX), so that `benchmarks/espnet_step.py` can
time ESPnet on exactly the same lengths and shapes in an environment without this package."""

from __future__ import annotations

import numpy as np


def tts_batch(batch_size: int, vocab: int, seed: int = 0, n_max: int = 150, t_max: int = 800,
              n_range: tuple[int, int] = (60, 150), t_range: tuple[int, int] = (400, 800)) -> dict:
    """Tokens (B, n_max) and mels (B, t_max, 80) with lengths uniform in the given ranges, frame pitch/energy, and
    external durations spreading each utterance's frames evenly over its tokens (they sum to the frame length)."""
    rng = np.random.default_rng(seed)
    n_len = rng.integers(n_range[0], n_range[1] + 1, batch_size)
    t_len = rng.integers(t_range[0], t_range[1] + 1, batch_size)
    token_mask = np.arange(n_max)[None] < n_len[:, None]
    frame_mask = np.arange(t_max)[None] < t_len[:, None]
    batch = {"tokens": (rng.integers(1, vocab, (batch_size, n_max)) * token_mask).astype(np.int32),
             "token_mask": token_mask, "token_lengths": n_len.astype(np.int32),
             "mel": (rng.normal(size=(batch_size, t_max, 80)) * frame_mask[..., None]).astype(np.float32),
             "frame_mask": frame_mask, "frame_lengths": t_len.astype(np.int32),
             "pitch": (rng.normal(size=(batch_size, t_max)) * frame_mask).astype(np.float32),
             "energy": (rng.normal(size=(batch_size, t_max)) * frame_mask).astype(np.float32)}
    durations = np.zeros((batch_size, n_max), np.int32)
    for i in range(batch_size):
        durations[i, : n_len[i]] = np.diff(np.linspace(0, t_len[i], n_len[i] + 1).round().astype(np.int32))
    return {**batch, "durations": durations}


def asr_batch(batch_size: int, seed: int = 0, t_max: int = 1500, l_max: int = 120,
              t_range: tuple[int, int] = (500, 1500), l_range: tuple[int, int] = (80, 120), n_mels: int = 80) -> dict:
    """Seeded normalized features (B, t_max, M) with lengths in t_range, character targets (ids 1..32) with lengths
    in l_range."""
    rng = np.random.default_rng(seed)
    t_len = rng.integers(t_range[0], t_range[1] + 1, batch_size)
    l_len = rng.integers(l_range[0], l_range[1] + 1, batch_size)
    frame_mask = np.arange(t_max)[None] < t_len[:, None]
    label_mask = np.arange(l_max)[None] < l_len[:, None]
    return {"features": (rng.normal(size=(batch_size, t_max, n_mels)) * frame_mask[..., None]).astype(np.float32),
            "frame_mask": frame_mask, "labels": (rng.integers(1, 33, (batch_size, l_max)) * label_mask).astype(np.int32),
            "label_mask": label_mask, "example_mask": np.ones(batch_size, bool)}
