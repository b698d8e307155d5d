"""STFT / log-mel / energy in JAX against an independent float64 NumPy reference written from the formulas.

The reference uses an explicit DFT matrix (no FFT), explicit per-filter loops for the Slaney filterbank and
numpy's own reflect padding. Tolerance: <= 1e-4 relative error (norm-relative per utterance, and per element
where the value is above 1e-3 of the maximum).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.audio import features as F
from mmspeech_jax.errors import ConfigError


def slaney_mel(f):
    return 3 * f / 200 if f < 1000 else 15 + 27 * np.log(f / 1000) / np.log(6.4)


def slaney_hz(m):
    return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)


def reference_filterbank(sr, n_fft, n_mels, fmin, fmax):
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    lo, hi = slaney_mel(fmin), slaney_mel(fmax)
    edges = [slaney_hz(lo + (hi - lo) * k / (n_mels + 1)) for k in range(n_mels + 2)]
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if left < f <= centre:
                fb[k, m] = (f - left) / (centre - left)
            elif centre < f < right:
                fb[k, m] = (right - f) / (right - centre)
        fb[:, m] *= 2.0 / (right - left)
    return fb


def reference_magnitude(audio, n_fft, hop, win):
    x = np.pad(audio.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = [0.5 - 0.5 * np.cos(2 * np.pi * n / win) for n in range(win)]
    frames = 1 + (x.size - n_fft) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * n / n_fft)
    return np.stack([np.abs(dft @ (x[t * hop : t * hop + n_fft] * window)) for t in range(frames)])


def speechlike(seconds=0.6, sr=22050, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.05 * rng.normal(size=t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


CONFIGS = [F.MelConfig(), F.MelConfig(sample_rate=16000, n_fft=512, hop_samples=160, win_samples=400, n_mels=40,
                                      fmin_hz=20, fmax_hz=7600)]


@pytest.mark.parametrize("config", CONFIGS, ids=["ljspeech", "16k"])
def test_filterbank_matches_reference(config):
    ref = reference_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin_hz, config.fmax_hz)
    np.testing.assert_allclose(F.mel_filterbank(config), ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("config", CONFIGS, ids=["ljspeech", "16k"])
def test_log_mel_and_energy_match_float64_reference(config):
    audio = speechlike(sr=config.sample_rate)
    mag = reference_magnitude(audio, config.n_fft, config.hop_samples, config.win_samples)
    fb = reference_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin_hz, config.fmax_hz)
    mel_ref = mag @ fb
    energy_ref = np.sqrt((mag**2).sum(-1))
    mel = np.asarray(F.mel_spectrogram(audio, config), np.float64)
    energy = np.asarray(F.frame_energy(audio, config), np.float64)
    assert mel.shape == mel_ref.shape == (F.num_frames(audio.size, config.hop_samples), config.n_mels)
    assert np.linalg.norm(mel - mel_ref) / np.linalg.norm(mel_ref) <= 1e-4
    big = mel_ref > 1e-3 * mel_ref.max()
    assert np.max(np.abs(mel - mel_ref)[big] / mel_ref[big]) <= 1e-4
    assert np.max(np.abs(energy - energy_ref) / energy_ref) <= 1e-4
    log_mel = np.asarray(F.log_mel_spectrogram(audio, config), np.float64)
    np.testing.assert_allclose(log_mel, np.log(np.maximum(mel_ref, config.log_floor)), atol=1e-4)
    both = F.log_mel_and_energy(audio, config)
    np.testing.assert_allclose(both[0], log_mel, atol=1e-6)
    np.testing.assert_allclose(both[1], energy, rtol=1e-6)


def test_batched_equals_per_utterance_and_jits_once():
    config = F.MelConfig()
    batch = np.stack([speechlike(seed=s) for s in range(3)])
    fn = jax.jit(lambda a: F.log_mel_spectrogram(a, config))
    out = np.asarray(fn(batch))
    for i in range(3):
        np.testing.assert_allclose(out[i], np.asarray(F.log_mel_spectrogram(batch[i], config)), atol=1e-5)
    assert fn._cache_size() == 1


def test_uncentred_on_prepadded_signal_equals_centred():
    config = F.MelConfig()
    audio = speechlike()
    padded = np.pad(audio, config.n_fft // 2, mode="reflect")
    padded = np.concatenate([padded, np.zeros(3000, np.float32)])  # extra zeros only add frames at the end
    frames = F.num_frames(audio.size, config.hop_samples)
    a = np.asarray(F.log_mel_spectrogram(padded, config, center=False))[:frames]
    np.testing.assert_allclose(a, np.asarray(F.log_mel_spectrogram(audio, config)), atol=1e-5)


def test_short_signal_and_bad_configs():
    config = F.MelConfig()
    out = F.log_mel_spectrogram(jnp.zeros(100), config)  # shorter than n_fft // 2: zero padding
    assert out.shape == (1, 80) and np.allclose(out, np.log(config.log_floor))
    with pytest.raises(ConfigError):
        F.MelConfig(fmax_hz=20000)
    with pytest.raises(ConfigError):
        F.MelConfig(win_samples=2048)
    with pytest.raises(ConfigError):
        F.MelConfig(hop_samples=0)


def test_check_log_mel_accepts_a_log_mel_and_names_what_is_wrong_with_anything_else():
    from mmspeech_jax.errors import FeatureError

    good = np.random.default_rng(0).normal(size=(7, 80))
    checked = F.check_log_mel(good, 80)
    assert checked.dtype == np.float32 and checked.shape == (7, 80)
    np.testing.assert_allclose(checked, good, rtol=1e-6)  # a float64 array is accepted, cast, not changed
    nan = good.copy()
    nan[3, 5] = np.nan
    for bad, message in [(good[:, :40], "shape (T, 80)"), (good[0], "shape (T, 80)"), (np.zeros((0, 80)), "T >= 1"),
                         (good[None], "shape (T, 80)"), (nan, "NaN"), (np.full((2, 80), np.inf), "NaN"),
                         (good > 0, "real numbers"), (good, "more than the 5")]:
        with pytest.raises(FeatureError) as info:
            F.check_log_mel(bad, 80, "mel 3", max_frames=5 if message.startswith("more") else None)
        assert message in str(info.value) and str(info.value).startswith("mel 3:"), (message, str(info.value))
