"""The FFT block of FastSpeech (Ren et al., 2019, §3.1), pre-LayerNorm: self-attention + 1-D conv feed-forward.

x (B, N, D), mask (B, N) -> (B, N, D). Inputs to every convolution are masked first, so padding never leaks into
valid positions through the kernel. Reused by the FastSpeech2 encoder/decoder and the ASR Transformer variant.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from mmspeech_jax.layers.attention import MultiHeadSelfAttention
from mmspeech_jax.layers.dropout import Dropout


@dataclasses.dataclass(frozen=True)
class FFTBlockConfig:
    dim: int = 256
    heads: int = 2
    conv_filters: int = 1024
    conv_kernels: tuple[int, int] = (9, 1)
    dropout: float = 0.1
    # Dropout on the (B, H, N, N) attention weights. Costly on CPU (a mask as large as the attention matrix, in the
    # forward and backward pass); None means "same as dropout".
    attention_dropout: float | None = None


class FFTBlock(nn.Module):
    config: FFTBlockConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        c = self.config
        m = mask[..., None].astype(x.dtype)
        h = nn.LayerNorm(dtype=self.dtype, name="attention_norm")(x)
        attention_dropout = c.dropout if c.attention_dropout is None else c.attention_dropout
        h = MultiHeadSelfAttention(c.dim, c.heads, attention_dropout, self.dtype, name="attention")(h, mask, train=train)
        x = (x + Dropout(c.dropout, deterministic=not train)(h)) * m
        h = nn.LayerNorm(dtype=self.dtype, name="conv_norm")(x) * m
        h = nn.Conv(c.conv_filters, (c.conv_kernels[0],), padding="SAME", dtype=self.dtype, name="conv_in")(h)
        h = nn.relu(h) * m
        h = Dropout(c.dropout, deterministic=not train)(h)
        h = nn.Conv(c.dim, (c.conv_kernels[1],), padding="SAME", dtype=self.dtype, name="conv_out")(h)
        return (x + Dropout(c.dropout, deterministic=not train)(h)) * m


class FFTStack(nn.Module):
    """Positions + `layers` FFT blocks + final LayerNorm. x (B, N, D) -> (B, N, D)."""

    config: FFTBlockConfig
    layers: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        from mmspeech_jax.layers.positional import sinusoidal_positions

        x = x + sinusoidal_positions(x.shape[1], x.shape[2]).astype(x.dtype)
        x = Dropout(self.config.dropout, deterministic=not train)(x) * mask[..., None]
        for i in range(self.layers):
            x = FFTBlock(self.config, self.dtype, name=f"block_{i}")(x, mask, train=train)
        return nn.LayerNorm(dtype=self.dtype, name="final_norm")(x) * mask[..., None]
