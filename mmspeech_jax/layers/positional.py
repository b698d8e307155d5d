"""Sinusoidal position encodings (Vaswani et al., 2017, §3.5)."""

from __future__ import annotations

import numpy as np


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """(length, dim) float32: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: dim // 2])
    return table.astype(np.float32)
