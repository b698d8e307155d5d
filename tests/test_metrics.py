"""MCD/DTW against brute force and known cases; F0 RMSE; aligner boundary error."""

import itertools

import numpy as np
import pytest

from mmspeech_jax.evaluate.alignment import boundary_error_ms
from mmspeech_jax.evaluate.mcd import MCD_CONSTANT, dtw_path, f0_rmse, mcd_dtw, mel_cepstrum


def all_paths(rows, cols):
    """Every monotonic path of (diagonal, down, right) steps from (0, 0) to (rows-1, cols-1)."""
    def extend(path):
        i, j = path[-1]
        if (i, j) == (rows - 1, cols - 1):
            yield path
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            if i + di < rows and j + dj < cols:
                yield from extend(path + [(i + di, j + dj)])
    yield from extend([(0, 0)])


def test_dtw_matches_brute_force():
    rng = np.random.default_rng(0)
    for rows, cols in itertools.product((2, 3, 4), (3, 4)):
        cost = rng.random((rows, cols))
        best = min(sum(cost[i, j] for i, j in p) for p in all_paths(rows, cols))
        total, path = dtw_path(cost)
        np.testing.assert_allclose(total, best, rtol=1e-12)
        np.testing.assert_allclose(sum(cost[i, j] for i, j in path), best, rtol=1e-12)


def double_loop_dtw_total(cost):
    """The textbook O(I * J) recursion, cell by cell, as the reference for the anti-diagonal version."""
    rows, cols = cost.shape
    acc = np.full((rows + 1, cols + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc[rows, cols]


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 7), (7, 1), (40, 55), (63, 17)])
def test_dtw_matches_the_double_loop_on_larger_matrices(rows, cols):
    cost = np.random.default_rng(rows * 100 + cols).random((rows, cols))
    total, path = dtw_path(cost)
    np.testing.assert_allclose(total, double_loop_dtw_total(cost), rtol=1e-12)
    np.testing.assert_allclose(sum(cost[i, j] for i, j in path), total, rtol=1e-12)
    assert path[0] == (0, 0) and path[-1] == (rows - 1, cols - 1)
    steps = np.diff(np.asarray(path), axis=0)
    assert {tuple(s) for s in steps} <= {(1, 1), (1, 0), (0, 1)}


def test_mcd_zero_for_identical_and_time_stretched():
    rng = np.random.default_rng(1)
    mel = rng.normal(size=(30, 80))
    assert mcd_dtw(mel, mel) == 0.0
    assert mcd_dtw(mel, np.repeat(mel, 2, axis=0)) == 0.0  # DTW absorbs a uniform slow-down


def test_mcd_of_a_constant_cepstral_offset():
    """Shifting every frame's c1 by delta gives MCD = K * |delta| exactly (frames aligned one to one)."""
    rng = np.random.default_rng(2)
    mel = rng.normal(size=(20, 80))
    from scipy.fft import idct

    ceps = mel_cepstrum(mel, 80 - 1)
    full = np.concatenate([np.zeros((20, 1)), ceps], axis=1) + 0
    shifted = full.copy()
    shifted[:, 1] += 0.3
    back_a = idct(full, type=2, norm="ortho", axis=-1)
    back_b = idct(shifted, type=2, norm="ortho", axis=-1)
    np.testing.assert_allclose(mcd_dtw(back_a, back_b), MCD_CONSTANT * 0.3, rtol=1e-6)


def test_f0_rmse_and_voicing_error():
    f0_a = np.array([100, 110, 0, 120, 130.0])
    f0_b = np.array([103, 0, 0, 116, 130.0])
    rmse, vde = f0_rmse(f0_a, f0_a > 0, f0_b, f0_b > 0)
    np.testing.assert_allclose(rmse, np.sqrt((9 + 16 + 0) / 3))
    np.testing.assert_allclose(vde, 1 / 5)


def test_boundary_error_ms():
    predicted = np.array([[2, 3, 5, 0], [4, 4, 0, 0]])
    reference = np.array([[3, 3, 4, 0], [4, 4, 0, 0]])
    # utterance 0: boundaries (2, 5) vs (3, 6) -> errors 1, 1 frames; utterance 1: (4) vs (4) -> 0
    expected = np.mean([1, 1, 0]) * 256 / 22050 * 1000
    np.testing.assert_allclose(boundary_error_ms(predicted, reference, [3, 2], 256, 22050), expected)


def test_path_probability_is_the_geometric_mean_on_the_hard_path():
    """Two utterances, padded: the path's cells hold 0.9, 0.6, 0.8 and 0.5, 1.0; the padding frame is -inf off and
    on the path (hard is 0 there) and must not turn the sum into NaN."""
    from mmspeech_jax.evaluate.alignment import path_log_probability

    soft = np.full((2, 3, 2), 0.25)
    hard = np.zeros((2, 3, 2))
    for b, t, n, p in [(0, 0, 0, 0.9), (0, 1, 0, 0.6), (0, 2, 1, 0.8), (1, 0, 0, 0.5), (1, 1, 1, 1.0)]:
        soft[b, t, n], hard[b, t, n] = p, 1
    log_soft = np.log(soft)
    log_soft[1, 2] = -np.inf  # utterance 2 has 2 frames
    total, frames = path_log_probability(log_soft, hard)
    assert frames == 5
    np.testing.assert_allclose(np.exp(total / frames), (0.9 * 0.6 * 0.8 * 0.5 * 1.0) ** (1 / 5), rtol=1e-12)
