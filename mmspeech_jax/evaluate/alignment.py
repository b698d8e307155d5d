"""Aligner quality against ground-truth phoneme boundaries (the embedded corpus has them)."""

from __future__ import annotations

import numpy as np


def boundary_error_ms(predicted, reference, token_lengths, hop_samples: int, sample_rate: int) -> float:
    """Mean |predicted - reference| position of the internal token boundaries, in milliseconds.

    predicted, reference: (B, N) frames per token; token_lengths (B,). Boundary k of an utterance with n tokens is
    the cumulative duration after token k, for k = 1..n-1 (the first and last boundaries are fixed by the lengths).
    """
    errors = []
    for p, r, n in zip(np.asarray(predicted), np.asarray(reference), np.asarray(token_lengths)):
        if n < 2:
            continue
        errors.append(np.abs(np.cumsum(p[:n])[:-1] - np.cumsum(r[:n])[:-1]))
    if not errors:
        return float("nan")
    return float(np.mean(np.concatenate(errors)) * hop_samples / sample_rate * 1000.0)
