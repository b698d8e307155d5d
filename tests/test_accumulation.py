"""Gradient accumulation gives the one-large-batch step: loss, parts and updated parameters (float32 tolerance),
for the TTS and the ASR, on one device and on a mesh, and through `fit`."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.sharding import MeshConfig, make_mesh, make_sharded_steps, shard_batch, state_shardings
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step, split_micro_batches
from tests.test_sharding import asr_setup, tts_setup

# SGD: "same updated parameters" is then a float32 statement about the gradients (see test_sharding.py).
TX = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))


def one_step(loss_fn, params, batch, micro_batches, unroll=None):
    step = jax.jit(make_train_step(loss_fn, TX, micro_batches, unroll))
    return step(TrainState.create(params, TX), batch, jax.random.key(0, impl="rbg"))


def assert_same_step(got, want):
    (new, metrics), (ref, ref_metrics) = got, want
    assert set(metrics) == set(ref_metrics)
    for key in ref_metrics:
        np.testing.assert_allclose(float(metrics[key]), float(ref_metrics[key]), rtol=2e-5, atol=1e-6, err_msg=key)
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(new.params)),
                    jax.tree_util.tree_leaves(jax.device_get(ref.params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def micro_losses(loss_fn, params, batch, micro_batches):
    micro = split_micro_batches(batch, micro_batches)
    loss = jax.jit(lambda p, b: loss_fn(p, b, jax.random.key(0, impl="rbg"), True, 0)[0])
    return [float(loss(params, jax.tree_util.tree_map(lambda x: x[m], micro))) for m in range(micro_batches)]


@pytest.mark.parametrize("task", [pytest.param("tts", marks=pytest.mark.slow), "asr"])  # the heaviest variant runs in `make test-slow`; the other keeps the fast suite's coverage
def test_accumulated_step_equals_one_large_batch(task, small_cache):
    params, batch, loss_fn = (tts_setup if task == "tts" else asr_setup)(small_cache)
    if task == "asr":  # one empty row: the CTC mean is over utterances, and micro-batch 0 then holds one fewer
        batch = {**batch, "example_mask": np.arange(len(batch["example_mask"])) > 0}
    whole = one_step(loss_fn, params, batch, 1)
    assert int(whole[1]["skipped"]) == 0
    assert_same_step(one_step(loss_fn, params, batch, 4), whole)
    # The test can tell: averaging the micro-batches' own losses (each a mean over its own frames/utterances) is
    # not the whole batch's loss for this variable-length batch (10x the tolerance above).
    naive = np.mean(micro_losses(loss_fn, params, batch, 4))
    assert abs(naive - float(whole[1]["loss"])) > 2e-4 * abs(float(whole[1]["loss"]))


@pytest.mark.slow  # one more compiled step; the fast suite runs the unrolled loop (the CPU's default)
def test_the_rolled_micro_batch_loop_gives_the_same_step(small_cache):
    """The rolled loop (accelerators' default) gives the step of the unrolled one and of one large batch."""
    params, batch, loss_fn = asr_setup(small_cache)
    batch = {**batch, "example_mask": np.arange(len(batch["example_mask"])) > 0}
    assert_same_step(one_step(loss_fn, params, batch, 4, unroll=False), one_step(loss_fn, params, batch, 1))


@pytest.mark.slow  # ~50 s; the fast suite covers accumulation (one device) and meshes (test_sharding.py) apart
def test_accumulation_on_a_mesh_equals_one_device(small_cache):
    params, _, loss_fn = tts_setup(small_cache)
    from mmspeech_jax.models.fastspeech2 import model_inputs, preset

    config = preset("tiny", len(small_cache.table))
    batch = model_inputs(next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=16, num_buckets=1),
                                                  verbose=False)), config)
    whole = one_step(loss_fn, params, batch, 1)
    mesh = make_mesh(MeshConfig(data=2, fsdp=4, min_shard_size=64))
    state = TrainState.create(params, TX)
    sharding = state_shardings(state, mesh, min_shard_size=64)
    train_step, _, _ = make_sharded_steps(loss_fn, TX, sharding, mesh, micro_batches=2)
    got = train_step(jax.device_put(state, sharding), shard_batch(batch, mesh), jax.random.key(0, impl="rbg"))
    assert_same_step(got, whole)


def test_flag_reaches_the_trainer_step(small_cache, tmp_path):
    from experiments.ljspeech_tts import parse_args
    from mmspeech_jax.models.fastspeech2 import model_inputs, preset
    from mmspeech_jax.train.trainer import fit

    config = parse_args(["--micro_batches", "3", "--batch_size", "6", "--steps", "2"])[1].trainer
    assert config.micro_batches == 3 and config.steps == 2
    params, _, loss_fn = tts_setup(small_cache)
    model_config = preset("tiny", len(small_cache.table))
    batches = make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=1), verbose=False)
    # fit builds its step with the config's micro-batches: a batch of 4 rows cannot be dealt into 3.
    with pytest.raises(ConfigError, match="does not split into 3 micro-batches"):
        fit(tmp_path, params, TX, loss_fn, batches, dataclasses.replace(config, progress=False),
            prepare=lambda b: model_inputs(b, model_config))


def test_accumulation_errors_are_one_line(small_cache):
    params, batch, loss_fn = tts_setup(small_cache)
    with pytest.raises(ConfigError, match="does not split into 3 micro-batches"):
        one_step(loss_fn, params, batch, 3)
    with pytest.raises(ConfigError, match="micro_batches must be >= 1"):
        make_train_step(loss_fn, TX, 0)
    without_counts = lambda p, b, r, t, s, counts=None: (lambda loss, parts: (loss, {
        k: v for k, v in parts.items() if k != "counts"}))(*loss_fn(p, b, r, t, s, counts))
    with pytest.raises(ConfigError, match="reports parts\\['counts'\\]"):
        one_step(without_counts, params, batch, 2)
