"""The low-resource setting: a seeded fraction of a cache's training utterances keeps its labels (paired data); the
experiments that compare pretraining strategies all draw the same one from the same seed."""

from __future__ import annotations

import numpy as np


def labelled_subset(cache, fraction: float, seed: int) -> np.ndarray:
    """A seeded `fraction` of the cache's "train" rows (at least one), sorted: (K,) int64 row indices."""
    rows = cache.indices("train")
    count = max(1, int(round(fraction * rows.size)))
    return np.sort(np.random.default_rng([seed, 10]).permutation(rows)[:count])
