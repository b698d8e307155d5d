"""Aligner quality: against ground-truth phoneme boundaries where a corpus has them (the embedded corpus), and
without labels (any corpus, LJSpeech included) from how sharply the soft alignment backs its own hard path."""

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


def path_log_probability(log_alignment, hard_alignment) -> tuple[float, int]:
    """(sum of log P(token | frame) of the soft alignment over the cells of the hard path, number of path frames).

    log_alignment (B, T, N) log-probabilities (any value, -inf included, off the path); hard_alignment (B, T, N)
    0/1, one token per valid frame (monotonic alignment search), zero on padding. Summed over batches,
    exp(total / frames) is the geometric mean probability of the path: near 1 once the alignment has formed and
    the hard path follows it, about 1 / (tokens per utterance) while it is still spread out; no labels needed.
    """
    hard = np.asarray(hard_alignment) > 0
    return float(np.sum(np.where(hard, np.asarray(log_alignment, np.float64), 0.0))), int(hard.sum())
