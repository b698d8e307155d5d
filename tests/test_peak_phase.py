"""audio/peak_phase.py: the phase that follows the magnitude's spectral peaks, against a float64 NumPy brute force
written with loops and against the STFT of real sinusoids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.audio.features import MelConfig, stft
from mmspeech_jax.audio.griffin_lim import istft
from mmspeech_jax.audio.peak_phase import peak_locked_phase


def brute_force(magnitude, n_fft, hop, floor_db=-60.0):
    """Loops, float64: the module docstring's three steps, one frame and one bin at a time."""
    frames, bins = magnitude.shape
    log_m = np.log(np.maximum(magnitude.astype(np.float64), 1e-9))
    governing = np.zeros((frames, bins), np.int64)
    frequency = np.zeros((frames, bins))  # in bins
    for t in range(frames):
        row = log_m[t]
        floor = row.max() + floor_db / 20 * np.log(10)
        peaks, offsets = [], {}
        for k in range(bins):
            lower = row[k - 1] if k > 0 else -np.inf
            upper = row[k + 1] if k + 1 < bins else -np.inf
            if row[k] > lower and row[k] >= upper and row[k] > floor:
                peaks.append(k)
                a = lower if np.isfinite(lower) else row[k]
                c = upper if np.isfinite(upper) else row[k]
                d = a - 2 * row[k] + c
                offsets[k] = float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)) if abs(d) > 1e-12 else 0.0
        if not peaks:
            peaks, offsets = [0], {0: 0.0}
        for k in range(bins):
            best = min(peaks, key=lambda p: (abs(k - p), p))  # nearest, ties to the lower peak
            governing[t, k], frequency[t, k] = best, best + offsets[best]
    summed = np.zeros((frames, bins))
    for t in range(1, frames):
        summed[t] = summed[t - 1] + 2 * np.pi * frequency[t] * hop / n_fft
    phase = np.zeros((frames, bins))
    for t in range(frames):
        for k in range(bins):
            p = governing[t, k]
            phase[t, k] = summed[t, p] - np.pi * (k - p)
    return phase


def tone_stft(frequencies, n_fft=256, hop=64, rate=8000, seconds=0.5, phases=None):
    config = MelConfig(sample_rate=rate, n_fft=n_fft, hop_samples=hop, win_samples=n_fft, n_mels=8,
                       fmax_hz=rate / 2)
    n = np.arange(int(rate * seconds))
    phases = phases or [0.0] * len(frequencies)
    x = sum(np.cos(2 * np.pi * f * n / rate + p) for f, p in zip(frequencies, phases))
    return x, np.asarray(stft(jnp.asarray(x, jnp.float32), config)), config


@pytest.mark.parametrize("case", ["random", "tones"])
def test_peak_locked_phase_matches_a_float64_loop_implementation(case):
    """Random magnitudes (many small peaks, some under the floor) and a two-tone STFT: same phases as the loops, to
    2e-3 rad (float32 sums over 40-60 frames); a batch axis gives the same rows."""
    n_fft, hop = 64, 16
    if case == "random":
        rng = np.random.default_rng(0)
        magnitude = np.exp(rng.normal(0, 3, size=(40, n_fft // 2 + 1)))
    else:
        _, spectrum, _ = tone_stft([710.0, 1990.0], n_fft=n_fft, hop=hop, seconds=0.4)
        magnitude = np.abs(spectrum)
    want = brute_force(magnitude, n_fft, hop)
    got = np.asarray(peak_locked_phase(jnp.asarray(magnitude), n_fft, hop), np.float64)
    assert got.shape == magnitude.shape
    np.testing.assert_allclose(np.exp(1j * got), np.exp(1j * want), atol=2e-3)
    batched = np.asarray(peak_locked_phase(jnp.asarray(np.stack([magnitude, magnitude[::-1]])), n_fft, hop))
    np.testing.assert_allclose(np.exp(1j * batched[0]), np.exp(1j * got), atol=1e-5)
    np.testing.assert_allclose(np.exp(1j * batched[1]),
                               np.exp(1j * brute_force(magnitude[::-1], n_fft, hop)), atol=2e-3)


def test_a_tone_between_bins_is_rebuilt_from_its_magnitude():
    """Two steady tones between bin centres (8 000 Hz, n_fft 256: 31.25 Hz bins): the peak bins' phase advances by
    2 pi f hop / rate per frame (to 0.05 rad), and the magnitude with this phase inverts to a signal whose STFT
    magnitude is the tones' to 5 % (spectral convergence). The centre-frequency phase (every bin advancing at its
    own centre) is the control that must do worse: it gives beating frames, over 25 %."""
    from mmspeech_jax.models.istft_vocoder import centre_frequency_ramp

    rate, n_fft, hop = 8000, 256, 64
    x, spectrum, config = tone_stft([443.0, 1207.0], n_fft=n_fft, hop=hop, rate=rate, phases=[0.4, 2.0])
    magnitude = np.abs(spectrum)
    phase = np.asarray(peak_locked_phase(jnp.asarray(magnitude), n_fft, hop), np.float64)
    for f in (443.0, 1207.0):
        k = int(round(f * n_fft / rate))
        step = np.angle(np.exp(1j * (np.diff(phase[:, k]) - 2 * np.pi * f * hop / rate)))[3:-3]
        assert np.abs(step).max() < 0.05

    def convergence(phases):
        wave = istft(jnp.asarray(magnitude * np.exp(1j * phases), jnp.complex64), config, x.size)
        rebuilt = np.abs(np.asarray(stft(wave, config)))[4:-4]
        return np.linalg.norm(rebuilt - magnitude[4:-4]) / np.linalg.norm(magnitude[4:-4])

    ramp = np.asarray(centre_frequency_ramp(magnitude.shape[0], n_fft, hop), np.float64)
    assert convergence(phase) < 0.05
    assert convergence(ramp) > 0.25


def test_peak_locked_phase_carries_no_gradient_and_checks_its_bins():
    magnitude = jnp.exp(jax.random.normal(jax.random.PRNGKey(0), (6, 33)))
    grad = jax.grad(lambda m: jnp.sum(jnp.sin(peak_locked_phase(m, 64, 16))))(magnitude)
    np.testing.assert_array_equal(np.asarray(grad), 0.0)
    with pytest.raises(ValueError, match="expected n_fft // 2 \\+ 1 = 33"):
        peak_locked_phase(magnitude[:, :32], 64, 16)
    silent = np.asarray(peak_locked_phase(jnp.zeros((3, 33)), 64, 16))  # no peak: bin 0 governs every bin
    np.testing.assert_allclose(np.exp(1j * silent), np.exp(1j * (-np.pi * np.arange(33)))[None].repeat(3, 0),
                               atol=1e-5)


def test_peak_locked_phase_serializes_as_stablehlo_for_cpu_cuda_and_tpu():
    """The vocoder's text -> waveform artifacts lower it with the generator (`serialized.py`): one multi-platform
    `jax.export` of it, serialized and read back, gives the same phases on the CPU (to float32 rounding, 1e-5)."""
    magnitude = jnp.exp(jax.random.normal(jax.random.PRNGKey(3), (2, 12, 33)))
    exported = jax.export.export(jax.jit(lambda m: peak_locked_phase(m, 64, 16)),
                                 platforms=("cpu", "cuda", "tpu"))(magnitude)
    restored = jax.export.deserialize(exported.serialize())
    np.testing.assert_allclose(np.exp(1j * np.asarray(restored.call(magnitude))),
                               np.exp(1j * np.asarray(peak_locked_phase(magnitude, 64, 16))), atol=1e-5)  # jit vs eager
