"""Winograd 1-D convolution: transforms, forward and custom backward against float64 NumPy direct convolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.data.pipeline import PipelineConfig, make_batch_iterator
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.winograd import Conv1D, apply_transform, transforms, uses_winograd, winograd_conv1d
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.aligner import AlignerConfig, AlignmentEncoder
from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config, model_inputs, preset
from mmspeech_jax.train.init import init_params

TOLERANCE = 5e-6  # relative to the largest reference value; float32 direct convolution reaches ~5e-7


def numpy_conv(x, kernel):
    """'SAME' cross-correlation in float64: y[t] = sum_j x[t + j - left] @ kernel[j]."""
    k = kernel.shape[0]
    left = (k - 1) // 2
    padded = np.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    return sum(padded[:, j : j + x.shape[1]] @ kernel[j] for j in range(k))


def numpy_conv_grads(x, kernel, w):
    """d/dx and d/dkernel of sum(numpy_conv(x, kernel) * w), float64, by the definition."""
    k, t = kernel.shape[0], x.shape[1]
    left = (k - 1) // 2
    padded = np.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    dkernel = np.stack([np.einsum("btc,btf->cf", padded[:, j : j + t], w) for j in range(k)])
    dpadded = np.zeros_like(padded)
    for j in range(k):
        dpadded[:, j : j + t] += w @ kernel[j].T
    return dpadded[:, left : left + t], dkernel


def relative_error(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5)])
def test_transforms_compute_the_correlation_of_one_tile(m, k):
    at, g, bt = transforms(m, k)
    rng = np.random.default_rng(m * 10 + k)
    d, taps = rng.normal(size=m + k - 1), rng.normal(size=k)
    expected = [sum(d[i + j] * taps[j] for j in range(k)) for i in range(m)]
    np.testing.assert_allclose(at @ ((g @ taps) * (bt @ d)), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m,k,t", [(4, 3, 13), (4, 3, 16), (2, 3, 7), (4, 5, 13), (4, 5, 1)])
def test_forward_and_gradients_match_float64_direct_convolution(m, k, t):
    rng = np.random.default_rng(t + k)
    x, kernel = rng.normal(size=(2, t, 6)), rng.normal(size=(k, 6, 5)) / np.sqrt(6 * k)
    w = rng.normal(size=(2, t, 5))
    xj, kj = jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32)
    y = jax.jit(winograd_conv1d, static_argnums=2)(xj, kj, m)
    assert relative_error(y, numpy_conv(x, kernel)) < TOLERANCE
    dx, dk = jax.jit(jax.grad(lambda a, b: jnp.sum(winograd_conv1d(a, b, m) * w), argnums=(0, 1)))(xj, kj)
    ref_dx, ref_dk = numpy_conv_grads(x, kernel, w)
    assert relative_error(dx, ref_dx) < TOLERANCE
    assert relative_error(dk, ref_dk) < TOLERANCE


def test_apply_transform_is_the_matrix_product_over_the_arrays():
    """Row r of `apply_transform(M, arrays)` is sum_j M[r, j] arrays[j] (float64 einsum reference; tolerance 1e-5
    relative for float32), zero columns included or left out alike."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((5, 4))
    matrix[:, 2] = 0.0  # a zero column is left out
    arrays = rng.standard_normal((4, 3, 7, 2))
    out = apply_transform(matrix, [jnp.asarray(a, jnp.float32) for a in arrays])
    assert out.shape == (5, 3, 7, 2) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), np.einsum("rj,jabc->rabc", matrix, arrays), rtol=1e-5, atol=1e-5)


def test_conv1d_has_nn_conv_parameters_and_output():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 11, 8)), jnp.float32)
    reference = nn.Conv(12, (3,), padding="SAME")
    params = reference.init(jax.random.PRNGKey(0), x)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # a nonzero bias too
    for algorithm in ("winograd", "direct"):
        module = Conv1D(12, 3, algorithm=algorithm)
        own = module.init(jax.random.PRNGKey(0), x)
        assert jax.tree_util.tree_structure(own) == jax.tree_util.tree_structure(params)
        assert jax.tree_util.tree_map(jnp.shape, own) == jax.tree_util.tree_map(jnp.shape, params)
        expected = np.asarray(reference.apply(params, x), np.float64)
        assert relative_error(module.apply(params, x), expected) < TOLERANCE


def test_algorithm_choice():
    assert uses_winograd(3, jnp.float32, "winograd") and uses_winograd(5, jnp.float32, "winograd")
    assert not uses_winograd(3, jnp.float32, "direct")
    assert not uses_winograd(1, jnp.float32, "winograd")  # no tile for kernel 1: XLA's convolution
    assert not uses_winograd(3, jnp.bfloat16, "auto")  # bf16 keeps XLA's convolution
    assert uses_winograd(3, jnp.float32, "auto") == (jax.default_backend() == "cpu")
    with pytest.raises(ValueError, match="algorithm"):
        uses_winograd(3, jnp.float32, "fft")
    with pytest.raises(ConfigError, match="conv_algorithm"):
        FastSpeech2Config(vocab_size=10, conv_algorithm="fft")


def test_fastspeech2_loss_and_gradients_do_not_depend_on_the_algorithm(small_cache):
    """Every kernel-3/5 convolution of the model (FFT blocks, predictors, postnet; the aligner's below) switches
    together: the same parameters give the same loss and gradients within float32 rounding. External durations
    keep the compile short."""
    iterator = make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=1, num_epochs=None),
                                   verbose=False)
    batch = next(iterator)
    results, params, convolutions = [], None, []
    for algorithm in ("winograd", "direct"):
        model = FastSpeech2(preset("tiny", len(small_cache.table), conv_algorithm=algorithm, conv_kernels=(3, 3),
                                   aligner=None))
        inputs = model_inputs(batch, model.config)
        if params is None:
            params = init_params(model, {"params": jax.random.PRNGKey(0)}, inputs, train=False)
        loss_fn = make_fastspeech2_loss_fn(model, binarization_start=1000)
        jaxpr = jax.make_jaxpr(lambda p, f=loss_fn, b=inputs: f(p, b, jax.random.PRNGKey(1), False, 0)[0])(params)
        convolutions.append(str(jaxpr).count("conv_general_dilated"))
        results.append(jax.jit(jax.value_and_grad(lambda p, f=loss_fn, b=inputs: f(p, b, jax.random.PRNGKey(1),
                                                                                     False, 0)[0]))(params))
    # 2 FFT blocks x 2 convs, 3 predictors x 2, 2 postnet convs switch; the 1-channel pitch/energy embeddings do not
    assert convolutions[1] - convolutions[0] == 2 * 2 + 6 + 2
    (loss_w, grads_w), (loss_d, grads_d) = results
    assert abs(float(loss_w) - float(loss_d)) < 1e-5 * abs(float(loss_d))
    flat = [np.concatenate([np.ravel(g) for g in jax.tree_util.tree_leaves(grads)]) for grads in (grads_w, grads_d)]
    assert relative_error(flat[0], flat[1].astype(np.float64)) < 1e-4


def test_aligner_convolutions_follow_the_algorithm():
    config = AlignerConfig(dim=8, text_hidden=16, mel_hidden=16)
    rng = np.random.default_rng(1)
    text, mel = rng.normal(size=(2, 7, 12)).astype(np.float32), rng.normal(size=(2, 19, 80)).astype(np.float32)
    token_mask, frame_mask = np.ones((2, 7), bool), np.ones((2, 19), bool)
    params = AlignmentEncoder(config, "direct").init(jax.random.PRNGKey(0), text, token_mask, mel, frame_mask)
    outputs, convolutions = [], []
    for algorithm in ("winograd", "direct"):
        apply = lambda p, a=algorithm: AlignmentEncoder(config, a).apply(p, text, token_mask, mel, frame_mask)
        outputs.append(np.asarray(apply(params), np.float64))
        convolutions.append(str(jax.make_jaxpr(apply)(params)).count("conv_general_dilated"))
    assert relative_error(outputs[0], outputs[1]) < 1e-5
    assert convolutions[1] == convolutions[0] + 2  # its two kernel-3 convolutions switch; the kernel-1 ones do not
