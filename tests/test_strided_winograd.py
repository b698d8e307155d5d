"""Polyphase Winograd strided 3x3 convolution: forward and custom backward against a float64 NumPy direct
convolution written from the definition; the layer's algorithm switch; the overlap-add."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.strided_winograd import overlap_add, strided_conv2d
from mmspeech_jax.layers.subsampling import Conv2dSubsampling, StridedConv2d, uses_winograd
from mmspeech_jax.models.ctc_asr import frontend_and_encoder, preset

TOLERANCE = 5e-6  # relative to the largest reference value; float32 direct convolution reaches ~5e-7


def numpy_strided_conv(x, kernel, strides):
    """y[b, t, f] = sum_ij x[b, s_t t + i, s_f f + j] @ kernel[i, j], float64."""
    st, sf = strides
    to, fo = (x.shape[1] - 3) // st + 1, (x.shape[2] - 3) // sf + 1
    return sum(x[:, i : i + st * (to - 1) + 1 : st, j : j + sf * (fo - 1) + 1 : sf] @ kernel[i, j]
               for i in range(3) for j in range(3))


def numpy_strided_conv_grads(x, kernel, strides, w):
    """d/dx and d/dkernel of sum(numpy_strided_conv(x, kernel) * w), float64, by the definition."""
    st, sf = strides
    to, fo = w.shape[1:3]
    dx, dkernel = np.zeros_like(x), np.zeros_like(kernel)
    for i in range(3):
        for j in range(3):
            window = (slice(None), slice(i, i + st * (to - 1) + 1, st), slice(j, j + sf * (fo - 1) + 1, sf))
            dx[window] += w @ kernel[i, j].T
            dkernel[i, j] = np.einsum("btfc,btfo->co", x[window], w)
    return dx, dkernel


def relative_error(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


# The larger input (several tiles each way) with the strides other than (2, 2) runs in `make test-slow` (~40 s on 2
# cores); every stride runs on the smaller inputs in the fast suite.
@pytest.mark.parametrize("strides, t, f", [(s, t, f) for s in ((2, 2), (1, 2), (2, 1), (1, 1))
                                           for t, f in ((13, 10), (14, 11), (3, 3))]
                         + [((2, 2), 30, 19)]
                         + [pytest.param(s, 30, 19, marks=pytest.mark.slow) for s in ((1, 2), (2, 1), (1, 1))])
def test_forward_and_gradients_match_float64_direct_convolution(strides, t, f):
    rng = np.random.default_rng(t * 100 + f + strides[0])
    x, kernel = rng.normal(size=(2, t, f, 6)), rng.normal(size=(3, 3, 6, 5)) / np.sqrt(54)
    reference = numpy_strided_conv(x, kernel, strides)
    w = rng.normal(size=reference.shape)
    xj, kj = jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32)

    @jax.jit
    def forward_and_grads(a, b):  # one program: the output and the custom backward's pullback of w
        y, pullback = jax.vjp(lambda a, b: strided_conv2d(a, b, strides), a, b)
        return (y, *pullback(jnp.asarray(w, jnp.float32)))

    y, dx, dk = forward_and_grads(xj, kj)
    assert y.shape == reference.shape
    assert relative_error(y, reference) < TOLERANCE
    ref_dx, ref_dk = numpy_strided_conv_grads(x, kernel, strides, w)
    assert relative_error(dx, ref_dx) < TOLERANCE
    assert relative_error(dk, ref_dk) < TOLERANCE


def test_strided_conv2d_rejects_other_kernels_and_strides():
    x = jnp.zeros((1, 9, 9, 2))
    with pytest.raises(ValueError, match="3x3 kernel"):
        strided_conv2d(x, jnp.zeros((5, 5, 2, 3)), (2, 2))
    with pytest.raises(ValueError, match="strides"):
        strided_conv2d(x, jnp.zeros((3, 3, 2, 3)), (3, 2))


@pytest.mark.parametrize("m,k", [(4, 2), (4, 3), (4, 1), (1, 1)])
def test_overlap_add_places_part_i_of_tile_j_at_row_j_m_plus_i(m, k):
    tiles = 5
    parts = [np.random.default_rng(m + k + i).normal(size=(2, tiles, 3)) for i in range(m + k - 1)]
    expected = np.zeros((2, tiles * m + k - 1, 3))
    for i, part in enumerate(parts):
        for j in range(tiles):
            expected[:, j * m + i] += part[:, j]
    np.testing.assert_allclose(np.asarray(overlap_add([jnp.asarray(p) for p in parts], m, axis=1)), expected,
                               rtol=1e-6, atol=1e-6)


def test_layer_algorithms_share_parameters_and_agree():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 21, 17, 8)), jnp.float32)
    for strides in ((2, 2), (1, 2)):
        direct = StridedConv2d(12, strides, algorithm="direct")
        winograd = StridedConv2d(12, strides, algorithm="winograd")
        params = jax.jit(direct.init)(jax.random.PRNGKey(0), x)  # compiled, as everywhere else (op by op: 3x)
        params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # a nonzero bias too
        assert (jax.tree_util.tree_map(jnp.shape, jax.eval_shape(winograd.init, jax.random.PRNGKey(0), x))
                == jax.tree_util.tree_map(jnp.shape, params))
        expected = np.asarray(jax.jit(direct.apply)(params, x), np.float64)
        assert relative_error(jax.jit(winograd.apply)(params, x), expected) < TOLERANCE


def test_auto_uses_winograd_only_for_wide_float32_inputs_on_the_cpu():
    assert jax.default_backend() == "cpu"  # the test suite runs on CPU devices
    assert uses_winograd(256, jnp.float32)
    assert not uses_winograd(1, jnp.float32)  # the first convolution (one input channel) stays a patch matmul
    assert not uses_winograd(256, jnp.bfloat16)
    assert uses_winograd(1, jnp.bfloat16, "winograd") and not uses_winograd(256, jnp.float32, "direct")
    with pytest.raises(ValueError, match="convolution algorithm"):
        uses_winograd(256, jnp.float32, "fft")


def test_asr_config_validates_and_passes_the_algorithm():
    with pytest.raises(ConfigError, match="conv_algorithm"):
        preset("tiny", conv_algorithm="fft")
    features = jnp.asarray(np.random.default_rng(2).normal(size=(2, 40, 80)), jnp.float32)
    mask = jnp.arange(40)[None, :] < jnp.asarray([[40], [31]])
    outputs = {}
    for algorithm in ("direct", "winograd"):
        c = preset("tiny", conv_algorithm=algorithm, subsampling=4)
        module = frontend_and_encoder(c)[0]
        assert isinstance(module, Conv2dSubsampling) and module.conv_algorithm == algorithm
        params = jax.jit(module.init)(jax.random.PRNGKey(0), features, mask)
        outputs[algorithm] = jax.jit(module.apply)(params, features, mask)
    np.testing.assert_array_equal(np.asarray(outputs["direct"][1]), np.asarray(outputs["winograd"][1]))
    scale = float(np.abs(np.asarray(outputs["direct"][0])).max())
    np.testing.assert_allclose(np.asarray(outputs["winograd"][0]), np.asarray(outputs["direct"][0]),
                               atol=TOLERANCE * scale)
