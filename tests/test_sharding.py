"""Sharded train steps on 8 simulated CPU devices (conftest) equal the one-device step, for the TTS and the ASR."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer
from mmspeech_jax.train.sharding import (MeshConfig, leaf_spec, make_mesh, make_sharded_steps, shard_batch,
                                         state_shardings)
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

# A deprecated call in the step, sharding or checkpoint path fails here, before a newer jax/optax/orbax removes it.
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

MESHES = [(1, 8), (8, 1), (2, 4)]


def tts_setup(cache):
    from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, model_inputs, preset

    config = preset("tiny", len(cache.table))
    model = FastSpeech2(config)
    batch = model_inputs(next(make_batch_iterator(cache, "train", PipelineConfig(batch_size=8, num_buckets=1),
                                                  verbose=False)), config)
    params = init_params(model, {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, batch, train=False)
    return params, batch, make_fastspeech2_loss_fn(model, binarization_start=0)


def asr_setup(cache):
    from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn, model_inputs, preset

    model = CTCASR(preset("tiny", n_mels=cache.n_mels, spec_augment=None, dropout=0.0, attention_dropout=0.0))
    batch = model_inputs(next(make_batch_iterator(cache, "train", PipelineConfig(batch_size=8, num_buckets=1),
                                                  verbose=False)), cache.stats)
    params = init_params(model, {"params": jax.random.PRNGKey(0)}, batch["features"], batch["frame_mask"], train=False)
    return params, batch, make_ctc_loss_fn(model)


# The TTS step on (1, 8) runs in `make test-slow` (~30 s on 2 cores); the fast suite keeps the two meshes whose
# programs test_fit_on_a_mesh_resumes_on_another_mesh_shape reuses, and the ASR step on all three.
@pytest.mark.parametrize("task, meshes", [("tts", [(8, 1), (2, 4)]), ("asr", MESHES),
                                          pytest.param("tts", [(1, 8)], marks=pytest.mark.slow)])
def test_one_step_on_any_mesh_equals_one_device(task, meshes, small_cache):
    params, batch, loss_fn = (tts_setup if task == "tts" else asr_setup)(small_cache)
    # SGD makes "same updated parameters" a float32 statement about the gradients: Adam's first step maps every
    # non-zero gradient to +-lr, so a gradient that is ~1e-10 in either summation order would flip its sign.
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
    rng = jax.random.key(0, impl="rbg")
    # The steps are compiled as `fit` compiles them (donated state, the default min_shard_size), so that
    # test_fit_on_a_mesh_resumes_on_another_mesh_shape loads them from the persistent compilation cache.
    one_device = jax.jit(make_train_step(loss_fn, tx), donate_argnums=0)
    reference, ref_metrics = one_device(jax.tree_util.tree_map(jnp.copy, TrainState.create(params, tx)), batch, rng)
    assert np.isfinite(float(ref_metrics["loss"]))
    for data, fsdp in meshes:
        mesh = make_mesh(MeshConfig(data=data, fsdp=fsdp))
        state = TrainState.create(params, tx)
        sharding = state_shardings(state, mesh)
        train_step, _, _ = make_sharded_steps(loss_fn, tx, sharding, mesh)
        new, metrics = train_step(jax.device_put(state, sharding), shard_batch(batch, mesh), rng)
        np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-5)
        flat_new = jax.tree_util.tree_leaves(jax.device_get(new.params))
        flat_ref = jax.tree_util.tree_leaves(jax.device_get(reference.params))
        for a, b in zip(flat_new, flat_ref):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
        if fsdp > 1:  # the state really is split: some leaf lives in 1/fsdp pieces
            specs = [s.spec for s in jax.tree_util.tree_leaves(sharding)]
            assert any("fsdp" in tuple(spec) for spec in specs)
            leaf = next(x for x in jax.tree_util.tree_leaves(new.params) if "fsdp" in tuple(x.sharding.spec))
            assert leaf.addressable_shards[0].data.size == leaf.size // fsdp


def regression_setup():
    """A two-layer ReLU regression (the AdamW sharding rule is about leaves, not models; a TTS step took ~60 s to
    compile for this test on 2 cores)."""
    rng = np.random.default_rng(0)
    params = {"w1": rng.normal(size=(16, 128)).astype(np.float32) / 4, "b1": np.zeros(128, np.float32),
              "w2": rng.normal(size=(128, 8)).astype(np.float32) / 11}
    batch = {"x": rng.normal(size=(8, 16)).astype(np.float32), "y": rng.normal(size=(8, 8)).astype(np.float32)}

    def loss_fn(p, b, rng, train, step, counts=None):
        error = jax.nn.relu(b["x"] @ p["w1"] + p["b1"]) @ p["w2"] - b["y"]
        return (error**2).mean(), {"max_error": abs(error).max()}

    return params, batch, loss_fn


def test_adamw_state_shards_like_its_parameters():
    params, batch, loss_fn = regression_setup()
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3, warmup_steps=1, total_steps=10))
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    state = TrainState.create(params, tx)
    sharding = state_shardings(state, mesh, min_shard_size=256)
    train_step, eval_step, _ = make_sharded_steps(loss_fn, tx, sharding, mesh)
    rng = jax.random.key(0, impl="rbg")
    new, metrics = train_step(jax.device_put(state, sharding), shard_batch(batch, mesh), rng)
    assert int(new.step) == 1 and int(new.skipped) == 0 and np.isfinite(float(metrics["loss"]))
    mu = new.opt_state[1][0].mu  # clip -> adamw's ScaleByAdamState
    specs = {name: p.sharding.spec for name, p in new.params.items()}
    assert specs == {"w1": P(None, "fsdp"), "b1": P(), "w2": P("fsdp")}  # b1 (128 values) is under min_shard_size
    for name, p in new.params.items():
        assert mu[name].sharding.spec == specs[name] and new.opt_state[1][0].nu[name].sharding.spec == specs[name]
        assert mu[name].addressable_shards[0].data.size == p.size // (4 if specs[name] != P() else 1)
    assert np.isfinite(float(eval_step(new, shard_batch(batch, mesh), rng)["loss"]))


def test_leaf_rule_and_mesh_errors():
    assert leaf_spec((512, 96), 4, 1024) == P("fsdp")
    assert leaf_spec((6, 512), 4, 1024) == P(None, "fsdp")
    assert leaf_spec((7, 9), 4, 1) == P()  # no divisible axis
    assert leaf_spec((16,), 4, 1024) == P()  # small
    assert leaf_spec((512, 96), 1, 1) == P()  # fsdp 1: replicated
    with pytest.raises(ConfigError, match="does not divide"):
        make_mesh(MeshConfig(fsdp=3))
    with pytest.raises(ConfigError, match="needs 4 devices"):
        make_mesh(MeshConfig(data=2, fsdp=2))
    mesh = make_mesh(MeshConfig(data=4, fsdp=2))
    with pytest.raises(ConfigError, match="divide evenly"):
        shard_batch({"x": np.zeros((6, 3))}, mesh)


def test_fit_on_a_mesh_resumes_on_another_mesh_shape(small_cache, tmp_path, capsys):
    """A run checkpointed on an 8x1 mesh resumes on 2x4 (FSDP) and ends where a one-device run ends."""
    from mmspeech_jax.models.fastspeech2 import model_inputs, preset
    from mmspeech_jax.train.trainer import TrainerConfig, fit

    params, _, loss_fn = tts_setup(small_cache)
    config = preset("tiny", len(small_cache.table))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
    batches = lambda: make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=8, num_buckets=1,
                                                                               num_epochs=None), verbose=False)
    prepare = lambda b: model_inputs(b, config)
    run = lambda workdir, steps, mesh=None: fit(
        tmp_path / workdir, params, tx, loss_fn, batches(),
        TrainerConfig(steps=steps, checkpoint_every=2, eval_every=1000, progress=False), prepare=prepare, mesh=mesh)
    reference = run("one_device", 4)
    run("meshes", 2, make_mesh(MeshConfig(data=8, fsdp=1)))
    capsys.readouterr()
    resumed = run("meshes", 4, make_mesh(MeshConfig(data=2, fsdp=4)))
    assert "resuming from step 2" in capsys.readouterr().out
    assert int(resumed.state.step) == 4
    assert any("fsdp" in tuple(x.sharding.spec) for x in jax.tree_util.tree_leaves(resumed.state.params))
    for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(resumed.state.params)),
                    jax.tree_util.tree_leaves(jax.device_get(reference.state.params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_mesh_flag():
    from experiments.flags import build_mesh, mesh_config_from_flag

    assert build_mesh(mesh_config_from_flag(None)) is None
    assert dict(build_mesh(mesh_config_from_flag("2x4")).shape) == {"data": 2, "fsdp": 4}
    with pytest.raises(ConfigError, match="--mesh"):
        mesh_config_from_flag("eight")


def test_persistent_compilation_cache_is_filled(small_cache, tmp_path):
    """The trainer's cache directory is used even when this process already opened a cache on another one."""
    from jax.experimental.compilation_cache import compilation_cache

    from mmspeech_jax.models.fastspeech2 import model_inputs, preset
    from mmspeech_jax.train.trainer import TrainerConfig, fit

    params, _, loss_fn = tts_setup(small_cache)
    config = preset("tiny", len(small_cache.table))
    earlier, cache_dir = tmp_path / "earlier_cache", tmp_path / "xla_cache"
    before = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    try:
        jax.config.update("jax_compilation_cache_dir", str(earlier))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        compilation_cache.reset_cache()
        jax.jit(lambda x: x * 3.0 + 1.0)(np.arange(5.0, dtype=np.float32)).block_until_ready()
        assert any(earlier.iterdir())  # a cache is open on `earlier`
        fit(tmp_path / "w", params, optax.sgd(0.1), loss_fn,
            make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=8, num_buckets=1, num_epochs=None),
                                verbose=False),
            TrainerConfig(steps=1, eval_every=1000, progress=False, compilation_cache_dir=str(cache_dir)),
            prepare=lambda b: model_inputs(b, config))
        assert cache_dir.is_dir() and any(cache_dir.iterdir())
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
        compilation_cache.reset_cache()
