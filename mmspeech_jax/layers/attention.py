"""Multi-head self-attention with a key/query padding mask.

x (B, N, D), mask (B, N) bool (True = valid) -> (B, N, D). Padded keys get no attention weight; padded query rows
are zeroed, so padding never changes a valid position's output. References: Vaswani et al. (2017), §3.2.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class MultiHeadSelfAttention(nn.Module):
    dim: int
    heads: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        b, n, _ = x.shape
        head_dim = self.dim // self.heads
        qkv = nn.Dense(3 * self.dim, dtype=self.dtype, name="qkv")(x).reshape(b, n, 3, self.heads, head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, H, Dh)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(head_dim)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = nn.Dropout(self.dropout, deterministic=not train)(weights).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, self.dim)
        out = nn.Dense(self.dim, dtype=self.dtype, name="out")(out)
        return out * mask[..., None]
