"""Gain augmentation against the features of a scaled waveform (audio/gain_augment.py), its draws, and the CTC loss
that uses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.audio.features import MelConfig, log_mel_spectrogram
from mmspeech_jax.audio.gain_augment import GainAugmentConfig, apply_gain, gain_augment, gains_db

MEL = MelConfig(sample_rate=8000, n_fft=256, hop_samples=64, win_samples=256, n_mels=16, fmax_hz=4000)


def features_of(audio, mean, std):
    return (np.asarray(log_mel_spectrogram(jnp.asarray(audio, jnp.float32), MEL), np.float64) - mean) / std


def test_a_gain_moves_the_features_as_scaling_the_waveform_does():
    """Noise, digital silence, noise: apply_gain on the normalized log-mel = the normalized log-mel of the waveform
    scaled by 10^(g/20) (an independent path: the STFT of the scaled samples), everywhere for a cut and in the
    noise and the silence for a boost (the frames around the edges hold bins just under the floor)."""
    rng = np.random.default_rng(0)
    audio = np.concatenate([rng.normal(0, 0.1, 4000), np.zeros(4000), rng.normal(0, 0.1, 4000)])
    mean, std = rng.normal(-4, 1, MEL.n_mels), rng.uniform(1, 3, MEL.n_mels)
    x = features_of(audio, mean, std)[None]
    mask = np.ones(x.shape[:2], bool)
    mask[0, -3:] = False  # padding stays 0
    frames = x.shape[1]
    steady = np.r_[4:4000 // 64 - 4, 4000 // 64 + 6:8000 // 64 - 4, 8000 // 64 + 6:frames - 4]
    for gain in (-20.0, -6.0, 6.0, 12.0):
        got = np.asarray(apply_gain(jnp.asarray(x, jnp.float32), jnp.asarray(mask), jnp.asarray([gain]), mean, std,
                                    MEL.log_floor))[0]
        want = features_of(audio * 10 ** (gain / 20), mean, std)
        rows = np.arange(frames - 3) if gain < 0 else steady
        np.testing.assert_allclose(got[rows], want[rows], atol=2e-4, err_msg=f"{gain} dB")
        assert np.all(got[-3:] == 0)
    silent = (x[0] * std + mean <= np.log(MEL.log_floor) + 1e-3).all(-1)
    assert silent.sum() > 40  # the silence is at the floor, and a boost kept it there (checked above)


def test_gains_are_uniform_per_row_and_pure_in_the_key():
    config = GainAugmentConfig(max_db=9.0)
    g = np.asarray(gains_db(jax.random.PRNGKey(0), 4000, config))
    assert g.min() >= -9 and g.max() <= 9 and abs(g.mean()) < 0.3 and abs(g.std() - 18 / np.sqrt(12)) < 0.15
    np.testing.assert_array_equal(g, gains_db(jax.random.PRNGKey(0), 4000, config))
    x = jnp.zeros((3, 5, 2))
    a = gain_augment(x, jnp.ones((3, 5), bool), jax.random.PRNGKey(1), np.zeros(2), np.ones(2), 1e-5, config)
    assert len({float(a[i, 0, 0]) for i in range(3)}) == 3  # each row its own gain: ln a on a 0 log-mel
    np.testing.assert_allclose(np.asarray(a[:, 0, 0]), np.asarray(gains_db(jax.random.PRNGKey(1), 3, config))
                               * np.log(10) / 20, atol=1e-6)


def test_the_ctc_loss_augments_training_batches_only_and_needs_the_statistics():
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn, preset

    model = CTCASR(preset("tiny", n_mels=16, spec_augment=None, dropout=0.0, attention_dropout=0.0,
                          gain_augment=GainAugmentConfig(12.0)))
    with pytest.raises(ConfigError, match="statistics"):
        make_ctc_loss_fn(model)
    rng = np.random.default_rng(1)
    batch = {"features": jnp.asarray(rng.normal(size=(2, 32, 16)), jnp.float32), "frame_mask": jnp.ones((2, 32), bool),
             "labels": jnp.asarray([[3, 4, 5], [6, 7, 0]]), "label_mask": jnp.asarray([[1, 1, 1], [1, 1, 0]], bool),
             "example_mask": jnp.ones((2,), bool)}
    params = jax.jit(model.init)(jax.random.PRNGKey(0), batch["features"], batch["frame_mask"])["params"]
    stats = {"mel_mean": np.full(16, -3.0), "mel_std": np.full(16, 2.0)}
    augmented = jax.jit(make_ctc_loss_fn(model, stats, 1e-5), static_argnums=3)  # compiled: op by op, slower
    plain = jax.jit(make_ctc_loss_fn(CTCASR(preset("tiny", n_mels=16, spec_augment=None, dropout=0.0,
                                                   attention_dropout=0.0))), static_argnums=3)
    key = jax.random.PRNGKey(2)
    assert float(augmented(params, batch, key, True, 0)[0]) != pytest.approx(float(plain(params, batch, key, True, 0)[0]))
    assert float(augmented(params, batch, key, False, 0)[0]) == pytest.approx(float(plain(params, batch, key, False, 0)[0]))
