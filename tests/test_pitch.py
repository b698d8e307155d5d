"""YIN F0: known gliding F0 on synthetic harmonic signals (median error <= 1 %), silence and noise unvoiced."""

import numpy as np
import pytest

from mmspeech_jax.audio.pitch import PitchConfig, interpolate_unvoiced, yin
from mmspeech_jax.errors import ConfigError

SR = 22050


def harmonic(f0_of_t, seconds=2.0, harmonics=10, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = f0_of_t(t)
    phase = 2 * np.pi * np.cumsum(f0) / SR + np.random.default_rng(seed).uniform(0, 2 * np.pi)
    x = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    return (0.3 * x / np.abs(x).max()).astype(np.float32), f0


def truth_at_frames(f0, config):
    centres = np.arange(1 + f0.size // config.hop_samples) * config.hop_samples
    return np.interp(centres, np.arange(f0.size), f0)


@pytest.mark.parametrize("name,f0_of_t", [
    ("rising 100->300 Hz", lambda t: 100 * 3 ** (t / 2)),
    ("falling 400->150 Hz", lambda t: 400 - 125 * t),
    ("vibrato 220 Hz", lambda t: 220 + 20 * np.sin(2 * np.pi * 5 * t)),
    ("low 70 Hz", lambda t: 70 + 0 * t),
])
def test_gliding_f0_median_error_below_one_percent(name, f0_of_t):
    config = PitchConfig()
    audio, f0 = harmonic(f0_of_t)
    est, voiced, periodicity = (np.asarray(a) for a in yin(audio, config))
    true = truth_at_frames(f0, config)
    inner = slice(3, -3)  # the outermost frames see the zero padding
    assert voiced[inner].mean() >= 0.95, name
    rel = np.abs(est[inner][voiced[inner]] - true[inner][voiced[inner]]) / true[inner][voiced[inner]]
    assert np.median(rel) <= 0.01, name
    assert np.mean(rel > 0.2) <= 0.02, name  # no octave errors to speak of
    assert np.all(est[~voiced] == 0)
    assert periodicity[inner][voiced[inner]].mean() > 0.8


def test_silence_and_noise_are_unvoiced():
    config = PitchConfig()
    f0, voiced, _ = (np.asarray(a) for a in yin(np.zeros(SR, np.float32), config))
    assert not voiced.any() and np.all(f0 == 0)
    rng = np.random.default_rng(1)
    for scale in (0.01, 0.3):
        _, voiced, _ = yin((scale * rng.normal(size=2 * SR)).astype(np.float32), config)
        assert np.mean(np.asarray(voiced)) <= 0.02


def test_tone_then_silence_then_noise():
    config = PitchConfig()
    audio, _ = harmonic(lambda t: 150 + 0 * t, seconds=1.0)
    noise = (0.1 * np.random.default_rng(2).normal(size=SR)).astype(np.float32)
    signal = np.concatenate([audio, np.zeros(SR, np.float32), noise])
    f0, voiced, _ = (np.asarray(a) for a in yin(signal, config))
    per_second = SR // config.hop_samples
    assert voiced[5 : per_second - 5].mean() > 0.95
    assert np.median(np.abs(f0[5 : per_second - 5] - 150)) < 1.5
    assert voiced[per_second + 5 :].mean() < 0.02


def test_batched_matches_single():
    config = PitchConfig()
    a, _ = harmonic(lambda t: 100 + 50 * t, seconds=1.0, seed=1)
    b, _ = harmonic(lambda t: 250 - 50 * t, seconds=1.0, seed=2)
    batched = np.asarray(yin(np.stack([a, b]), config)[0])
    np.testing.assert_allclose(batched[0], np.asarray(yin(a, config)[0]), rtol=1e-5)
    np.testing.assert_allclose(batched[1], np.asarray(yin(b, config)[0]), rtol=1e-5)


def test_interpolate_unvoiced():
    f0 = np.array([0, 100, 0, 0, 130, 0], np.float32)
    voiced = f0 > 0
    np.testing.assert_allclose(interpolate_unvoiced(f0, voiced), [100, 100, 110, 120, 130, 130])
    assert np.all(interpolate_unvoiced(np.zeros(4), np.zeros(4, bool)) == 0)


def test_bad_config():
    with pytest.raises(ConfigError):
        PitchConfig(fmin_hz=20.0)  # needs more than 1024 samples per frame
    with pytest.raises(ConfigError):
        PitchConfig(threshold=1.5)
