"""Conformer block (Gulati et al., 2020, §2): macaron feed-forward, relative-position self-attention, convolution.

    x = x + 1/2 FF(x);  x = x + MHSA_rel(x);  x = x + Conv(x);  x = x + 1/2 FF(x);  x = LayerNorm(x)

x (B, T, D), mask (B, T) bool -> (B, T, D). The convolution module is pointwise conv (D -> 2D) -> GLU ->
depthwise conv (kernel K) -> LayerNorm -> Swish -> pointwise conv -> dropout. The paper uses BatchNorm after the
depthwise conv; LayerNorm is used here so the model stays stateless (no batch statistics in the params pytree) and
padding can never change a valid frame's output (BatchNorm statistics would mix in padded frames).

Optional bottleneck adapters (Houlsby et al., 2019): `adapter_dim > 0` adds x + W_up relu(W_down LN(x)) after the
block, W_up initialised to zero so a fresh adapter leaves a pretrained encoder unchanged.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.layers.attention import MultiHeadSelfAttention
from mmspeech_jax.layers.dense import Dense
from mmspeech_jax.layers.depthwise import DepthwiseConv1D
from mmspeech_jax.layers.dropout import Dropout


@dataclasses.dataclass(frozen=True)
class ConformerBlockConfig:
    """One Conformer block: width, heads, feed-forward width, depthwise kernel, dropout rates, optional adapter width
    and LoRA rank (0: none), remat. Checked when built."""
    dim: int = 256
    heads: int = 4
    ffn_dim: int = 1024
    conv_kernel: int = 31
    dropout: float = 0.1
    attention_dropout: float = 0.1
    adapter_dim: int = 0  # 0: no adapters
    lora_rank: int = 0  # 0: no LoRA on the attention projections
    remat: bool = False  # recompute each block's activations in the backward pass (see FFTBlockConfig.remat)

    def __post_init__(self):
        config_checks.integers(self, dim=1, heads=1, ffn_dim=1, conv_kernel=1, adapter_dim=0, lora_rank=0)
        config_checks.divisible(self, "dim", "heads")
        config_checks.fraction(self, "dropout", "attention_dropout")
        config_checks.flag(self, "remat")


class FeedForward(nn.Module):
    """Conformer (macaron) feed-forward: x (B, T, D) -> (B, T, D): LayerNorm, Dense to `hidden`, swish, dropout,
    Dense back, dropout. The block adds half of it."""
    dim: int
    hidden: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        h = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
        h = nn.swish(Dense(self.hidden, dtype=self.dtype, name="in")(h))
        h = Dropout(self.dropout, deterministic=not train)(h)
        h = Dense(self.dim, dtype=self.dtype, name="out")(h)
        return Dropout(self.dropout, deterministic=not train)(h)


class ConvolutionModule(nn.Module):
    """Conformer convolution module: x (B, T, D), mask (B, T) -> (B, T, D): LayerNorm, pointwise GLU, depthwise
    convolution (padding zeroed first, so it never leaks into valid frames), LayerNorm, swish, pointwise, dropout."""
    dim: int
    kernel: int
    dropout: float
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        m = mask[..., None].astype(x.dtype)
        h = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
        h = nn.glu(Dense(2 * self.dim, dtype=self.dtype, name="pointwise_in")(h), axis=-1) * m
        h = DepthwiseConv1D(self.kernel, self.dtype, name="depthwise")(h)
        h = nn.swish(nn.LayerNorm(dtype=self.dtype, name="depthwise_norm")(h))
        h = Dense(self.dim, dtype=self.dtype, name="pointwise_out")(h)
        return Dropout(self.dropout, deterministic=not train)(h) * m


class Adapter(nn.Module):
    """Bottleneck adapter: x + up(relu(down(LN(x)))), zero-initialised up projection."""

    bottleneck: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
        h = nn.relu(Dense(self.bottleneck, dtype=self.dtype, name="down")(h))
        return x + Dense(x.shape[-1], kernel_init=nn.initializers.zeros, dtype=self.dtype, name="up")(h)


class ConformerBlock(nn.Module):
    """x (B, T, D), mask (B, T) bool (True = valid) -> (B, T, D): half feed-forward, relative-position self-attention,
    convolution module, half feed-forward, final LayerNorm (stateless: no BatchNorm); padded frames are zero."""
    config: ConformerBlockConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, train: bool):
        c = self.config
        m = mask[..., None].astype(x.dtype)
        x = x + 0.5 * FeedForward(c.dim, c.ffn_dim, c.dropout, self.dtype, name="ffn_1")(x, train=train)
        h = nn.LayerNorm(dtype=self.dtype, name="attention_norm")(x)
        h = MultiHeadSelfAttention(c.dim, c.heads, c.attention_dropout, self.dtype, relative_positions=True,
                                   lora_rank=c.lora_rank, name="attention")(h, mask, train=train)
        x = (x + Dropout(c.dropout, deterministic=not train)(h)) * m
        x = x + ConvolutionModule(c.dim, c.conv_kernel, c.dropout, self.dtype, name="conv")(x, mask, train=train)
        x = x + 0.5 * FeedForward(c.dim, c.ffn_dim, c.dropout, self.dtype, name="ffn_2")(x, train=train)
        x = nn.LayerNorm(dtype=self.dtype, name="final_norm")(x)
        if c.adapter_dim > 0:
            x = Adapter(c.adapter_dim, self.dtype, name="adapter")(x)
        return x * m


class ConformerStack(nn.Module):
    """`layers` Conformer blocks. x (B, T, D) -> (B, T, D); positions are relative, inside the attention."""

    config: ConformerBlockConfig
    layers: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        x = x * mask[..., None]
        block = nn.remat(ConformerBlock, static_argnums=(3,)) if self.config.remat else ConformerBlock  # 3: `train`
        for i in range(self.layers):
            x = block(self.config, self.dtype, name=f"block_{i}")(x, mask, train)
        return x
