"""TTS losses against NumPy references; padding does not change them."""

import numpy as np

from mmspeech_jax.losses.tts import duration_loss, masked_l1, masked_mse


def test_losses_match_numpy_and_ignore_padding():
    rng = np.random.default_rng(0)
    lengths = [7, 4]
    pred = rng.normal(size=(2, 9, 3)).astype(np.float32)
    target = rng.normal(size=(2, 9, 3)).astype(np.float32)
    mask = np.arange(9)[None] < np.array(lengths)[:, None]
    ref_l1 = np.concatenate([np.abs(pred[b, :l] - target[b, :l]).ravel() for b, l in enumerate(lengths)]).mean()
    np.testing.assert_allclose(float(masked_l1(pred, target, mask)), ref_l1, rtol=1e-6)
    garbage = pred.copy()
    garbage[~mask] = 1e6
    np.testing.assert_allclose(float(masked_l1(garbage, target, mask)), ref_l1, rtol=1e-6)
    log_d = rng.normal(size=(2, 9)).astype(np.float32)
    durations = rng.integers(0, 10, size=(2, 9))
    ref = np.concatenate([(log_d[b, :l] - np.log(durations[b, :l] + 1.0)) ** 2 for b, l in enumerate(lengths)]).mean()
    np.testing.assert_allclose(float(duration_loss(log_d, durations, mask)), ref, rtol=1e-5)
    np.testing.assert_allclose(float(masked_mse(log_d, log_d * 0, mask)),
                               np.concatenate([log_d[b, :l] ** 2 for b, l in enumerate(lengths)]).mean(), rtol=1e-5)
    assert float(masked_l1(pred, target, np.zeros_like(mask))) == 0.0
