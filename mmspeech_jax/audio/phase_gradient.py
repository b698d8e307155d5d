"""STFT phase from the magnitude alone by integrating the phase gradient that a Gaussian window's STFT ties to its
log magnitude, frame by frame (phase gradient integration without a heap, in the spirit of Průša & Holighaus's
real-time PGHI).

magnitude (..., T, F) float -> phase (..., T, F) float32 radians, F = n_fft // 2 + 1, frame t centred on sample
t * hop, FFT origin at the frame's first sample (the zoo's STFT conventions, `audio/features.py`).

For a Gaussian window exp(-pi t^2 / lam) (lam in samples^2), writing the phase with its origin at the window centre,
the STFT's log magnitude L and phase phi satisfy (Portnoff; Průša, Balazs & Søndergaard 2017):
    d phi / d t     = 2 pi omega + (1 / lam) dL / d omega        (rad per sample; omega in cycles per sample)
    d phi / d omega = -lam dL / d t
A Hann window of `win` samples is treated as the Gaussian with lam = 0.25645 win^2 (the same paper's fit).
Discretised with central differences, the phase advances from frame t - 1 to t at bin k by the trapezoid of
hop * d phi / d t at the two frames, and steps from bin j to j + 1 within a frame by the trapezoid of
d phi / d omega / n_fft.

Each frame is integrated from its spectral peaks (`peak_phase.nearest_peak`: bins at least `PEAK_MARGIN` above the
left neighbour's log magnitude, not below the right one's, and within `floor_db` of the frame's largest): a peak
takes the previous frame's phase at its bin plus the time advance; every other bin takes its nearest peak's phase
plus the frequency steps between them. The heap of the original algorithm
(always integrating from the largest known bin) is replaced by that rule, so each frame is one vectorised step of a
`jax.lax.scan`. Frame 0 starts from phase 0 at its peaks. With the window-centred phase, the bins of one steady
partial share a phase; the FFT origin at the frame's start turns bin k by -pi k, applied at the end.

The phase is a function of the magnitude that carries no gradient (`jax.lax.stop_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.audio.peak_phase import nearest_peak

HANN_GAUSSIAN_FIT = 0.25645  # lam / win^2 of the Gaussian that stands in for a Hann window (Průša et al. 2017)
PEAK_MARGIN = 1e-3  # natural-log units a peak must stand above its left neighbour: a flat frame (a click) has none


def phase_gradient_phase(magnitude, n_fft: int, hop: int, win: int, floor_db: float = -60.0):
    """magnitude (..., T, F) float, F = n_fft // 2 + 1 -> phase (..., T, F) float32 radians in [-pi - pi k, pi - pi k)
    (see the module docstring). A frame with no peak above the floor (e.g. silence) integrates from bin 0.

    Args:
      magnitude: non-negative STFT magnitudes of a Hann-windowed STFT; zeros are allowed (floored at 1e-9 before
        the log).
      n_fft, hop, win: the STFT's FFT size, hop and Hann window length in samples.
      floor_db: peaks lower than the frame's largest by more than this (a negative number of dB) are ignored."""
    magnitude = jnp.asarray(magnitude, jnp.float32)
    bins = magnitude.shape[-1]
    if bins != n_fft // 2 + 1:
        raise ValueError(f"phase_gradient_phase: {bins} bins, expected n_fft // 2 + 1 = {n_fft // 2 + 1}")
    if magnitude.ndim < 2 or magnitude.shape[-2] < 1:
        raise ValueError(f"phase_gradient_phase: magnitude {magnitude.shape}, expected (..., T >= 1, {bins})")
    lam = HANN_GAUSSIAN_FIT * float(win) ** 2
    log_m = jnp.log(jnp.maximum(magnitude, 1e-9))
    frames = log_m.shape[-2]
    zero_col = jnp.zeros(log_m.shape[:-1] + (1,), log_m.dtype)
    d_omega = jnp.concatenate([zero_col, (log_m[..., 2:] - log_m[..., :-2]) * (n_fft / 2.0), zero_col], -1)
    if frames > 1:
        first = log_m[..., 1:2, :] - log_m[..., 0:1, :]
        last = log_m[..., -1:, :] - log_m[..., -2:-1, :]
        middle = (log_m[..., 2:, :] - log_m[..., :-2, :]) / 2.0
        d_time = jnp.concatenate([first, middle, last], -2) / hop
    else:
        d_time = jnp.zeros_like(log_m)
    k = np.arange(bins)
    # hop * 2 pi k / n_fft reduced modulo 2 pi in integers (exact), plus the deviation from the bin's centre.
    centre = jnp.asarray((k * hop) % n_fft, jnp.float32) * (2.0 * np.pi / n_fft)
    time_advance = centre + (hop / lam) * d_omega
    frequency_step = (-lam / n_fft) * d_time
    steps = (frequency_step[..., 1:] + frequency_step[..., :-1]) / 2.0
    along = jnp.concatenate([jnp.zeros_like(steps[..., :1]), jnp.cumsum(steps, -1)], -1)  # bin 0 -> bin k

    peak = nearest_peak(log_m, floor_db, PEAK_MARGIN)
    offset = along - jnp.take_along_axis(along, peak, -1)  # frequency integral from each bin's peak

    # time-major for the scan: (T, ..., F)
    move = lambda x: jnp.moveaxis(x, -2, 0)
    advance_mid = (time_advance[..., 1:, :] + time_advance[..., :-1, :]) / 2.0  # frame t-1 -> t, t >= 1
    first_phase = offset[..., 0, :]  # frame 0: phase 0 at its peaks

    def step(previous, inputs):
        advance, peak_t, offset_t = inputs
        candidate = previous + advance
        current = jnp.take_along_axis(candidate, peak_t, -1) + offset_t
        current = jnp.mod(current + np.pi, 2.0 * np.pi) - np.pi
        return current, current

    if frames > 1:
        _, rest = jax.lax.scan(step, first_phase, (move(advance_mid), move(peak[..., 1:, :]),
                                                   move(offset[..., 1:, :])))
        centred = jnp.concatenate([first_phase[None], rest], 0)
    else:
        centred = first_phase[None]
    centred = jnp.moveaxis(centred, 0, -2)
    phase = centred - np.pi * jnp.asarray(k, jnp.float32)
    return jax.lax.stop_gradient(phase)
