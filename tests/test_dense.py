"""layers/dense.py: the same parameters as flax's Dense, and its hand-written backward pass against float64 NumPy
for widening and narrowing layers (the two orders of the weight-gradient product)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.layers.dense import Dense, dense_matmul


def test_parameters_and_outputs_match_flax_dense():
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype(np.float32)
    ours, theirs = Dense(9), nn.Dense(9)
    params = ours.init(jax.random.PRNGKey(3), x)
    reference = theirs.init(jax.random.PRNGKey(3), x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, reference)
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(reference, x), atol=1e-6)


def test_gradients_match_float64_for_both_product_orders():
    rng = np.random.default_rng(1)
    for k, f in ((6, 17), (17, 6), (8, 8)):  # widening (dy^T x)^T, narrowing and square x^T dy
        x, kernel, dy = rng.normal(size=(3, 4, k)), rng.normal(size=(k, f)), rng.normal(size=(3, 4, f))
        _, vjp = jax.vjp(dense_matmul, jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32))
        dx, dkernel = vjp(jnp.asarray(dy, jnp.float32))
        np.testing.assert_allclose(dx, dy @ kernel.T, atol=1e-4)
        np.testing.assert_allclose(dkernel, x.reshape(-1, k).T @ dy.reshape(-1, f), atol=1e-4)
        assert dkernel.shape == (k, f)
