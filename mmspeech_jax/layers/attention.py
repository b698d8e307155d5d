"""Multi-head self-attention with a key/query padding mask, absolute or relative positions.

x (B, N, D), mask (B, N) bool (True = valid) -> (B, N, D). Padded keys get no attention weight; padded query rows
are zeroed, so padding never changes a valid position's output. References: Vaswani et al. (2017), §3.2.

`relative_positions=True` adds the Transformer-XL score terms used by the Conformer (Dai et al., 2019, §3.3;
Gulati et al., 2020): logits[i, j] = (q_i + u) . k_j + (q_i + v) . W_r r_{i-j}, with r the sinusoidal encoding of
the offset i - j and u, v learned per-head biases. One implementation serves FastSpeech2 (absolute positions added
to the input) and the ASR Conformer (relative positions inside the attention).

`lora_rank > 0` adds a low-rank update to the query/key/value and output projections (Hu et al., 2021):
W x + (alpha / r) B A x, B initialised to zero so a fresh adapter leaves the pretrained function unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmspeech_jax.layers.dropout import Dropout
from mmspeech_jax.layers.positional import relative_offsets_encoding


class LoRADense(nn.Module):
    """`nn.Dense` with the same parameter names (`kernel`, `bias`) plus, when `lora_rank > 0`, `lora_a` (D, r) and
    `lora_b` (r, F): a pretrained checkpoint without LoRA loads into it unchanged."""

    features: int
    lora_rank: int = 0
    lora_alpha: float = 16.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = x.astype(self.dtype)
        y = x @ kernel.astype(self.dtype) + bias.astype(self.dtype)
        if self.lora_rank > 0:
            a = self.param("lora_a", nn.initializers.normal(1.0 / self.lora_rank), (x.shape[-1], self.lora_rank))
            b = self.param("lora_b", nn.initializers.zeros, (self.lora_rank, self.features))
            y = y + (x @ a.astype(self.dtype)) @ b.astype(self.dtype) * (self.lora_alpha / self.lora_rank)
        return y


def relative_shift(scores: jax.Array) -> jax.Array:
    """(..., N, 2N - 1) scores per offset row -> (..., N, N) with out[i, j] = scores[i, (N - 1) - i + j].

    The Transformer-XL pad-and-reshape trick (Dai et al., 2019, appendix B): only a pad, reshapes and slices, so
    the backward pass is as cheap as the forward (a gather's backward would be a scatter-add).
    """
    *lead, n, m = scores.shape
    padded = jnp.pad(scores, [(0, 0)] * len(lead) + [(0, 0), (1, 0)])  # (..., N, 2N)
    shifted = padded.reshape(*lead, m + 1, n)[..., 1:, :].reshape(*lead, n, m)
    return shifted[..., :n]


class MultiHeadSelfAttention(nn.Module):
    dim: int
    heads: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32
    relative_positions: bool = False
    lora_rank: int = 0

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        b, n, _ = x.shape
        head_dim = self.dim // self.heads
        dense = lambda features, name: LoRADense(features, self.lora_rank, dtype=self.dtype, name=name)
        qkv = dense(3 * self.dim, "qkv")(x).reshape(b, n, 3, self.heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh)
        if self.relative_positions:
            u = self.param("pos_bias_u", nn.initializers.zeros, (self.heads, head_dim))
            w = self.param("pos_bias_v", nn.initializers.zeros, (self.heads, head_dim))
            r = nn.Dense(self.dim, use_bias=False, dtype=self.dtype, name="pos")(
                jnp.asarray(relative_offsets_encoding(n, self.dim), self.dtype)).reshape(2 * n - 1, self.heads, head_dim)
            logits = jnp.einsum("bqhd,bkhd->bhqk", q + u.astype(self.dtype), k)
            logits = logits + relative_shift(jnp.einsum("bqhd,rhd->bhqr", q + w.astype(self.dtype), r))
        else:
            logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)
        logits = logits.astype(jnp.float32) / jnp.sqrt(head_dim)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = Dropout(self.dropout, deterministic=not train)(weights).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, self.dim)
        out = dense(self.dim, "out")(out)
        return out * mask[..., None]
