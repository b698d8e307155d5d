"""Multimodal fusion: a primary sequence (B, T, D) with mask (B, T), conditioned on one or more other inputs.

A conditioning input is a vector (B, C) or a sequence (B, S, C) with its own mask (B, S) (True = valid). Several
inputs are passed as a list (each with its own width C; masks in a parallel list, `None` for vectors and unmasked
sequences). Every module returns (B, T, D) with padded positions zero; padding of either input never changes a valid
position's output; each runs under `jit` and `vmap` and computes in `dtype` (float32 or bfloat16) with float32
parameters.

  * `ConcatFusion` — pooled condition concatenated to every frame, then projected back to D (`mode="concat"`), or
    projected and added (`mode="sum"`).
  * `FiLM` — feature-wise scale and shift from the pooled condition: x * (1 + gamma) + beta (Perez et al., 2018).
    The projection starts at zero, so a fresh FiLM is the identity.
  * `CrossAttentionFusion` — primary queries attend over the conditioning tokens (a vector is one token), residual.
  * `GatedCrossAttention` — the same plus a gated feed-forward, each branch scaled by tanh(alpha) with alpha = 0 at
    initialisation (Flamingo, Alayrac et al., 2022): inserting it leaves a pretrained model's function unchanged.
  * `BottleneckFusion` — two modality streams exchange information only through a few shared bottleneck tokens
    (Nagrani et al., 2021, "Attention Bottlenecks for Multimodal Fusion"); returns both updated streams.

Pooling a sequence condition is the masked mean over S. Every module except `BottleneckFusion` is called as
`module(x, mask, cond, cond_mask=None, *, train=False)`, so a model can swap one for another (`train` switches
dropout where a module has any).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.layers.dropout import Dropout
from mmspeech_jax.layers.transformer import FFTBlock, FFTBlockConfig

Array = jax.Array
Conditions = Union[Array, Sequence[Array]]
Masks = Union[Array, None, Sequence[Union[Array, None]]]


def as_condition_list(cond: Conditions, cond_mask: Masks = None) -> list[tuple[Array, Array | None]]:
    """Normalises the accepted forms to [(array (B, C) or (B, S, C), mask (B, S) or None), ...]."""
    conds = [cond] if not isinstance(cond, (list, tuple)) else list(cond)
    masks = cond_mask if isinstance(cond_mask, (list, tuple)) else [cond_mask] * len(conds)
    if len(masks) != len(conds):
        raise ValueError(f"{len(conds)} conditioning inputs but {len(masks)} masks")
    out = []
    for c, m in zip(conds, masks):
        if c.ndim not in (2, 3):
            raise ValueError(f"a conditioning input must be (B, C) or (B, S, C), got shape {c.shape}")
        if m is not None and (c.ndim != 3 or m.shape != c.shape[:2]):
            raise ValueError(f"conditioning mask {m.shape} does not match input {c.shape}")
        out.append((c, m))
    return out


def pool_condition(c: Array, mask: Array | None) -> Array:
    """(B, C) stays; (B, S, C) -> masked mean over S (0 where a row has no valid position)."""
    if c.ndim == 2:
        return c
    if mask is None:
        return jnp.mean(c, axis=1)
    m = mask[..., None].astype(c.dtype)
    return jnp.sum(c * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1)


def pooled_conditions(cond: Conditions, cond_mask: Masks = None) -> Array:
    """All conditioning inputs pooled and concatenated: (B, sum of C)."""
    return jnp.concatenate([pool_condition(c, m) for c, m in as_condition_list(cond, cond_mask)], axis=-1)


class ConcatFusion(nn.Module):
    """x (B, T, D), mask (B, T), condition(s) -> (B, T, D). `mode`: "concat" (Dense over [x; c]) or "sum" (x + Dense(c))."""

    mode: str = "concat"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, cond: Conditions, cond_mask: Masks = None, *, train: bool = False):
        if self.mode not in ("concat", "sum"):
            raise ValueError(f"ConcatFusion.mode must be 'concat' or 'sum', got {self.mode!r}")
        d = x.shape[-1]
        c = pooled_conditions(cond, cond_mask).astype(self.dtype)
        x = x.astype(self.dtype)
        if self.mode == "sum":
            out = x + nn.Dense(d, dtype=self.dtype, name="cond_proj")(c)[:, None, :]
        else:
            tiled = jnp.broadcast_to(c[:, None, :], x.shape[:2] + c.shape[-1:])
            out = nn.Dense(d, dtype=self.dtype, name="proj")(jnp.concatenate([x, tiled], axis=-1))
        return out * mask[..., None].astype(out.dtype)


class FiLM(nn.Module):
    """x (B, T, D), mask, condition(s) -> x * (1 + gamma(c)) + beta(c); identity at initialisation."""

    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, cond: Conditions, cond_mask: Masks = None, *, train: bool = False):
        d = x.shape[-1]
        c = pooled_conditions(cond, cond_mask).astype(self.dtype)
        gamma, beta = jnp.split(nn.Dense(2 * d, dtype=self.dtype, kernel_init=nn.initializers.zeros,
                                         name="film")(c)[:, None, :], 2, axis=-1)
        out = x.astype(self.dtype) * (1 + gamma) + beta
        return out * mask[..., None].astype(out.dtype)


class MultiHeadCrossAttention(nn.Module):
    """queries (B, T, D) attend over keys/values (B, S, D) with key mask (B, S) -> (B, T, D).

    A row with no valid key gets zero output (not a uniform average of padding, nor the output bias)."""

    heads: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, q_in, kv_in, kv_mask, *, train: bool):
        b, t, d = q_in.shape
        if d % self.heads:
            raise ValueError(f"dim {d} is not divisible by heads {self.heads}")
        dh = d // self.heads
        q = nn.Dense(d, dtype=self.dtype, name="query")(q_in).reshape(b, t, self.heads, dh)
        kv = nn.Dense(2 * d, dtype=self.dtype, name="key_value")(kv_in).reshape(b, kv_in.shape[1], 2, self.heads, dh)
        k, v = kv[:, :, 0], kv[:, :, 1]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(dh)
        logits = jnp.where(kv_mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = Dropout(self.dropout, deterministic=not train)(weights).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        return nn.Dense(d, dtype=self.dtype, name="out")(out) * jnp.any(kv_mask, axis=-1)[:, None, None].astype(self.dtype)


class ConditionTokens(nn.Module):
    """Condition(s) -> one token sequence (B, S_total, D) and mask: each input projected to D by its own Dense; a
    vector becomes one always-valid token."""

    dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, cond: Conditions, cond_mask: Masks = None):
        tokens, masks = [], []
        for i, (c, m) in enumerate(as_condition_list(cond, cond_mask)):
            seq = c[:, None, :] if c.ndim == 2 else c
            tokens.append(nn.Dense(self.dim, dtype=self.dtype, name=f"cond_proj_{i}")(seq.astype(self.dtype)))
            masks.append(jnp.ones(seq.shape[:2], bool) if m is None else m.astype(bool))
        return jnp.concatenate(tokens, axis=1), jnp.concatenate(masks, axis=1)


class CrossAttentionFusion(nn.Module):
    """x (B, T, D), mask, condition(s) -> x + CrossAttention(LayerNorm(x), condition tokens)."""

    heads: int = 2
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, cond: Conditions, cond_mask: Masks = None, *, train: bool = False):
        d = x.shape[-1]
        kv, kv_mask = ConditionTokens(d, self.dtype, name="condition")(cond, cond_mask)
        h = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
        h = MultiHeadCrossAttention(self.heads, self.dropout, self.dtype, name="attention")(h, kv, kv_mask, train=train)
        out = x.astype(self.dtype) + Dropout(self.dropout, deterministic=not train)(h)
        return out * mask[..., None].astype(out.dtype)


class GatedCrossAttention(nn.Module):
    """x + tanh(a) * CrossAttention(LN(x), c), then + tanh(b) * FFN(LN(.)); a = b = 0 at init (identity)."""

    heads: int = 2
    ffn_multiplier: int = 4
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, cond: Conditions, cond_mask: Masks = None, *, train: bool = False):
        d = x.shape[-1]
        m = mask[..., None].astype(self.dtype)
        kv, kv_mask = ConditionTokens(d, self.dtype, name="condition")(cond, cond_mask)
        attention_gate = self.param("attention_gate", nn.initializers.zeros, ())
        ffn_gate = self.param("ffn_gate", nn.initializers.zeros, ())
        h = nn.LayerNorm(dtype=self.dtype, name="attention_norm")(x)
        h = MultiHeadCrossAttention(self.heads, self.dropout, self.dtype, name="attention")(h, kv, kv_mask, train=train)
        x = (x.astype(self.dtype) + jnp.tanh(attention_gate).astype(self.dtype) * h) * m
        h = nn.LayerNorm(dtype=self.dtype, name="ffn_norm")(x)
        h = nn.Dense(self.ffn_multiplier * d, dtype=self.dtype, name="ffn_in")(h)
        h = nn.Dense(d, dtype=self.dtype, name="ffn_out")(Dropout(self.dropout, deterministic=not train)(nn.gelu(h)))
        return (x + jnp.tanh(ffn_gate).astype(self.dtype) * h) * m


@dataclasses.dataclass(frozen=True)
class BottleneckFusionConfig:
    """`BottleneckFusion`: width, heads, shared bottleneck tokens, layers, feed-forward multiplier, dropout. Checked
    when built."""
    dim: int = 256
    heads: int = 2
    bottlenecks: int = 4
    layers: int = 2
    ffn_multiplier: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        config_checks.integers(self, dim=1, heads=1, bottlenecks=1, layers=1, ffn_multiplier=1)
        config_checks.divisible(self, "dim", "heads")
        config_checks.fraction(self, "dropout")


class BottleneckFusion(nn.Module):
    """Two streams x (B, T, D) and y (B, S, Cy) (projected to D), masks (B, T), (B, S) -> (x', y'), (B, T, D) and
    (B, S, D). Per layer each stream runs a Transformer block over [stream; bottleneck tokens]; the two streams'
    updated bottleneck tokens are averaged and carried to the next layer. The streams never attend to each other
    directly."""

    config: BottleneckFusionConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, x_mask, y, y_mask, *, train: bool = False):
        c = self.config
        b, t = x.shape[:2]
        y = nn.Dense(c.dim, dtype=self.dtype, name="y_proj")(y.astype(self.dtype))
        x = x.astype(self.dtype)
        z = jnp.broadcast_to(self.param("bottleneck", nn.initializers.normal(0.02), (c.bottlenecks, c.dim)),
                             (b, c.bottlenecks, c.dim)).astype(self.dtype)
        z_mask = jnp.ones((b, c.bottlenecks), bool)
        block = FFTBlockConfig(c.dim, c.heads, c.ffn_multiplier * c.dim, (1, 1), c.dropout)  # kernel 1: position-wise
        for i in range(c.layers):
            hx = FFTBlock(block, self.dtype, name=f"x_block_{i}")(jnp.concatenate([x, z], 1),
                                                                  jnp.concatenate([x_mask, z_mask], 1), train=train)
            hy = FFTBlock(block, self.dtype, name=f"y_block_{i}")(jnp.concatenate([y, z], 1),
                                                                  jnp.concatenate([y_mask, z_mask], 1), train=train)
            x, y = hx[:, :t], hy[:, : y.shape[1]]
            z = (hx[:, t:] + hy[:, y.shape[1]:]) / 2
        return x * x_mask[..., None].astype(x.dtype), y * y_mask[..., None].astype(y.dtype)
