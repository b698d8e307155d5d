"""The ASR's bf16 compute option (float32 params, log-probabilities, gradients), block rematerialisation for the
TTS and the ASR (same loss and gradients; the backward pass really recomputes), and the configuration `auto` gives
on an accelerator (bf16, blocked recurrences, XLA convolutions) run on the CPU."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError
from tests.test_sharding import asr_setup, tts_setup


def asr_model(config_changes, cache):
    from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn, preset

    model = CTCASR(preset("tiny", n_mels=cache.n_mels, spec_augment=None, dropout=0.0, attention_dropout=0.0,
                          **config_changes))
    return model, make_ctc_loss_fn(model)


def test_asr_bfloat16_compute_keeps_float32_params_outputs_and_gradients(small_cache):
    from mmspeech_jax.models.ctc_asr import preset

    params, batch, loss_fn = asr_setup(small_cache)
    reference_model, _ = asr_model({}, small_cache)
    low_model, low_loss_fn = asr_model({"compute_dtype": "bfloat16"}, small_cache)
    apply = lambda model: jax.jit(lambda p: model.apply({"params": p}, batch["features"], batch["frame_mask"]))(params)
    reference, mask = apply(reference_model)
    out, _ = apply(low_model)
    assert out.dtype == jnp.float32
    valid = np.asarray(mask)[..., None]
    err = float(np.max(np.abs(np.exp(out) - np.exp(reference)) * valid))  # on probabilities, in [0, 1]
    assert 0 < err < 0.05, err  # really computed in bf16 (not equal), and close
    grad = lambda fn: jax.jit(jax.value_and_grad(lambda p: fn(p, batch, jax.random.key(0), True, 0),
                                                 has_aux=True))(params)
    (loss, _), grads = grad(low_loss_fn)
    ref_loss = jax.jit(lambda p: loss_fn(p, batch, jax.random.key(0), True, 0)[0])(params)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=0.02)
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    with pytest.raises(ConfigError, match="compute_dtype"):
        preset("tiny", compute_dtype="float16")


def variant(task, cache, asr_changes: dict, tts_change):
    """(params, batch, loss_fn of the tiny preset, loss_fn of a changed config) for the TTS or the ASR: `asr_changes`
    are arguments of the ASR preset, `tts_change` maps the tiny FastSpeech2 config to the changed one."""
    if task == "asr":
        params, batch, loss_fn = asr_setup(cache)
        return params, batch, loss_fn, asr_model(asr_changes, cache)[1]
    from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset

    params, batch, loss_fn = tts_setup(cache)
    changed = FastSpeech2(tts_change(preset("tiny", len(cache.table))))
    return params, batch, loss_fn, make_fastspeech2_loss_fn(changed, binarization_start=0)


def remat_variant(task, cache):
    """(params, batch, loss_fn without remat, loss_fn with remat) for the tiny TTS or ASR."""
    return variant(task, cache, {"remat": True}, lambda config: dataclasses.replace(config, remat=True))


@pytest.mark.parametrize("task", [pytest.param("tts", marks=pytest.mark.slow), "asr"])  # tts: `make test-slow`
def test_remat_gives_the_same_loss_and_gradients(task, small_cache):
    params, batch, plain, remat = remat_variant(task, small_cache)
    rng = jax.random.key(0, impl="rbg")
    grad = lambda fn: jax.jit(jax.value_and_grad(lambda p: fn(p, batch, rng, True, 0), has_aux=True))
    (loss, _), grads = grad(plain)(params)
    (remat_loss, _), remat_grads = grad(remat)(params)
    np.testing.assert_allclose(float(remat_loss), float(loss), rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(remat_grads), jax.tree_util.tree_leaves(grads)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # The backward pass recomputes each block: one remat region per encoder/decoder block in the gradient's program.
    count = lambda fn: str(jax.make_jaxpr(lambda p: jax.grad(lambda q: fn(q, batch, rng, True, 0)[0])(p))(params)
                           ).count("remat")
    # tiny presets: TTS 1 encoder + 1 decoder block, ASR 2 Conformer blocks
    assert count(plain) == 0 and count(remat) == 2


def accelerator_variant(task, cache):
    """(params, batch, float32 CPU loss_fn, loss_fn as `auto` resolves on a GPU): bf16 compute, blocked recurrences
    over frames (CTC; the aligner's forward-sum and MAS) and, for the TTS, XLA's convolutions instead of Winograd."""
    gpu = lambda config: dataclasses.replace(config, compute_dtype="bfloat16", conv_algorithm="direct",
                                             aligner=dataclasses.replace(config.aligner, recurrence="blocked"))
    return variant(task, cache, {"compute_dtype": "bfloat16", "ctc_recurrence": "blocked"}, gpu)


@pytest.mark.parametrize("task", [pytest.param("tts", marks=pytest.mark.slow), "asr"])  # the heaviest variant runs in `make test-slow`; the other keeps the fast suite's coverage
def test_accelerator_configuration_matches_the_float32_cpu_path(task, small_cache):
    """What a GPU run computes, run on the CPU: the loss within 1 % of the float32 sequential-recurrence path and
    float32, finite gradients pointing the same way (cosine > 0.99 over all parameters)."""
    params, batch, reference_fn, gpu_fn = accelerator_variant(task, small_cache)
    rng = jax.random.key(0, impl="rbg")
    grad = lambda fn: jax.jit(jax.value_and_grad(lambda p: fn(p, batch, rng, True, 0), has_aux=True))(params)
    (loss, _), grads = grad(gpu_fn)
    (ref_loss, _), ref_grads = grad(reference_fn)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=0.01)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    flat = np.concatenate([np.ravel(g) for g in leaves]).astype(np.float64)
    ref_flat = np.concatenate([np.ravel(g) for g in jax.tree_util.tree_leaves(ref_grads)]).astype(np.float64)
    cosine = flat @ ref_flat / (np.linalg.norm(flat) * np.linalg.norm(ref_flat))
    assert cosine > 0.99, cosine
