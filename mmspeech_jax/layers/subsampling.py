"""Conv2d subsampling front-end (4x in time by default), as in ESPnet's `Conv2dSubsampling` and the Conformer paper.

features (B, T, M), mask (B, T) -> (B, T', D), mask (B, T') with T' = subsampled_length(T, factor). Two 3x3
convolutions (VALID padding) with ReLU, time strides (2, 2) for factor 4 or (2, 1) for factor 2 (frequency stride
2 both times), then a linear projection of (channels x remaining mel bins) to D. Each output frame sees a fixed
window of input frames, so an utterance of length L gives the same first `subsampled_length(L)` frames whatever
padding follows it.

Factor 2 is for fast speech at a coarse hop: CTC needs at least one output frame per character (plus one between
repeated characters). The embedded corpus speaks ~17 characters/s at a 11.6 ms hop, which at factor 4 leaves a
median of only 1.23 output frames per needed frame and makes ~1 % of utterances impossible to align.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.layers.strided_winograd import output_size, strided_conv2d
from mmspeech_jax.layers.winograd import uses_winograd as winograd_rule

FACTORS = {4: (2, 2), 2: (2, 1)}


def subsampled_length(length, factor: int = 4):
    """Frames after the two VALID 3x3 convolutions: ((L - 3) // s1 + 1 - 3) // s2 + 1 (never below 0).

    A Python/NumPy int gives a NumPy int (usable as a static shape under jit); a JAX array gives a JAX array."""
    s1, s2 = FACTORS[factor]
    twice = ((length - 3) // s1 + 1 - 3) // s2 + 1
    return jnp.maximum(twice, 0) if isinstance(twice, jax.Array) else np.maximum(twice, 0)


WINOGRAD_MIN_CHANNELS = 64  # "auto": input channels from which Winograd is used (the first conv has 1)


def uses_winograd(in_channels: int, dtype, algorithm: str = "auto") -> bool:
    """Whether `StridedConv2d` runs layers/strided_winograd.py: layers/winograd.py's rule for a 3-tap kernel
    ("winograd" always, "direct" never, "auto" for float32 on the CPU backend), with "auto" also needing at least
    WINOGRAD_MIN_CHANNELS input channels (elsewhere the patch matmul)."""
    return winograd_rule(3, dtype, algorithm) and (algorithm == "winograd" or in_channels >= WINOGRAD_MIN_CHANNELS)


class StridedConv2d(nn.Module):
    """3x3 VALID convolution with strides, params `kernel` (3, 3, C_in, C_out) and `bias` as `nn.Conv`.

    "direct": 9 strided slices stacked into patches and one matmul. On a 2-core CPU, XLA's convolution with
    32 channels ran at ~10 GFLOP/s here (a quarter of a base ASR step went to the frontend's second conv); the
    patch matmul runs at matmul speed and its backward is pads and a matmul. "winograd": polyphase Winograd
    tiles (layers/strided_winograd.py), the same parameters and, within float32 rounding, the same output."""

    features: int
    strides: tuple[int, int]
    dtype: jnp.dtype = jnp.float32
    algorithm: str = "auto"

    @nn.compact
    def __call__(self, x):
        _, t, f, c = x.shape
        st, sf = self.strides
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if uses_winograd(c, self.dtype, self.algorithm):
            y = strided_conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.strides)
            return y + bias.astype(self.dtype)
        t_out, f_out = output_size(t, st), output_size(f, sf)
        patches = jnp.concatenate([x[:, i : i + st * (t_out - 1) + 1 : st, j : j + sf * (f_out - 1) + 1 : sf]
                                   for i in range(3) for j in range(3)], axis=-1)  # (B, T', F', 9 C)
        return patches.astype(self.dtype) @ kernel.reshape(9 * c, self.features).astype(self.dtype) + bias


class Conv2dSubsampling(nn.Module):
    """ASR frontend: features (B, T, M), mask (B, T) -> (B, T / factor, dim), mask (B, T / factor): two stride-2
    (factor 4) or one stride-2 and one stride-1 (factor 2) 3x3 convolutions with ReLU, then a projection."""
    dim: int
    channels: int | None = None  # None: dim
    factor: int = 4
    dtype: jnp.dtype = jnp.float32
    conv_algorithm: str = "auto"  # StridedConv2d's: "auto", "winograd" or "direct" (the patch matmul)

    @nn.compact
    def __call__(self, features, mask):
        if self.factor not in FACTORS:
            raise ValueError(f"subsampling factor must be one of {sorted(FACTORS)}, got {self.factor}")
        s1, s2 = FACTORS[self.factor]
        channels = self.channels or self.dim
        h = (features * mask[..., None])[..., None].astype(self.dtype)  # (B, T, M, 1)
        h = nn.relu(StridedConv2d(channels, (s1, 2), self.dtype, self.conv_algorithm, name="conv_1")(h))
        h = nn.relu(StridedConv2d(channels, (s2, 2), self.dtype, self.conv_algorithm, name="conv_2")(h))
        b, t = h.shape[:2]
        h = nn.Dense(self.dim, dtype=self.dtype, name="proj")(h.reshape(b, t, -1))
        lengths = subsampled_length(mask.sum(-1), self.factor)
        out_mask = jnp.arange(t)[None, :] < lengths[:, None]
        return h * out_mask[..., None], out_mask
