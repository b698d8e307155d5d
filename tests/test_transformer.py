"""FFT block / stack: shapes, padding invariance, dropout only in training."""

import jax
import numpy as np

from mmspeech_jax.layers.positional import sinusoidal_positions
from mmspeech_jax.layers.transformer import FFTBlockConfig, FFTStack


def test_sinusoidal_positions_formula():
    table = sinusoidal_positions(50, 8)
    p, i = 17, 2
    np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10000 ** (2 * i / 8)), rtol=1e-6)
    np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 8)), rtol=1e-6)


def test_fft_stack_ignores_padding_and_is_deterministic_in_eval():
    config = FFTBlockConfig(dim=16, heads=2, conv_filters=32, dropout=0.3)
    model = FFTStack(config, layers=2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 10, 16)).astype(np.float32)
    mask = np.arange(10)[None] < np.array([[10], [6]])
    params = model.init(jax.random.PRNGKey(0), x, mask, train=False)
    out = np.asarray(model.apply(params, x, mask, train=False))
    assert out.shape == (2, 10, 16) and np.all(out[1, 6:] == 0)
    x2 = x.copy()
    x2[1, 6:] = 50.0
    np.testing.assert_allclose(np.asarray(model.apply(params, x2, mask, train=False))[1, :6], out[1, :6], atol=1e-5)
    short = np.asarray(model.apply(params, x[1:2, :6], mask[1:2, :6], train=False))
    np.testing.assert_allclose(short[0], out[1, :6], atol=1e-4)  # same as the unpadded utterance
    train_a = model.apply(params, x, mask, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    train_b = model.apply(params, x, mask, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(np.asarray(train_a), np.asarray(train_b))
