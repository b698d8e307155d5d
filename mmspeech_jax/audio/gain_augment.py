"""Gain augmentation: each training utterance as if recorded at a random level, applied to normalized log-mels.

A waveform scaled by a (a gain of g = 20 log10 a dB) has its magnitude mel scaled by a, so its log-mel (natural log of
max(mel, floor), `audio/features.py`) moves by ln a wherever it is above the floor:

    log-mel' = ln floor                        where log-mel is at the floor (what lies under it is unknown),
               max(log-mel + ln a, ln floor)   elsewhere,

applied to z-scored features x = (log-mel - mean) / std per mel bin (un-normalized, moved, normalized again). Exact
for a <= 1 and for digital silence; for a > 1 a bin just under the floor would have risen above it and stays at the
floor here. Each utterance draws g uniformly from [-max_db, max_db]; padding stays 0.

Why: a recognizer trained on a corpus recorded at one level learns that level (benchmarks/RESULTS.md: the ASR default
transcribed the natural set 12 dB quieter at 44 % CER against 4.7 % at the corpus's level).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks


@dataclasses.dataclass(frozen=True)
class GainAugmentConfig:
    """Gains drawn per utterance, uniform in [-max_db, max_db] dB (amplitude). Checked when built."""
    max_db: float = 12.0

    def __post_init__(self):
        config_checks.number(self, "max_db", 0)


def gains_db(rng, rows: int, config: GainAugmentConfig) -> jax.Array:
    """(rows,) float32 gains in dB, uniform in [-max_db, max_db], a pure function of `rng`."""
    return jax.random.uniform(rng, (rows,), jnp.float32, -config.max_db, config.max_db)


def apply_gain(features, frame_mask, gain_db, mel_mean, mel_std, log_floor: float):
    """Normalized log-mels (B, T, M) float32 (`(log-mel - mel_mean) / mel_std`), frame_mask (B, T) bool (True =
    valid), gain_db (B,) -> (B, T, M) float32: the features of each row's waveform scaled by 10^(gain_db / 20),
    floored at log(`log_floor`) as the features are, bins at the floor (within 1e-3) kept there (see the module
    docstring); padded frames stay 0."""
    mean = jnp.asarray(np.asarray(mel_mean, np.float32))
    std = jnp.asarray(np.asarray(mel_std, np.float32))
    floor = np.float32(np.log(log_floor))
    log_mel = features.astype(jnp.float32) * std + mean
    shift = (gain_db.astype(jnp.float32) * np.float32(np.log(10.0) / 20.0))[:, None, None]
    moved = jnp.where(log_mel <= floor + 1e-3, floor, jnp.maximum(log_mel + shift, floor))
    return jnp.where(frame_mask[..., None], (moved - mean) / std, 0.0).astype(jnp.float32)


def gain_augment(features, frame_mask, rng, mel_mean, mel_std, log_floor: float,
                 config: GainAugmentConfig = GainAugmentConfig()):
    """`apply_gain` at gains drawn by `gains_db(rng, B, config)`: (B, T, M) float32, jit-able."""
    return apply_gain(features, frame_mask, gains_db(rng, features.shape[0], config), mel_mean, mel_std, log_floor)
