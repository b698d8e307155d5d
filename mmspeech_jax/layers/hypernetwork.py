"""A hypernetwork that generates bottleneck-adapter weights from a conditioning vector (after HyperTTS, Li et al.,
2024): one shared MLP, asked once per adapter site with (condition, learned site embedding).

    condition (B, E) -> stacked adapter dict (L, B, ...) in the layout of `layers/adapter.py`:
      down (L, B, D, R), down_bias (L, B, R), up (L, B, R, D), up_bias (L, B, D)

The head that generates `up` and `up_bias` starts at zero, so every generated adapter is the identity at
initialisation and the conditioned model equals its backbone; the `down` head is randomly initialised (were both
zero, neither would ever receive a gradient). Its trainable size does not grow with the number of voices.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class AdapterHypernetwork(nn.Module):
    """Generates bottleneck-adapter weights: condition (B, C) -> per site (`sites` of them) down (B, dim, bottleneck)
    and up (B, bottleneck, dim) matrices with biases, from (condition, learned site embedding) through a small MLP."""
    sites: int
    dim: int
    bottleneck: int
    site_dim: int = 32
    hidden: int = 128

    @nn.compact
    def __call__(self, condition):
        l, d, r = self.sites, self.dim, self.bottleneck
        b = condition.shape[0]
        site = self.param("site_embedding", nn.initializers.normal(1.0), (l, self.site_dim))
        z = jnp.concatenate([jnp.broadcast_to(condition[None], (l,) + condition.shape),
                             jnp.broadcast_to(site[:, None], (l, b, self.site_dim))], axis=-1)
        z = nn.relu(nn.Dense(self.hidden, name="hidden_0")(z))
        z = nn.relu(nn.Dense(self.hidden, name="hidden_1")(z))
        down = nn.Dense(d * r + r, name="down_head")(z) / jnp.sqrt(d)
        up = nn.Dense(r * d + d, kernel_init=nn.initializers.zeros, name="up_head")(z)
        return {"down": down[..., : d * r].reshape(l, b, d, r), "down_bias": down[..., d * r:],
                "up": up[..., : r * d].reshape(l, b, r, d), "up_bias": up[..., r * d:]}
