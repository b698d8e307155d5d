"""Bottleneck adapters whose weights are inputs, not parameters (so a hypernetwork can generate them per example).

    x (B, T, D), mask (B, T), weights {down (B, D, R), down_bias (B, R), up (B, R, D), up_bias (B, D)}
      -> x + up(relu(down(normalize(x))))   (Houlsby et al., 2019), padded positions zero.

`normalize` is a LayerNorm without learned scale/offset (those would be backbone parameters). A stack of adapters
for L sites is the same dict with a leading L axis (`adapter_at(weights, i)` takes site i). `PlainAdapters` holds
per-site weights as ordinary parameters, shared by every example (the "plain adapters" baseline), and returns them
in the same layout; its `up` starts at zero, so fresh adapters leave the backbone unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

ADAPTER_KEYS = ("down", "down_bias", "up", "up_bias")


def adapter_forward(x, mask, weights: dict):
    """One adapter site; see the module docstring for shapes."""
    dtype = x.dtype
    mean = jnp.mean(x, axis=-1, keepdims=True)
    h = (x - mean) * jax.lax.rsqrt(jnp.var(x, axis=-1, keepdims=True) + 1e-5)
    h = jnp.einsum("btd,bdr->btr", h, weights["down"].astype(dtype)) + weights["down_bias"][:, None, :].astype(dtype)
    h = jnp.einsum("btr,brd->btd", nn.relu(h), weights["up"].astype(dtype)) + weights["up_bias"][:, None, :].astype(dtype)
    return (x + h) * mask[..., None].astype(dtype)


def adapter_at(weights: dict | None, site: int) -> dict | None:
    """Site `site` of a stacked adapter dict (leading axis L), or None when there are no adapters."""
    return None if weights is None else {k: v[site] for k, v in weights.items()}


def split_sites(weights: dict | None, sizes: tuple[int, ...]) -> list[dict | None]:
    """A stacked dict (L = sum(sizes)) -> consecutive stacked dicts of the given sizes (None stays None)."""
    if weights is None:
        return [None] * len(sizes)
    out, start = [], 0
    for size in sizes:
        out.append({k: v[start:start + size] for k, v in weights.items()})
        start += size
    return out


class PlainAdapters(nn.Module):
    """Learned adapter weights for `sites` sites, broadcast over the batch: batch_size -> stacked dict (L, B, ...)."""

    sites: int
    dim: int
    bottleneck: int

    @nn.compact
    def __call__(self, batch_size: int) -> dict:
        l, d, r = self.sites, self.dim, self.bottleneck
        params = {
            "down": self.param("down", nn.initializers.lecun_normal(batch_axis=(0,)), (l, d, r)),
            "down_bias": self.param("down_bias", nn.initializers.zeros, (l, r)),
            "up": self.param("up", nn.initializers.zeros, (l, r, d)),
            "up_bias": self.param("up_bias", nn.initializers.zeros, (l, d)),
        }
        return {k: jnp.broadcast_to(v[:, None], (l, batch_size) + v.shape[1:]) for k, v in params.items()}
