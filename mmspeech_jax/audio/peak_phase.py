"""STFT phase from the magnitude alone, by following its spectral peaks (a phase-locked phase vocoder without an
analysis phase).

magnitude (..., T, F) float -> phase (..., T, F) float32 radians, F = n_fft // 2 + 1, frame t centred on sample
t * hop (the zoo's STFT conventions, `audio/features.py`).

In each frame:
  1. peaks: bins whose log magnitude is above both neighbours and within `floor_db` of the frame's largest;
  2. each peak's frequency: the vertex of the parabola through its log magnitude and its two neighbours' (in bins,
     p + delta with |delta| <= 1/2);
  3. each bin follows its nearest peak (ties to the lower one) and advances by that peak's frequency times hop.
Each bin's advances are summed over frames from 0 (the phase of frame 0 is 0), and a bin takes the summed phase of
its peak's bin minus pi * (k - p): the STFT of a steady sinusoid, windowed by a symmetric window centred on the
frame, has one phase across its main lobe up to that alternation. So a steady partial between two bin centres keeps
the phase advance it has in a real STFT, which a frame-rate network with identical input frames cannot produce (see
`models/istft_vocoder.centre_frequency_ramp`), and the bins of one partial stay locked together.

The phase is a function of the magnitude that carries no gradient (`jax.lax.stop_gradient`).

Reference: Laroche & Dolson (1999), "Improved phase vocoder time-scale modification of audio", IEEE Trans. Speech
Audio Process. 7(3) (identity phase locking to peaks); Smith & Serra (1987), PARSHL (parabolic peak interpolation on
the log magnitude).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _neighbours(log_m):
    """(..., F) -> each bin's left and right neighbour (..., F), -inf beyond the ends."""
    edge = jnp.full(log_m.shape[:-1] + (1,), -jnp.inf, log_m.dtype)
    return jnp.concatenate([edge, log_m[..., :-1]], -1), jnp.concatenate([log_m[..., 1:], edge], -1)


def nearest_peak(log_m, floor_db: float = -60.0, margin: float = 0.0):
    """log magnitude (..., F) float -> (..., F) int32: each bin's nearest spectral peak (ties to the lower one). A peak
    is a bin more than `margin` above its left neighbour, not below its right one, and within `floor_db` (a negative
    number of dB) of its row's largest; a row without one (e.g. all equal) has bin 0 as its only peak. Shared by
    `peak_locked_phase` (margin 0) and `audio/phase_gradient.phase_gradient_phase`."""
    bins = log_m.shape[-1]
    left, right = _neighbours(log_m)
    floor = jnp.max(log_m, -1, keepdims=True) + floor_db / 20.0 * np.log(10.0)
    k = jnp.arange(bins)
    is_peak = (log_m > left + margin) & (log_m >= right) & (log_m > floor)
    is_peak = is_peak | ((k == 0) & ~jnp.any(is_peak, -1, keepdims=True))
    below = jax.lax.cummax(jnp.where(is_peak, k, -2 * bins), axis=log_m.ndim - 1)
    above = jax.lax.cummin(jnp.where(is_peak, k, 3 * bins), axis=log_m.ndim - 1, reverse=True)
    return jnp.clip(jnp.where(k - below <= above - k, below, above), 0, bins - 1)


def peak_locked_phase(magnitude, n_fft: int, hop: int, floor_db: float = -60.0):
    """magnitude (..., T, F) float, F = n_fft // 2 + 1 -> phase (..., T, F) float32 radians (see the module
    docstring). A frame with no peak above the floor (all equal, e.g. silence) follows bin 0 (phase 0 - pi k).

    Args:
      magnitude: non-negative STFT magnitudes; zeros are allowed (floored at 1e-9 before the log).
      n_fft, hop: the STFT's FFT size and hop in samples.
      floor_db: peaks lower than the frame's largest by more than this (a negative number of dB) are ignored."""
    magnitude = jnp.asarray(magnitude, jnp.float32)
    bins = magnitude.shape[-1]
    if bins != n_fft // 2 + 1:
        raise ValueError(f"peak_locked_phase: {bins} bins, expected n_fft // 2 + 1 = {n_fft // 2 + 1}")
    log_m = jnp.log(jnp.maximum(magnitude, 1e-9))
    left, right = _neighbours(log_m)
    k = jnp.arange(bins)
    a = jnp.where(jnp.isfinite(left), left, log_m)
    c = jnp.where(jnp.isfinite(right), right, log_m)
    curvature = a - 2.0 * log_m + c
    safe = jnp.where(jnp.abs(curvature) > 1e-12, curvature, 1.0)
    delta = jnp.clip(jnp.where(jnp.abs(curvature) > 1e-12, 0.5 * (a - c) / safe, 0.0), -0.5, 0.5)
    peak = nearest_peak(log_m, floor_db)

    # Advance of bin k = 2 pi (p + delta_p) hop / n_fft, with p * hop reduced modulo n_fft in integers (exact).
    whole = (peak * hop) % n_fft
    advance = (2.0 * np.pi / n_fft) * (whole.astype(jnp.float32) + jnp.take_along_axis(delta, peak, -1) * hop)
    summed = jnp.cumsum(advance, axis=-2) - advance[..., :1, :]
    summed = jnp.mod(summed, 2.0 * np.pi)
    phase = jnp.take_along_axis(summed, peak, -1) - np.pi * (k - peak).astype(jnp.float32)
    return jax.lax.stop_gradient(phase)
