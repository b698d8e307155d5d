"""Conv2d subsampling front-end (4x in time), as in ESPnet's `Conv2dSubsampling` and the Conformer paper.

features (B, T, M), mask (B, T) -> (B, T', D), mask (B, T') with T' = subsampled_length(T). Two 3x3 convolutions
with stride 2 (VALID padding) and ReLU, then a linear projection of (channels x remaining mel bins) to D. Output
frame t sees input frames 4t .. 4t + 6 only, so an utterance of length L gives the same first
`subsampled_length(L)` frames whatever padding follows it.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def subsampled_length(length):
    """Frames after two VALID 3x3 stride-2 convolutions: ((L - 3) // 2 + 1 - 3) // 2 + 1 (0 when L < 7)."""
    once = (jnp.asarray(length) - 3) // 2 + 1
    return jnp.maximum((once - 3) // 2 + 1, 0)


class Conv2dSubsampling(nn.Module):
    dim: int
    channels: int | None = None  # None: dim
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features, mask):
        channels = self.channels or self.dim
        h = (features * mask[..., None])[..., None].astype(self.dtype)  # (B, T, M, 1)
        h = nn.relu(nn.Conv(channels, (3, 3), (2, 2), padding="VALID", dtype=self.dtype, name="conv_1")(h))
        h = nn.relu(nn.Conv(channels, (3, 3), (2, 2), padding="VALID", dtype=self.dtype, name="conv_2")(h))
        b, t = h.shape[:2]
        h = nn.Dense(self.dim, dtype=self.dtype, name="proj")(h.reshape(b, t, -1))
        lengths = subsampled_length(mask.sum(-1))
        out_mask = jnp.arange(t)[None, :] < lengths[:, None]
        return h * out_mask[..., None], out_mask
