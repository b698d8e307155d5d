"""Evaluation over a whole split as exact (sum, count) ratios, not an average of per-batch means.

Batches of a split hold different numbers of valid frames, tokens and utterances, so the mean of per-batch means
weighs a short last batch like a full one. Every loss in the zoo is a weighted sum of ratios `total_k / count_k`
whose counts come from the masks (`losses/ratios.py`): a first pass sums each batch's counts over the split, a
second evaluates every batch with those totals as denominators and sums the results. That is the value of the loss
and of every part on the split as one batch (up to float32 summation order). A loss that reports no counts falls
back to the mean of per-batch values (and says so in the result: `exact` False).
"""

from __future__ import annotations

from typing import Callable, Iterable

import jax
import numpy as np


def _host_scalars(tree) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(tree).items() if np.ndim(v) == 0}


def evaluate_split(eval_step: Callable, eval_counts: Callable, state, batches: Callable[[], Iterable[dict]],
                   rng) -> tuple[dict[str, float], bool]:
    """(loss and parts on the whole split, exact). `eval_step(state, batch, rng, counts)` and
    `eval_counts(state, batch, rng)` come from `train/step.make_eval_step` / `make_eval_counts` (jitted, the batch
    already placed); `batches()` yields the split's batches afresh on each call (it is called twice)."""
    totals: dict[str, float] = {}
    for batch in batches():
        for name, value in _host_scalars(eval_counts(state, batch, rng)).items():
            totals[name] = totals.get(name, 0.0) + value
    sums: dict[str, float] = {}
    count = 0
    counts = {name: np.float32(value) for name, value in totals.items()} if totals else None
    for batch in batches():
        for key, value in _host_scalars(eval_step(state, batch, rng, counts)).items():
            sums[key] = sums.get(key, 0.0) + value
        count += 1
    if counts is not None:
        return sums, True
    return {k: v / max(count, 1) for k, v in sums.items()}, False
