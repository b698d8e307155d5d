"""SpecAugment (Park et al., 2019): frequency and time masking as a pure function of (features, mask, rng).

features (B, T, M), frame_mask (B, T) -> (B, T, M). Each utterance gets `freq_masks` bands of width
U[0, freq_width] bins and `time_masks` spans of width U[0, time_width_ratio * its own length] frames (adaptive
masking, Park et al., 2020), starts uniform over its valid frames. Masked values are set to `fill` (0: the mean of
normalized features). Shapes are static; padding stays as it was.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from mmspeech_jax import config_checks


@dataclasses.dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment masks: `freq_masks` bands of up to `freq_width` mel bins and `time_masks` spans of up to
    `time_width_ratio` of each utterance's valid frames, filled with `fill`. Checked when built."""
    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width_ratio: float = 0.05
    fill: float = 0.0

    def __post_init__(self):
        config_checks.integers(self, freq_masks=0, freq_width=0, time_masks=0)
        config_checks.number(self, "time_width_ratio", 0, 1)
        config_checks.number(self, "fill")


def _band_mask(key, count: int, max_width, extent, size: int, batch: int):
    """(B, size) bool: True inside any of `count` random bands of width U[0, max_width] within [0, extent)."""
    k_width, k_start = jax.random.split(key)
    width = jnp.floor(jax.random.uniform(k_width, (batch, count)) * (jnp.asarray(max_width)[..., None] + 1))
    start = jnp.floor(jax.random.uniform(k_start, (batch, count)) * jnp.maximum(extent[..., None] - width, 1.0))
    pos = jnp.arange(size)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(axis=1)


def spec_augment(features, frame_mask, rng, config: SpecAugmentConfig = SpecAugmentConfig()):
    """features (B, T, M) float, frame_mask (B, T) bool (True = valid), rng -> (B, T, M) with the masked bands and spans
    set to `config.fill`. Spans lie inside each row's valid frames; a pure function of its inputs (jit-able)."""
    b, t, m = features.shape
    k_freq, k_time = jax.random.split(rng)
    lengths = frame_mask.sum(-1).astype(jnp.float32)
    freq = _band_mask(k_freq, config.freq_masks, jnp.full((b,), min(config.freq_width, m), jnp.float32),
                      jnp.full((b,), m, jnp.float32), m, b)
    time = _band_mask(k_time, config.time_masks, jnp.floor(config.time_width_ratio * lengths), lengths, t, b)
    masked = freq[:, None, :] | time[:, :, None]
    return jnp.where(masked & frame_mask[..., None], jnp.asarray(config.fill, features.dtype), features)
