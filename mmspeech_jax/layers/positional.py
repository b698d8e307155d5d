"""Sinusoidal position encodings (Vaswani et al., 2017, §3.5), for absolute positions or relative offsets."""

from __future__ import annotations

import numpy as np


def sinusoidal_encoding(positions, dim: int) -> np.ndarray:
    """(len(positions), dim) float32: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)."""
    positions = np.asarray(positions, dtype=np.float64)[:, None]
    rates = 1.0 / (10000.0 ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    table = np.zeros((positions.shape[0], dim))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: dim // 2])
    return table.astype(np.float32)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """Absolute positions 0 .. length - 1: (length, dim)."""
    return sinusoidal_encoding(np.arange(length), dim)


def relative_offsets_encoding(n: int, dim: int) -> np.ndarray:
    """Offsets n - 1, n - 2, ..., -(n - 1): (2n - 1, dim). Row (n - 1) - (i - j) encodes offset i - j."""
    return sinusoidal_encoding(np.arange(n - 1, -n, -1), dim)
