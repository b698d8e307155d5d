"""Every loss in the zoo is a weighted sum of ratios `total_k / count_k` whose counts depend only on the batch.

That makes gradient accumulation exact. A mean over valid positions of a micro-batch is not a term of the mean
over the whole batch (micro-batches hold different numbers of frames); `total_k / C_k`, with `C_k` the whole
batch's count, is. So a `loss_fn(params, batch, rng, train, step, counts=None)`:
  * divides each term by its local count when `counts` is None (one batch: the usual masked mean), else by
    `counts[name]` — the count summed over every micro-batch of the step;
  * reports its local counts in `parts["counts"]` ({name: scalar}), computed from masks and lengths only, so the
    step can gather them in a first pass that XLA reduces to a few mask sums (`train/step.py`).
Every other entry of `parts` is either such a ratio or an additive count, so summing parts over micro-batches
gives the whole batch's value.
"""

from __future__ import annotations

import jax.numpy as jnp


def ratio(total, count, name: str, counts: dict | None):
    """`total / count` (clamped to >= 1), or `total / counts[name]` when the step supplies the whole batch's count."""
    denominator = count if counts is None else counts[name]
    return total / jnp.maximum(jnp.asarray(denominator, jnp.float32), 1.0)


def masked_total(values, mask):
    """(sum of `values` where `mask`, number of those elements); `mask` broadcasts over trailing axes of values."""
    mask = mask.astype(values.dtype)
    while mask.ndim < values.ndim:
        mask = mask[..., None]
    return jnp.sum(values * mask), jnp.sum(jnp.broadcast_to(mask, values.shape))
