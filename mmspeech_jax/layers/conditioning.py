"""Conditioning encoders: each turns one modality into a fixed vector (B, E) plus an availability flag (B,).

  * `SpeakerEmbedding` — a table of `num_speakers` learned vectors; id -1 means "no speaker" (flag False); any
    other id outside the table raises `FeatureError` (concrete ids) or gives NaN (under jit), never another voice.
  * `ReferenceEncoder` — mel (B, T, M) with mask (B, T) -> vector: three stride-2 conv + LayerNorm + ReLU layers
    (padding masked before each), then attention pooling (a learned score per frame, softmax over valid frames), as
    in global style token / reference encoders (Skerry-Ryan et al., 2018; Wang et al., 2018). An unseen voice is
    conditioned from a few seconds of its audio. A row with no valid frame has flag False.
  * `VectorEncoder` — any embedding computed elsewhere (an image, text or speaker-verification vector) (B, C) ->
    Dense -> (B, E).

`combine_conditions` averages the available vectors (unavailable ones are left out; all unavailable -> zeros).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmspeech_jax.layers.ids import table_ids


class SpeakerEmbedding(nn.Module):
    """Speaker table: speaker (B,) int, -1 = none -> (vectors (B, E), available (B,) bool); rows without a speaker
    are zero. An id outside [-1, num_speakers) raises (eager) or gives NaN (under jit)."""
    num_speakers: int
    dim: int

    @nn.compact
    def __call__(self, speaker):
        """speaker (B,) int, -1 = none -> ((B, E), available (B,))."""
        ids = table_ids(speaker, self.num_speakers, "speaker", none_id=True)
        available = jnp.asarray(speaker) >= 0
        vector = nn.Embed(self.num_speakers, self.dim, name="table")(ids)
        return vector * available[:, None], available


class ReferenceEncoder(nn.Module):
    """Reference-audio encoder: mel (B, T, M), mask (B, T) -> (vector (B, E), available (B,)): stride-2 convolutions,
    then attention pooling over the valid frames; padding never changes the result."""
    dim: int
    channels: tuple[int, ...] = (64, 128, 128)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, mel, mask):
        """mel (B, T, M), mask (B, T) -> ((B, E), available (B,))."""
        h, m = mel.astype(self.dtype), mask
        for i, channels in enumerate(self.channels):
            h = nn.Conv(channels, (3,), strides=(2,), padding="SAME", dtype=self.dtype,
                        name=f"conv_{i}")(h * m[..., None].astype(h.dtype))
            m = m[:, ::2]
            h = nn.relu(nn.LayerNorm(dtype=self.dtype, name=f"norm_{i}")(h))
        score = nn.Dense(1, dtype=self.dtype, name="score")(h)[..., 0].astype(jnp.float32)
        score = jnp.where(m, score, jnp.finfo(jnp.float32).min)
        available = jnp.any(m, axis=-1)
        weights = jax.nn.softmax(score, axis=-1) * available[:, None]
        pooled = jnp.einsum("bt,btc->bc", weights.astype(h.dtype), h)
        return nn.Dense(self.dim, dtype=self.dtype, name="out")(pooled).astype(jnp.float32) * available[:, None], available


class VectorEncoder(nn.Module):
    """An external condition vector (B, C) (image, text or speaker embedding) -> (B, E) by one projection, zero where
    `available` (B,) is False."""
    dim: int

    @nn.compact
    def __call__(self, vector, available=None):
        """vector (B, C) -> ((B, E), available (B,)); `available` defaults to all True."""
        available = jnp.ones(vector.shape[:1], bool) if available is None else available
        return nn.Dense(self.dim, name="proj")(vector) * available[:, None], available


def combine_conditions(vectors: list, flags: list):
    """Mean of the available conditioning vectors: lists of (B, E) and (B,) -> (B, E), any available (B,)."""
    stacked = jnp.stack(vectors)  # (K, B, E)
    weights = jnp.stack(flags).astype(stacked.dtype)  # (K, B)
    count = jnp.sum(weights, axis=0)
    return jnp.einsum("kb,kbe->be", weights, stacked) / jnp.maximum(count, 1)[:, None], count > 0
