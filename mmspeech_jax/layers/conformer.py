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
import jax
import jax.numpy as jnp
from jax import lax

from mmspeech_jax import config_checks
from mmspeech_jax.layers.attention import MultiHeadSelfAttention
from mmspeech_jax.layers.dense import Dense
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


def _shifted_sum(padded: jax.Array, taps: jax.Array, length: int) -> jax.Array:
    """sum_i padded[:, i : i + length] * taps[i]: (B, length + K - 1, D), (K, D) -> (B, length, D), one fused pass."""
    return sum(padded[:, i : i + length] * taps[i] for i in range(taps.shape[0]))


@jax.custom_vjp
def depthwise_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """'SAME' depthwise convolution: x (B, T, D), kernel (K, D) -> (B, T, D), y[t] = sum_i x[t + i - (K - 1) // 2] k[i].

    Forward and input gradient are K shifted multiply-adds each, which XLA fuses into one pass. The backward pass is
    written out because under autodiff XLA kept every one of the K shifted copies of x from the forward pass for
    the kernel gradient: K separate (B, T, D) buffers written per layer (30 fusions of ~1 ms each per `conformer_s`
    block, 2-core CPU). Here the residuals are x and the kernel only, and the backward pass slices x anew."""
    return _depthwise_forward(x, kernel)[0]


def _depthwise_forward(x, kernel):
    k, left = kernel.shape[0], (kernel.shape[0] - 1) // 2
    padded = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    return _shifted_sum(padded, kernel, x.shape[1]), (x, kernel)


def _depthwise_backward(residuals, dy):
    x, kernel = residuals
    k, left, t = kernel.shape[0], (kernel.shape[0] - 1) // 2, x.shape[1]
    # dx[t] = sum_i dy[t - i + left] k[i]: the same shifted sum over dy padded the other way, kernel reversed.
    dx = _shifted_sum(jnp.pad(dy, ((0, 0), (k - 1 - left, left), (0, 0))), kernel[::-1], t)
    # The barrier keeps XLA from merging these slices with the forward pass's identical ones (it then kept all K).
    padded = jnp.pad(lax.optimization_barrier(x), ((0, 0), (left, k - 1 - left), (0, 0)))
    # dk[i] = sum_{b, t} padded[b, t + i] dy[b, t]: one variadic reduction over t for all K taps, so x and dy are
    # read once (K separate sums cost ~4x as much: each wrote its product out before reducing it), then over b.
    # Summed in float32 whatever the compute dtype (a bf16 sum over T frames would lose the kernel gradient).
    padded, dy32 = padded.astype(jnp.float32), dy.astype(jnp.float32)
    products = tuple(padded[:, i : i + t] * dy32 for i in range(k))
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in range(k))
    sums = lax.reduce(products, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (1,))  # K x (B, D)
    return dx, jnp.stack(sums).sum(axis=1).astype(kernel.dtype)


depthwise_conv1d.defvjp(_depthwise_forward, _depthwise_backward)


class DepthwiseConv1D(nn.Module):
    """Depthwise 1-D convolution, 'SAME' padding: params `kernel` (K, 1, D) and `bias` (D,) as `nn.Conv` with
    `feature_group_count=D`. Computed by `depthwise_conv1d` (shifted multiply-adds): on a 2-core CPU XLA's grouped
    convolution was 3x slower here (forward + backward at B=16, T=352, D=144, K=15)."""

    kernel_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        d, k = x.shape[-1], self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, 1, d)).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros, (d,)).astype(self.dtype)
        return depthwise_conv1d(x.astype(self.dtype), kernel[:, 0]) + bias


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
