"""FastSpeech2 end to end on the tiny preset: entry points, real jitted training steps, NaN skipping, presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.data.pipeline import PipelineConfig, make_batch_iterator
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.fastspeech2 import FastSpeech2, model_inputs, preset
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, decay_mask, make_optimizer
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_eval_step, make_train_step

@pytest.fixture(scope="module")
def setup(small_cache):
    model = FastSpeech2(preset("tiny", len(small_cache.table)))
    iterator = make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=2, num_epochs=None,
                                                                        seed=0), verbose=False)
    first = model_inputs(next(iterator), model.config)
    params = init_params(model, {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, first, train=False)
    return model, params, iterator, first


def test_training_reduces_the_loss_and_compiles_per_shape(setup):
    model, params, iterator, first = setup
    tx = make_optimizer(OptimizerConfig(learning_rate=3e-3, warmup_steps=5, total_steps=40))
    loss_fn = make_fastspeech2_loss_fn(model, binarization_start=20)
    step = jax.jit(make_train_step(loss_fn, tx), donate_argnums=0)
    evaluate = jax.jit(make_eval_step(loss_fn))
    state = TrainState.create(params, tx)
    rng = jax.random.PRNGKey(0)
    before = float(evaluate(state, first, rng)["mel_l1"])
    for _ in range(40):
        state, metrics = step(state, model_inputs(next(iterator), model.config), rng)
        jax.block_until_ready(metrics["loss"])
        assert np.isfinite(float(metrics["loss"]))
    after = evaluate(state, first, rng)
    assert float(after["mel_l1"]) < 0.6 * before
    assert int(state.step) == 40 and int(state.skipped) == 0
    assert step._cache_size() <= len(iterator.shapes)
    for key in ("mel_l1", "mel_post_l1", "duration_mse", "pitch_mse", "energy_mse", "forward_sum", "binarization"):
        assert np.isfinite(float(after[key])), key


def test_non_finite_batch_skips_the_update(setup):
    model, params, _, first = setup
    tx = make_optimizer(OptimizerConfig(warmup_steps=1, total_steps=10))
    step = jax.jit(make_train_step(make_fastspeech2_loss_fn(model, binarization_start=1000), tx))
    state = TrainState.create(params, tx)
    bad = {**first, "mel": first["mel"].copy()}
    bad["mel"][0, 0, 0] = np.nan
    new_state, metrics = step(state, bad, jax.random.PRNGKey(0))
    assert int(new_state.skipped) == 1 and int(metrics["skipped"]) == 1
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                           new_state.params, state.params)
    good_state, _ = step(new_state, first, jax.random.PRNGKey(0))
    assert int(good_state.skipped) == 1
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree_util.tree_leaves(good_state.params), jax.tree_util.tree_leaves(state.params)))


def test_generate_and_entry_points(setup):
    model, params, _, first = setup
    mel, frame_mask, durations = jax.jit(
        lambda p, t, m: model.apply({"params": p}, t, m, 128, method=FastSpeech2.generate))(
        params, first["tokens"], first["token_mask"])
    assert mel.shape == (4, 128, 80) and frame_mask.shape == (4, 128)
    np.testing.assert_array_equal(np.asarray(frame_mask).sum(1), np.minimum(np.asarray(durations).sum(1), 128))
    assert np.all(np.asarray(durations)[~first["token_mask"]] == 0)
    h = model.apply({"params": params}, first["tokens"], first["token_mask"], method=FastSpeech2.encode)
    assert h.shape == (4, first["tokens"].shape[1], model.config.dim)


def test_weight_decay_mask_exempts_biases_norms_embeddings(setup):
    _, params, _, _ = setup
    mask = decay_mask(params)
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(mask)}
    assert flat["encoder/block_0/attention/qkv/kernel"] is True
    assert flat["encoder/block_0/attention/qkv/bias"] is False
    assert flat["encoder/block_0/attention_norm/scale"] is False
    assert flat["token_embedding/embedding"] is False


def test_presets():
    counts = {}
    for name in ("tiny", "base", "ljspeech"):
        config = preset(name, 141)
        batch = {"tokens": jnp.ones((1, 8), jnp.int32), "token_mask": jnp.ones((1, 8), bool),
                 "mel": jnp.zeros((1, 32, 80)), "frame_mask": jnp.ones((1, 32), bool),
                 "pitch": jnp.zeros((1, 32)), "energy": jnp.zeros((1, 32)),
                 "log_prior": jnp.zeros((1, 32, 8))}  # the aligner's prior (model_inputs adds it to real batches)
        shapes = jax.eval_shape(lambda: FastSpeech2(config).init(
            {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, batch, train=False))
        counts[name] = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    assert counts["tiny"] < counts["base"] < counts["ljspeech"]
    assert 34e6 < counts["ljspeech"] < 40e6  # ESPnet's LJSpeech FastSpeech2 configuration is ~37 M
    with pytest.raises(ConfigError):
        preset("huge", 10)
    with pytest.raises(ConfigError):
        preset("tiny", 10, heads=3)


def test_frame_level_variance_with_external_durations(small_cache):
    """aligner=None: durations come from the batch (here the corpus's ground truth); pitch/energy per frame."""
    model = FastSpeech2(preset("tiny", len(small_cache.table), aligner=None, variance_level="frame"))
    iterator = make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=1, num_epochs=None),
                                   verbose=False)
    first = model_inputs(next(iterator), model.config)
    params = init_params(model, {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, first, train=False)
    assert "aligner" not in params
    outputs, aux = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))(params, first)
    np.testing.assert_array_equal(np.asarray(aux["durations"]), first["durations"])
    np.testing.assert_array_equal(np.asarray(outputs["frame_mask"]), first["frame_mask"])  # durations sum to lengths
    assert aux["pitch"].shape == first["frame_mask"].shape and "log_alignment" not in aux
    tx = make_optimizer(OptimizerConfig(learning_rate=3e-3, warmup_steps=2, total_steps=25))
    loss_fn = make_fastspeech2_loss_fn(model, binarization_start=1000)
    step = jax.jit(make_train_step(loss_fn, tx), donate_argnums=0)
    evaluate = jax.jit(make_eval_step(loss_fn))
    state = TrainState.create(params, tx)
    before = float(evaluate(state, first, jax.random.PRNGKey(0))["mel_l1"])
    for _ in range(25):
        state, metrics = step(state, model_inputs(next(iterator), model.config), jax.random.PRNGKey(0))
        jax.block_until_ready(metrics["loss"])
    after = evaluate(state, first, jax.random.PRNGKey(0))
    assert "forward_sum" not in after and float(after["mel_l1"]) < 0.8 * before


def test_bfloat16_compute_keeps_float32_params_outputs_and_gradients(setup):
    import dataclasses

    model, params, _, batch = setup
    low = FastSpeech2(dataclasses.replace(model.config, compute_dtype="bfloat16"))
    reference, _ = jax.jit(lambda p: model.apply({"params": p}, batch, train=False))(params)
    out, _ = jax.jit(lambda p: low.apply({"params": p}, batch, train=False))(params)
    assert out["mel_post"].dtype == jnp.float32
    err = float(jnp.max(jnp.abs(out["mel_post"] - reference["mel_post"])) / jnp.max(jnp.abs(reference["mel_post"])))
    assert 0 < err < 0.03, err  # really computed in bf16 (not equal), and close
    loss_fn = make_fastspeech2_loss_fn(low, binarization_start=0)
    (loss, _), grads = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, batch, jax.random.PRNGKey(0), True,
                                                                    jnp.int32(0)), has_aux=True))(params)
    assert np.isfinite(float(loss))
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    with pytest.raises(ConfigError, match="compute_dtype"):
        preset("tiny", 40, compute_dtype="float16")


def hand_batch():
    """Two rows built by hand: 5 and 3 tokens, 12 and 7 frames, durations that add up."""
    b, n, t, m = 2, 5, 12, 80
    token_lengths, frame_lengths = np.array([5, 3], np.int32), np.array([12, 7], np.int32)
    durations = np.array([[2, 3, 1, 4, 2], [3, 0, 4, 0, 0]], np.int32)
    return {"tokens": np.ones((b, n), np.int32), "token_mask": np.arange(n) < token_lengths[:, None],
            "token_lengths": token_lengths, "mel": np.zeros((b, t, m), np.float32),
            "frame_mask": np.arange(t) < frame_lengths[:, None], "frame_lengths": frame_lengths,
            "pitch": np.zeros((b, t), np.float32), "energy": np.zeros((b, t), np.float32), "durations": durations}


def test_batch_checks_catch_lengths_and_durations_that_disagree():
    """External durations that do not add up to the mel, lengths that disagree with their masks, missing keys and
    wrong shapes are refused in one line naming the row, instead of a length regulator that silently cuts or pads."""
    from mmspeech_jax.errors import FeatureError
    from mmspeech_jax.models.fastspeech2 import check_batch

    external, aligned = preset("tiny", 40, aligner=None), preset("tiny", 40)
    assert set(model_inputs(hand_batch(), external)) >= {"durations", "mel"}
    assert "log_prior" in model_inputs({k: v for k, v in hand_batch().items() if k != "durations"}, aligned)

    def refused(change, message, config=external):
        batch = hand_batch()
        change(batch)
        with pytest.raises(FeatureError) as info:
            check_batch(batch, config)
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)

    refused(lambda b: b["durations"].__setitem__((1, 2), 5), "row 1: durations sum to 8 frames")  # one too many
    refused(lambda b: b["durations"].__setitem__((0, slice(0, 2)), [6, -1]), "row 0")  # same sum, negative
    refused(lambda b: b["durations"].__setitem__((1, 4), 2), "row 1")  # frames on a padding token
    refused(lambda b: b.pop("durations"), "lacks durations (aligner=None takes durations from the batch")
    refused(lambda b: b["frame_lengths"].__setitem__(0, 20), "row 0: frame_lengths 20 but frame_mask has 12",
            config=aligned)  # the prior would have been clipped to the 12 padded frames
    refused(lambda b: b["token_lengths"].__setitem__(1, 2), "row 1: token_lengths 2 but token_mask has 3",
            config=aligned)
    refused(lambda b: b.__setitem__("mel", np.zeros((2, 12, 79), np.float32)), "'mel' has shape (2, 12, 79), "
            "expected (B=2, T=12, M=80)", config=aligned)
    refused(lambda b: b.__setitem__("pitch", np.zeros((2, 11), np.float32)), "'pitch' has shape (2, 11)",
            config=aligned)
    refused(lambda b: b.pop("energy"), "lacks energy", config=aligned)
    bad = hand_batch()
    bad["durations"][0, 0] += 1
    with pytest.raises(FeatureError, match="row 0: durations sum to 13 frames"):
        model_inputs(bad, external)  # the trainer's path checks too


def test_library_traps_are_one_line_errors():
    """Issue #30's traps for notebook users: 1-D token ids (was an IndexError inside the embedding), a training
    batch without the aligner's log_prior (the aligner trained silently without its prior), and a loss function
    built without choosing when the binarization loss starts (a hidden default of step 1000)."""
    from mmspeech_jax.errors import FeatureError

    model = FastSpeech2(preset("tiny", 20))
    tokens = np.arange(1, 9, dtype=np.int32)[None]
    batch = {"tokens": tokens, "token_mask": tokens > 0, "token_lengths": np.array([8], np.int32),
             "mel": np.zeros((1, 32, 80), np.float32), "frame_mask": np.ones((1, 32), bool),
             "frame_lengths": np.array([32], np.int32), "pitch": np.zeros((1, 32), np.float32),
             "energy": np.zeros((1, 32), np.float32)}
    params = init_params(model, jax.random.PRNGKey(0), model_inputs(batch, model.config), train=False)
    with pytest.raises(FeatureError, match=r"tokens must be \(B, N\).*tokens\[None\]"):
        model.apply({"params": params}, tokens[0], tokens[0] > 0, 64, method=FastSpeech2.generate)
    with pytest.raises(FeatureError, match="token_mask must have the tokens' shape"):
        model.apply({"params": params}, tokens, (tokens > 0)[:, :4], 64, method=FastSpeech2.generate)
    with pytest.raises(FeatureError, match="no log_prior.*model_inputs"):
        model.apply({"params": params}, batch, train=False)
    outputs, _ = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))(  # the fix works
        params, model_inputs(batch, model.config))
    assert outputs["mel"].shape == (1, 32, 80)
    with pytest.raises(TypeError, match="binarization_start"):
        make_fastspeech2_loss_fn(model)


def test_ablation_rows_are_the_models_own_paths(setup):
    """benchmarks/tts_ablation: its teacher-forced row is the training forward pass (train=False), its synthesized
    row is `generate` at the same frame length, its duration rows the aligner's and the predictor's; the mixed rows
    differ from both ends (a wiring that ignored the given durations or variance would equal one of them)."""
    from benchmarks.tts_ablation import ablation_forward

    model, params, _, first = setup
    # 3 frames a token (the predictor's output is log(1 + frames)), so that the predicted rows are not empty
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["variance_adaptor"]["duration_predictor"]["out"]["bias"] = jnp.full((1,), np.log(4.0))
    out = ablation_forward(model)(params, first)
    t = first["frame_mask"].shape[1]
    # the references compiled as well (op by op they took most of this test's time)
    outputs, aux = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))(params, first)
    np.testing.assert_allclose(out["teacher-forced"][0], outputs["mel_post"], atol=1e-5)
    np.testing.assert_array_equal(out["aligner"], aux["durations"])
    mel, mask, durations = jax.jit(lambda p, tokens, mask: model.apply(
        {"params": p}, tokens, mask, 2 * t, method=FastSpeech2.generate))(params, first["tokens"], first["token_mask"])
    np.testing.assert_allclose(out["synthesized"][0], mel, atol=1e-5)
    np.testing.assert_array_equal(out["synthesized"][1], mask)
    np.testing.assert_array_equal(out["predicted"], durations)
    assert not np.allclose(out["aligner durations"][0], out["teacher-forced"][0], atol=1e-3)
    assert not np.allclose(out["predicted durations"][0], out["synthesized"][0], atol=1e-3)


def test_ablation_duration_errors_by_hand():
    from benchmarks.tts_ablation import duration_errors

    result = duration_errors([np.array([3, 0, 2]), np.array([4])], [np.array([3, 1, 0]), np.array([6])])
    assert result["mae_frames"] == pytest.approx((0 + 1 + 2 + 2) / 4)
    assert result["dropped"] == pytest.approx(1 / 3)  # of the 3 tokens the aligner gives frames, one got 0
    assert result["length_ratio"] == pytest.approx(10 / 9)
