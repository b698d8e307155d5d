"""The depthwise 1-D convolution (layers/depthwise.py) against XLA's grouped convolution and a float64 brute force."""

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.layers.depthwise import DepthwiseConv1D, depthwise_conv1d


def test_depthwise_conv_matches_grouped_convolution():
    x = np.random.default_rng(5).normal(size=(2, 11, 6)).astype(np.float32)
    for k in (3, 4, 7):
        layer = DepthwiseConv1D(k)
        params = layer.init(jax.random.PRNGKey(k), x)
        ours = np.asarray(layer.apply(params, x))
        reference = jax.lax.conv_general_dilated(x, params["params"]["kernel"], (1,), "SAME",
                                                 dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=6)
        np.testing.assert_allclose(ours, np.asarray(reference) + np.asarray(params["params"]["bias"]), atol=1e-5)


def test_depthwise_conv_gradients_match_float64_brute_force():
    """The hand-written backward pass of `depthwise_conv1d` (input and kernel gradients) against loops over the
    definition in float64, for odd and even kernels and a kernel longer than the sequence."""
    rng = np.random.default_rng(7)
    for b, t, d, k in ((2, 11, 6, 3), (2, 11, 6, 4), (3, 9, 5, 7), (1, 6, 4, 15)):
        x, g = rng.normal(size=(2, b, t, d))
        kernel = rng.normal(size=(k, d))
        left = (k - 1) // 2
        y, vjp = jax.vjp(depthwise_conv1d, jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32))
        dx, dkernel = vjp(jnp.asarray(g, jnp.float32))
        y_ref, dx_ref, dk_ref = np.zeros((b, t, d)), np.zeros((b, t, d)), np.zeros((k, d))
        for step in range(t):
            for i in range(k):
                s = step + i - left  # input frame that tap i reads for output frame `step`
                if 0 <= s < t:
                    y_ref[:, step] += x[:, s] * kernel[i]
                    dx_ref[:, s] += g[:, step] * kernel[i]
                    dk_ref[i] += (x[:, s] * g[:, step]).sum(0)
        np.testing.assert_allclose(np.asarray(y), y_ref, atol=1e-5)
        np.testing.assert_allclose(np.asarray(dx), dx_ref, atol=1e-5)
        np.testing.assert_allclose(np.asarray(dkernel), dk_ref, atol=1e-5)
