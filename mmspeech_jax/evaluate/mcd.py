"""Mel-cepstral distortion with dynamic time warping, and F0 RMSE.

MCD (Kubichek, 1993) in dB: (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2), averaged over the DTW path. Two cepstra:
  * `mcd_sptk` — the established one, comparable with published LJSpeech figures (ESPnet's
    `pyscripts/utils/evaluate_mcd.py`): SPTK mel-cepstra (`pysptk.mcep`, etype 1, eps 1e-6) of Hamming-windowed
    waveform frames (n_fft 1024, shift 256), order and all-pass constant by sample rate (34 and 0.45 at 22.05 kHz;
    `SPTK_PARAMS`), c0 included;
  * `mcd_dtw` — the zoo's quick one on log-mel features alone (no waveform needed): cepstra of the log-mel frames
    (orthonormal DCT-II, c1..c24, c0 excluded). Its dB are not comparable with the literature's.
DTW uses the Euclidean distance between cepstra and the symmetric step pattern (diagonal, vertical, horizontal).
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

MCD_CONSTANT = 10.0 / np.log(10.0) * np.sqrt(2.0)


def mel_cepstrum(log_mel: np.ndarray, order: int = 24) -> np.ndarray:
    """(T, M) natural-log mel -> (T, order) cepstral coefficients c1..c_order."""
    return dct(np.asarray(log_mel, np.float64), type=2, norm="ortho", axis=-1)[:, 1 : order + 1]


def dtw_path(cost: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Minimum-cost monotonic path from (0, 0) to (I-1, J-1) of an (I, J) float cost matrix, steps diagonal,
    vertical, horizontal. Returns (total cost, path as (i, j) pairs). Exact (not fastdtw's approximation); the
    accumulated costs are computed one anti-diagonal at a time (all cells with i + j = k depend only on the two
    previous anti-diagonals), so the Python loop runs I + J times, not I * J."""
    cost = np.asarray(cost, np.float64)
    rows, cols = cost.shape
    acc = np.full((rows + 1, cols + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, rows + cols + 1):  # 1-based cell (i, j) with i + j = k
        i = np.arange(max(1, k - cols), min(rows, k - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    path, i, j = [], rows, cols
    while (i, j) != (0, 0):
        path.append((i - 1, j - 1))
        moves = {(i - 1, j - 1): acc[i - 1, j - 1], (i - 1, j): acc[i - 1, j], (i, j - 1): acc[i, j - 1]}
        i, j = min(moves, key=moves.get)
    return float(acc[rows, cols]), path[::-1]


def mcd_dtw(reference_log_mel: np.ndarray, predicted_log_mel: np.ndarray, order: int = 24) -> float:
    """MCD in dB between two log-mel sequences (T1, M) and (T2, M) after DTW alignment."""
    a, b = mel_cepstrum(reference_log_mel, order), mel_cepstrum(predicted_log_mel, order)
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    _, path = dtw_path(cost)
    return float(MCD_CONSTANT * np.mean([cost[i, j] for i, j in path]))


# Sample rate -> (mel-cepstrum order, all-pass constant alpha), ESPnet's choices per rate.
SPTK_PARAMS = {16000: (23, 0.42), 22050: (34, 0.45), 24000: (34, 0.46), 44100: (39, 0.53), 48000: (39, 0.55)}


def sptk_mel_cepstrum(audio: np.ndarray, sample_rate: int, n_fft: int = 1024, shift: int = 256) -> np.ndarray:
    """Waveform (S,) float -> SPTK mel-cepstra (frames, order + 1) float64 of its Hamming-windowed frames (no
    padding: frames = (S - n_fft) // shift + 1). `ConfigError` for a rate without parameters in `SPTK_PARAMS`."""
    import pysptk

    from mmspeech_jax.errors import ConfigError

    if sample_rate not in SPTK_PARAMS:
        raise ConfigError(f"MCD: no mel-cepstrum parameters for {sample_rate} Hz (known: {sorted(SPTK_PARAMS)})")
    order, alpha = SPTK_PARAMS[sample_rate]
    audio = np.asarray(audio, np.float64)
    window = pysptk.sptk.hamming(n_fft)
    frames = max((audio.size - n_fft) // shift + 1, 0)
    return np.stack([pysptk.mcep(audio[k * shift: k * shift + n_fft] * window, order, alpha, eps=1e-6, etype=1)
                     for k in range(frames)]) if frames else np.zeros((0, order + 1))


def mcd_sptk(reference_audio: np.ndarray, synthesized_audio: np.ndarray, sample_rate: int) -> float:
    """MCD in dB between two waveforms (any lengths, same rate) the established way (see the module docstring)."""
    a, b = sptk_mel_cepstrum(reference_audio, sample_rate), sptk_mel_cepstrum(synthesized_audio, sample_rate)
    if not len(a) or not len(b):
        return float("nan")
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    _, path = dtw_path(cost)
    return float(MCD_CONSTANT * np.mean([cost[i, j] for i, j in path]))


def f0_rmse(f0_a, voiced_a, f0_b, voiced_b) -> tuple[float, float]:
    """(RMSE in Hz over frames voiced in both, voicing decision error rate) for equal-length contours."""
    f0_a, f0_b = np.asarray(f0_a, np.float64), np.asarray(f0_b, np.float64)
    voiced_a, voiced_b = np.asarray(voiced_a, bool), np.asarray(voiced_b, bool)
    both = voiced_a & voiced_b
    rmse = float(np.sqrt(np.mean((f0_a[both] - f0_b[both]) ** 2))) if both.any() else float("nan")
    return rmse, float(np.mean(voiced_a != voiced_b))
