"""Hash dropout: bit-exact against a NumPy reference of the published hash, and statistically a Bernoulli mask."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.layers.dropout import Dropout, hash_dropout, keep_mask, lowbias32


def numpy_lowbias32(h):
    """Reference in Python integers mod 2**32 (C. Wellons' lowbias32)."""
    h = np.asarray(h, np.uint64)
    m = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & m
    h ^= h >> np.uint64(16)
    return h


def test_lowbias32_matches_reference():
    x = np.array([0, 1, 2, 12345, 2**31, 2**32 - 1], np.uint32)
    np.testing.assert_array_equal(np.asarray(jax.jit(lowbias32)(jnp.asarray(x))), numpy_lowbias32(x))


def test_keep_mask_matches_reference_for_every_element():
    shape, seed, rate = (3, 5, 7), 987654321, 0.3
    index = np.arange(np.prod(shape), dtype=np.uint64).reshape(shape)
    bits = numpy_lowbias32((numpy_lowbias32(index) + seed) & np.uint64(0xFFFFFFFF))
    expected = bits >= round(rate * 2**32)
    got = np.asarray(jax.jit(keep_mask, static_argnums=(1, 2))(jnp.uint32(seed), shape, rate))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5])
def test_keep_rate_and_independence(rate):
    n = 1_000_000
    a = np.asarray(keep_mask(jnp.uint32(1), (n,), rate))
    b = np.asarray(keep_mask(jnp.uint32(2), (n,), rate))
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(a.mean() - (1 - rate)) < 5 * sigma
    # Two seeds: joint keep rate (1 - rate)**2, as for independent masks.
    assert abs((a & b).mean() - (1 - rate) ** 2) < 5 * np.sqrt((1 - rate) ** 2 / n)
    # Neighbouring elements are uncorrelated.
    corr = np.corrcoef(a[:-1].astype(float), a[1:].astype(float))[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)


def test_hash_dropout_scales_kept_values_and_keeps_the_mean():
    x = jnp.ones((64, 1000))
    y = np.asarray(hash_dropout(x, jnp.uint32(7), 0.25))
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / 0.75], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(np.asarray(hash_dropout(x, jnp.uint32(7), 0.0)), np.asarray(x))
    with pytest.raises(ValueError, match="rate"):
        keep_mask(jnp.uint32(0), (3,), 1.0)


def test_module_uses_the_dropout_stream_and_is_deterministic_per_key():
    x = jnp.ones((8, 128))
    layer = Dropout(0.5)
    a = layer.apply({}, x, rngs={"dropout": jax.random.key(0)})
    b = layer.apply({}, x, rngs={"dropout": jax.random.key(0)})
    c = layer.apply({}, x, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.3
    np.testing.assert_array_equal(np.asarray(Dropout(0.5, deterministic=True).apply({}, x)), np.asarray(x))
    # Gradient flows only through kept elements, scaled like the forward pass.
    g = jax.grad(lambda v: jnp.sum(layer.apply({}, v, rngs={"dropout": jax.random.key(0)})))(x)
    np.testing.assert_array_equal(np.asarray(g), np.asarray(a))
