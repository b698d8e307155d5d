"""Noise augmentation (audio/noise_augment.py) against the features of summed samples, its SNR against float64 NumPy,
its noise's spectral slopes, its draws, its config and the CTC loss that uses it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.audio.features import MelConfig, log_mel_spectrogram, mel_spectrogram
from mmspeech_jax.audio.noise_augment import (NoiseAugmentConfig, apply_noise, colored_noise, noise_augment,
                                              noise_bank, snr_gains)
from mmspeech_jax.errors import ConfigError

MEL = MelConfig(sample_rate=8000, n_fft=256, hop_samples=64, win_samples=256, n_mels=16, fmax_hz=4000)


def voiced(rng, seconds: float) -> np.ndarray:
    """Speech-like samples at 8 kHz: harmonics of a gliding 100-220 Hz pitch under a syllable-rate envelope, with
    two stretches of digital silence."""
    t = np.arange(int(seconds * 8000)) / 8000
    f0 = 100 + 120 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 8000
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 16))
    x *= 0.2 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) ** 2
    x[len(x) // 4: len(x) // 4 + 1600] = 0
    x[-1600:] = 0
    return x


def test_the_power_sum_matches_the_features_of_the_summed_samples():
    """apply_noise(features of x, mel of n, gain g) against the log-mel of the samples x + g n (an independent path:
    the STFT of the sum), white, pink and brown noise from 0 to 30 dB: within 0.12 nats on average over bins and
    frames, no bias over 0.05 nats. Leaving the features clean misses by far more (the check can fail), and a gain
    of 0 gives the features back exactly."""
    rng = np.random.default_rng(0)
    x = voiced(rng, 3.0)
    clean = np.asarray(log_mel_spectrogram(jnp.asarray(x, jnp.float32), MEL))
    mask = jnp.ones((1, clean.shape[0]), bool)
    for slope in (0.0, 1.0, 2.0):
        for snr in (0.0, 10.0, 20.0, 30.0):
            n = colored_noise(rng, len(x), slope)
            g = np.sqrt(np.mean(x ** 2)) * 10 ** (-snr / 20)
            want = np.asarray(log_mel_spectrogram(jnp.asarray(x + g * n, jnp.float32), MEL), np.float64)
            noise_mel = mel_spectrogram(jnp.asarray(n, jnp.float32), MEL)[None]
            got = np.asarray(apply_noise(jnp.asarray(clean[None]), mask, noise_mel, jnp.asarray([g], jnp.float32),
                                         np.zeros(16), np.ones(16), MEL.log_floor))[0]
            error = got - want
            assert np.abs(error).mean() < 0.12 and abs(error.mean()) < 0.05, (slope, snr, np.abs(error).mean())
            assert np.abs(clean - want).mean() > 3 * np.abs(error).mean(), (slope, snr)
    same = apply_noise(jnp.asarray(clean[None]), mask, noise_mel, jnp.zeros(1), np.zeros(16), np.ones(16),
                       MEL.log_floor)
    np.testing.assert_array_equal(np.asarray(same), clean[None])


def test_snr_gains_against_float64_numpy():
    """The gain sets sum(speech mel^2) / sum((g noise mel)^2) over valid frames to 10^(snr/10), speech at the
    floor and padding counted as 0; rows with no speech or no noise get 0."""
    rng = np.random.default_rng(1)
    mean, std = rng.normal(-4, 1, 16), rng.uniform(1, 3, 16)
    log_mel = rng.normal(-3, 2, (4, 20, 16))
    log_mel[:, :3] = np.log(MEL.log_floor)  # silence at the floor
    log_mel[2] = np.log(MEL.log_floor)  # a row with no speech
    mask = np.ones((4, 20), bool)
    mask[1, 12:] = False
    noise = rng.uniform(0, 2, (4, 20, 16))
    noise[3] = 0  # a row with no noise
    snr = np.array([0.0, 12.5, 7.0, 30.0])
    features = (log_mel - mean) / std
    got = np.asarray(snr_gains(jnp.asarray(features, jnp.float32), jnp.asarray(mask), jnp.asarray(noise, jnp.float32),
                               jnp.asarray(snr, jnp.float32), mean, std, MEL.log_floor), np.float64)
    speech = np.where((log_mel > np.log(MEL.log_floor) + 1e-3) & mask[..., None], np.exp(log_mel), 0.0)
    for r in range(2):
        p_speech = (speech[r] ** 2).sum()
        p_noise = ((noise[r] * mask[r][:, None]) ** 2).sum()
        np.testing.assert_allclose(got[r], np.sqrt(p_speech / p_noise * 10 ** (-snr[r] / 10)), rtol=1e-4)
    assert got[2] == 0 and got[3] == 0


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_colored_noise_has_its_slope_and_unit_power(slope):
    """A least-squares line through the log of the averaged Hann-windowed periodogram against log frequency has
    slope -slope (within 0.05), and the mean power is 1."""
    rng = np.random.default_rng(2)
    n = colored_noise(rng, 2 ** 18, slope)
    assert np.mean(n ** 2) == pytest.approx(1.0, abs=1e-9)
    segments = n.reshape(256, 1024)
    power = (np.abs(np.fft.rfft(segments * np.hanning(1024), axis=1)) ** 2).mean(0)  # windowed: little leakage
    f = np.arange(power.shape[0])
    band = (f >= 4) & (f <= 400)
    fitted = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert fitted == pytest.approx(-slope, abs=0.05)


def test_the_bank_is_the_features_of_each_slope_and_read_only():
    config = NoiseAugmentConfig(bank_frames=64, slopes=(0.0, 2.0))
    bank = noise_bank(config, MEL)
    assert bank.shape == (2, 64, 16) and bank.dtype == np.float32 and not bank.flags.writeable
    rng = np.random.default_rng(config.seed)
    want = [np.asarray(mel_spectrogram(jnp.asarray(colored_noise(rng, 63 * 64, s), jnp.float32), MEL))
            for s in (0.0, 2.0)]
    np.testing.assert_allclose(bank, np.stack(want), rtol=1e-5, atol=1e-6)
    # brown noise has its power low: the top bands over the bottom ones fall far below white noise's ratio
    tilt = bank[:, :, -4:].mean((1, 2)) / bank[:, :, :4].mean((1, 2))
    assert tilt[1] < tilt[0] / 10


def test_draws_noise_share_snr_range_padding_and_purity():
    """Over 3000 rows: about `probability` of them change, the others come back exactly; every changed row's mel
    SNR (speech power over the added power, recovered from the output) lies in [min, max] with a uniform mean;
    padding stays 0; the draws are a pure function of the key."""
    config = NoiseAugmentConfig(probability=0.3, min_snr_db=5.0, max_snr_db=25.0, bank_frames=128)
    bank = noise_bank(config, MEL)
    rng = np.random.default_rng(3)
    rows, frames = 3000, 12
    log_mel = rng.normal(-2, 1, (rows, frames, 16)).astype(np.float32)
    mask = np.ones((rows, frames), bool)
    mask[:, -2:] = False
    x = jnp.asarray(np.where(mask[..., None], log_mel, 0.0), jnp.float32)
    key = jax.random.PRNGKey(4)
    out = np.asarray(noise_augment(x, jnp.asarray(mask), key, bank, np.zeros(16), np.ones(16), MEL.log_floor, config))
    np.testing.assert_array_equal(out, np.asarray(noise_augment(x, jnp.asarray(mask), key, bank, np.zeros(16),
                                                                np.ones(16), MEL.log_floor, config)))
    assert np.all(out[:, -2:] == 0)
    changed = np.any(out != np.asarray(x), axis=(1, 2))
    assert abs(changed.mean() - 0.3) < 0.04
    speech = np.exp(log_mel[changed, :-2].astype(np.float64))
    added = np.exp(2 * out[changed, :-2].astype(np.float64)) - speech ** 2
    snr = 10 * np.log10((speech ** 2).sum((1, 2)) / added.sum((1, 2)))
    assert snr.min() > 5.0 - 1e-3 and snr.max() < 25.0 + 1e-3 and abs(snr.mean() - 15.0) < 1.0


def test_config_checks_and_json_round_trip():
    from mmspeech_jax.models.ctc_asr import CTCASRConfig, preset

    for bad in (dict(probability=1.5), dict(min_snr_db=20.0, max_snr_db=10.0), dict(slopes=()), dict(slopes=(-1.0,)),
                dict(slopes="white"), dict(bank_frames=1)):
        with pytest.raises(ConfigError):
            NoiseAugmentConfig(**bad)
    config = preset("tiny", noise_augment=NoiseAugmentConfig(slopes=[0, 1.5]))
    assert config.noise_augment.slopes == (0.0, 1.5)
    assert CTCASRConfig.from_dict(dataclasses.asdict(config)) == config
    with pytest.raises(ConfigError, match="noise_augment"):
        preset("tiny", noise_augment={"probability": 0.5})


def test_the_ctc_loss_adds_noise_to_training_batches_only_and_needs_the_mel_config():
    from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn, preset

    fields = dict(n_mels=16, spec_augment=None, dropout=0.0, attention_dropout=0.0)
    model = CTCASR(preset("tiny", noise_augment=NoiseAugmentConfig(probability=1.0, bank_frames=64), **fields))
    stats = {"mel_mean": np.full(16, -3.0), "mel_std": np.full(16, 2.0)}
    with pytest.raises(ConfigError, match="statistics"):
        make_ctc_loss_fn(model, mel=MEL)
    with pytest.raises(ConfigError, match="MelConfig"):
        make_ctc_loss_fn(model, stats)
    with pytest.raises(ConfigError, match="mel bands"):
        make_ctc_loss_fn(model, stats, mel=MelConfig())
    with pytest.raises(ConfigError, match="log_floor"):
        make_ctc_loss_fn(model, stats, 1e-3, mel=MEL)
    rng = np.random.default_rng(5)
    batch = {"features": jnp.asarray(rng.normal(size=(2, 32, 16)), jnp.float32), "frame_mask": jnp.ones((2, 32), bool),
             "labels": jnp.asarray([[3, 4, 5], [6, 7, 0]]), "label_mask": jnp.asarray([[1, 1, 1], [1, 1, 0]], bool),
             "example_mask": jnp.ones((2,), bool)}
    params = jax.jit(model.init)(jax.random.PRNGKey(0), batch["features"], batch["frame_mask"])["params"]
    noisy = jax.jit(make_ctc_loss_fn(model, stats, mel=MEL), static_argnums=3)  # compiled, as is init: op by op, slower
    plain = jax.jit(make_ctc_loss_fn(CTCASR(preset("tiny", **fields))), static_argnums=3)
    key = jax.random.PRNGKey(2)
    assert float(noisy(params, batch, key, True, 0)[0]) != pytest.approx(float(plain(params, batch, key, True, 0)[0]))
    assert float(noisy(params, batch, key, False, 0)[0]) == pytest.approx(float(plain(params, batch, key, False, 0)[0]))
