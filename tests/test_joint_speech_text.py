"""The joint speech–text model: its pieces against NumPy references, the recognizer as a CTCASR, the two modalities
on one frame grid, each objective's gradients reaching only its parts, the data streams' exact resume, the trainer
guarantees (mesh, micro-batches, bf16, resume, compile count) and the experiment through the CLI."""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.data.interleaved_batches import InterleavedBatches
from mmspeech_jax.data.text_batches import TextBatches
from mmspeech_jax.errors import ConfigError, FeatureError
from mmspeech_jax.layers.subsampling import subsampled_length
from mmspeech_jax.losses.joint import masked_token_correct, masked_token_total, matching_total
from mmspeech_jax.models import joint_speech_text as joint
from mmspeech_jax.models.ctc_asr import CTCASR
from mmspeech_jax.models.variance_adaptor import token_average_vectors
from mmspeech_jax.train.finetune import trainable_mask
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

ROOT = Path(__file__).resolve().parents[1]


# --- NumPy references ------------------------------------------------------------------------------------------
def test_encoder_rate_durations_match_a_loop_over_boundaries():
    rng = np.random.default_rng(0)
    for factor in (2, 4):
        durations = rng.integers(0, 12, (5, 9))
        token_lengths = np.array([9, 7, 1, 4, 9])
        token_mask = np.arange(9)[None] < token_lengths[:, None]
        durations = np.where(token_mask, durations, 0)
        durations[:, 0] += 8  # every row long enough for a few encoder frames
        frame_lengths = durations.sum(-1)
        encoder_lengths = subsampled_length(frame_lengths, factor)
        got = np.asarray(joint.encoder_rate_durations(jnp.asarray(durations), jnp.asarray(token_mask),
                                                      jnp.asarray(encoder_lengths), factor))
        for b in range(5):
            end, previous, expected = 0, 0, np.zeros(9, int)
            for n in range(token_lengths[b]):
                end += durations[b, n]
                moved = min(max(np.round((end - 3) / factor), 0), encoder_lengths[b])
                if n == token_lengths[b] - 1:
                    moved = encoder_lengths[b]
                expected[n], previous = moved - previous, moved
            np.testing.assert_array_equal(got[b], expected)
            assert got[b].sum() == encoder_lengths[b] and (got[b] >= 0).all()


def test_token_average_vectors_matches_numpy():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 10, 3)).astype(np.float32)
    durations = np.array([[2, 0, 5, 4], [1, 3, 0, 0]])  # row 0 runs past T = 10: its last token has 3 frames
    frame_mask = np.arange(10)[None] < np.array([[10], [4]])
    got = np.asarray(token_average_vectors(jnp.asarray(values), jnp.asarray(durations), jnp.asarray(frame_mask)))
    for b in range(2):
        start = 0
        for n in range(4):
            frames = [t for t in range(start, start + durations[b, n]) if t < 10 and frame_mask[b, t]]
            expected = values[b, frames].astype(np.float64).mean(0) if frames else np.zeros(3)
            np.testing.assert_allclose(got[b, n], expected, rtol=1e-5, atol=1e-6)
            start += durations[b, n]


def test_masked_token_and_matching_losses_match_float64_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 6, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (3, 6))
    masked = rng.random((3, 6)) < 0.4
    total, count = masked_token_total(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(masked))
    z = logits.astype(np.float64)
    log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(total), nll[masked].sum(), rtol=1e-5)
    assert float(count) == masked.sum()
    assert int(masked_token_correct(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(masked))) == \
        int(((z.argmax(-1) == targets) & masked).sum())
    a, b = rng.normal(size=(2, 2, 7, 5)).astype(np.float32)
    mask = np.arange(7)[None] < np.array([[7], [3]])
    total, count = matching_total(jnp.asarray(a), jnp.asarray(b), jnp.asarray(mask))
    diff = a.astype(np.float64) - b
    np.testing.assert_allclose(float(total), (diff**2).mean(-1)[mask].sum(), rtol=1e-5)
    assert float(count) == mask.sum()


# --- the model on the small corpus -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(small_cache):
    config = joint.preset("tiny", len(small_cache.table))
    config = replace(config, speech=replace(config.speech, spec_augment=None, dropout=0.0, attention_dropout=0.0))
    model = joint.JointSpeechText(config)
    raw = next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=1), verbose=False))
    text = {"tokens": raw["tokens"], "token_mask": raw["token_mask"]}
    batch = joint.prepare_joint_batch({"speech": raw, "text": text, "paired": raw}, config, small_cache.stats)
    paired = {k.split("/", 1)[1]: v for k, v in batch.items() if k.startswith("paired/")}
    params = init_params(model, {"params": jax.random.PRNGKey(0)}, paired, method=joint.JointSpeechText.initialize)
    return config, model, batch, paired, jax.device_get(params)


def test_recognizer_is_a_ctcasr_on_the_speech_parameters(tiny):
    config, model, _, paired, params = tiny
    log_probs, mask = model.apply({"params": params}, paired["features"], paired["frame_mask"],
                                  method=joint.JointSpeechText.recognize)
    reference, ref_mask = CTCASR(config.speech).apply({"params": joint.asr_params(params)}, paired["features"],
                                                      paired["frame_mask"])
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(ref_mask))
    np.testing.assert_allclose(np.asarray(log_probs), np.asarray(reference), rtol=1e-6, atol=1e-6)


def test_text_and_speech_paths_share_one_frame_grid(tiny):
    config, model, _, paired, params = tiny
    outputs, aux = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))(params, paired)  # compiled: 3x
    np.testing.assert_array_equal(np.asarray(outputs["text_mask"]), np.asarray(outputs["encoder_mask"]))
    assert outputs["speech_hidden"].shape == outputs["text_hidden"].shape
    np.testing.assert_array_equal(np.asarray(aux["mel_durations"]).sum(-1), paired["frame_lengths"])
    assert outputs["mel_post"].shape == paired["mel"].shape
    # generation: static frame count, durations in mel frames, the mask never longer than the output
    mel, frame_mask, durations = jax.jit(lambda p, t, m: model.apply({"params": p}, t, m, 256, method="generate"))(
        params, paired["tokens"], paired["token_mask"])
    assert mel.shape == (4, 256, config.text.n_mels) and frame_mask.shape == (4, 256)
    assert (np.asarray(durations)[~paired["token_mask"]] == 0).all()
    assert (np.asarray(durations) % config.speech.subsampling == 0).all()


def test_synthesis_in_two_halves_equals_one_pass_and_keeps_every_frame(tiny):
    """`synthesize.synthesize_ids` over the joint model's `prepare`/`render` (rows regrouped by predicted length,
    frames padded to the ladder): each row's mel equals one `generate` pass at a long length, and has exactly
    `mel_frame_count` frames (the sum of its durations plus the frontend's centring offset)."""
    from mmspeech_jax.synthesize import synthesize_ids

    _, model, _, paired, params = tiny
    params = jax.tree_util.tree_map(np.array, params)
    head = params["variance_adaptor"]["duration_predictor"]["out"]
    head["kernel"] = np.zeros_like(head["kernel"])
    head["bias"] = np.full_like(head["bias"], np.log(2.0))  # 1 encoder frame (4 mel frames) per token
    lengths = paired["token_mask"].sum(-1)[:3]
    encoded = [paired["tokens"][i, : lengths[i]] for i in range(len(lengths))]
    prepare = jax.jit(lambda t, m: model.apply({"params": params}, t, m, method="prepare"))
    render = jax.jit(lambda h, m, d, n: model.apply({"params": params}, h, m, d, n, variance=True, method="render"),
                     static_argnums=3)
    rows = synthesize_ids(prepare, render, lambda d: joint.mel_frame_count(model.config, d), encoded, 2)
    whole, frame_mask, durations = jax.jit(lambda t, m: model.apply({"params": params}, t, m, 1024, method="generate"))(
        paired["tokens"][:3], paired["token_mask"][:3])
    for i, row in enumerate(rows):
        t = int(np.asarray(frame_mask[i]).sum())
        assert row["mel"].shape[0] == t == int(joint.mel_frame_count(model.config, row["durations"])) > 0
        np.testing.assert_array_equal(row["durations"], np.asarray(durations[i, : lengths[i]]))
        np.testing.assert_allclose(row["mel"], np.asarray(whole[i, :t]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("objective", ["asr", pytest.param("tts", marks=pytest.mark.slow), "mlm"])  # tts: ~1 min
def test_each_objective_reaches_only_its_parts(tiny, objective):
    """Each objective's gradient reaches its parts and none of the others'; the pretraining sum's terms are finite."""
    config, model, batch, _, params = tiny
    text_side = {"token_embedding", "text_encoder", "variance_adaptor"}
    expect = {  # objective: (loss config, parts that must get a gradient, parts that must not)
        "asr": (joint.loss_config("asr"), {"frontend", "encoder", "ctc_head"},
                text_side | {"decoder", "ssl_head", "mlm_head", "aligner"}),
        "tts": (joint.loss_config("tts"), text_side | {"encoder", "decoder", "postnet", "aligner"},
                {"frontend", "ctc_head", "ssl_head"}),
        "mlm": (joint.JointLossConfig(ssl=0, asr=0, tts=0, match=0), {"mlm_head", "mask_embedding"}, {"ctc_head"}),
    }
    losses, moved, still = expect[objective]
    loss_fn = joint.make_joint_loss_fn(model, losses)
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, batch, jax.random.PRNGKey(0), True, 0)[0]))(params)
    norm = {k: float(optax.tree.norm(v)) for k, v in grads.items()}
    assert all(norm[k] > 0 for k in moved), (objective, norm)
    assert all(norm[k] == 0 for k in still), (objective, norm)
    if objective == "tts":  # the slow variant also checks the whole pretraining sum
        _, parts = joint.make_joint_loss_fn(model, joint.loss_config("pretrain"))(params, batch,
                                                                                  jax.random.PRNGKey(0), False, 0)
        for key in ("ssl_ce", "mlm_ce", "ctc", "mel_l1", "forward_sum", "match_mse"):
            assert np.isfinite(float(parts[key])), key


@pytest.mark.slow
def test_micro_batches_and_bf16(tiny):
    config, model, batch, _, params = tiny
    tx = optax.sgd(0.1)
    rng = jax.random.key(0, impl="rbg")
    # micro-batches draw their own masks and noise: compare a deterministic objective (no ssl / mlm masking)
    det = joint.make_joint_loss_fn(model, joint.JointLossConfig(ssl=0, mlm=0))
    one, m1 = jax.jit(make_train_step(det, tx))(TrainState.create(params, tx), batch, rng)
    two, m2 = jax.jit(make_train_step(det, tx, micro_batches=2))(TrainState.create(params, tx), batch, rng)
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(two.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=2e-5)
    bf16 = joint.JointSpeechText(replace(config, speech=replace(config.speech, compute_dtype="bfloat16"),
                                         text=replace(config.text, compute_dtype="bfloat16")))
    state, metrics = jax.jit(make_train_step(joint.make_joint_loss_fn(bf16, joint.loss_config("pretrain")), tx))(
        TrainState.create(params, tx), batch, rng)
    assert np.isfinite(float(metrics["loss"])) and int(metrics["skipped"]) == 0
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(state.params))


def test_config_and_batch_errors_are_one_line(tiny, small_cache):
    config = tiny[0]
    with pytest.raises(ConfigError, match="must be equal"):
        joint.JointConfig(speech=config.speech, text=replace(config.text, dim=64))
    with pytest.raises(ConfigError, match="unknown joint training mode"):
        joint.loss_config("both")
    raw = next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=2, num_buckets=1), verbose=False))
    with pytest.raises(FeatureError):
        joint.prepare_joint_batch({"paired": {**raw, "mel": raw["mel"][..., :7]}}, config, small_cache.stats)
    assert joint.JointConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config


def test_strategy_masks_keep_the_text_side_trainable(tiny):
    params = tiny[4]
    frozen = trainable_mask(params, "freeze_bottom", 1)
    assert not any(jax.tree_util.tree_leaves(frozen["frontend"]))
    assert not any(jax.tree_util.tree_leaves(frozen["encoder"]["block_0"]))
    assert all(jax.tree_util.tree_leaves(frozen["text_encoder"])) and all(jax.tree_util.tree_leaves(frozen["decoder"]))
    adapters = trainable_mask(params, "adapters")
    assert not any(jax.tree_util.tree_leaves(adapters["encoder"]))  # no adapters in this config: all frozen
    assert all(jax.tree_util.tree_leaves(adapters["postnet"])) and all(jax.tree_util.tree_leaves(adapters["ctc_head"]))


# --- data streams ----------------------------------------------------------------------------------------------
def test_interleaved_batches_follow_the_schedule_and_resume_exactly():
    ids = [[1 + (i % 5)] * (3 + i % 7) for i in range(40)]
    make = lambda: InterleavedBatches({"a": TextBatches(ids, 4, (16,), seed=1), "b": TextBatches(ids, 2, (16,), seed=2)},
                                      (("a",), ("a", "b"), ("b",)))
    run = make()
    drawn = [next(run) for _ in range(9)]
    assert [tuple(sorted(d)) for d in drawn[:3]] == [("a",), ("a", "b"), ("b",)]
    resumed = make()
    for _ in range(4):
        next(resumed)
    state = json.loads(json.dumps(resumed.get_state()))
    again = make()
    again.set_state(state)
    for expected in drawn[4:]:
        got = next(again)
        assert set(got) == set(expected)
        for name in got:
            np.testing.assert_array_equal(got[name]["tokens"], expected[name]["tokens"])
    with pytest.raises(ConfigError):
        InterleavedBatches({"a": TextBatches(ids, 4)}, (("c",),))


def test_unpaired_text_is_train_split_only():
    from mmspeech_jax.data.english_text import evaluation_sentences
    from mmspeech_jax.data.synthetic_corpus import split_of
    from mmspeech_jax.data.unpaired_text import encode_sentences_with, natural_sentences_by_split
    from mmspeech_jax.text.tokenizer import CharacterTokenizer

    splits = natural_sentences_by_split(("train", "validation"))
    assert len(splits["train"]) > 40000 and not set(splits["train"]) & set(splits["validation"])
    assert all(split_of(s, 0.05, 0.05) == "train" for s in splits["train"][:500])
    natural = {CharacterTokenizer().normalize(s) for s in evaluation_sentences()}
    assert not natural & set(splits["train"])
    ids = encode_sentences_with(splits["train"][:50], "espeak", max_tokens=40)
    assert ids and all(0 < len(i) <= 40 for i in ids)


# --- the trainer's guarantees and the experiment (slow: each compiles the joint steps) --------------------------
@pytest.mark.slow
def test_one_pretraining_step_on_a_mesh_equals_one_device(tiny):
    from mmspeech_jax.train.sharding import MeshConfig, make_mesh, make_sharded_steps, shard_batch, state_shardings

    _, model, batch, _, params = tiny
    loss_fn = joint.make_joint_loss_fn(model, joint.loss_config("pretrain"))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.5))
    rng = jax.random.key(0, impl="rbg")
    reference, ref_metrics = jax.jit(make_train_step(loss_fn, tx))(TrainState.create(params, tx), batch, rng)
    batch8 = {k: np.concatenate([v, v]) for k, v in batch.items()}  # 8 rows: one per device
    reference8, ref8 = jax.jit(make_train_step(loss_fn, tx))(TrainState.create(params, tx), batch8, rng)
    for data, fsdp in ((8, 1), (2, 4)):
        mesh = make_mesh(MeshConfig(data=data, fsdp=fsdp))
        state = TrainState.create(params, tx)
        sharding = state_shardings(state, mesh)
        step, _, _ = make_sharded_steps(loss_fn, tx, sharding, mesh)
        new, metrics = step(jax.device_put(state, sharding), shard_batch(batch8, mesh), rng)
        np.testing.assert_allclose(float(metrics["loss"]), float(ref8["loss"]), rtol=1e-4)
        for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(new.params)),
                        jax.tree_util.tree_leaves(jax.device_get(reference8.params))):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert np.isfinite(float(ref_metrics["loss"]))


@pytest.mark.slow
def test_pretraining_resumes_exactly_and_compiles_once_per_stream(tiny, small_cache, tmp_path):
    from mmspeech_jax.train.trainer import TrainerConfig, fit

    config, model, _, _, params = tiny
    pipeline = PipelineConfig(batch_size=4, num_buckets=1, num_epochs=None, seed=0)
    ids = [list(small_cache[int(i)]["tokens"]) for i in small_cache.indices("train")]

    def streams():
        return InterleavedBatches({"speech": make_batch_iterator(small_cache, "train", pipeline, verbose=False),
                                   "text": TextBatches(ids, 4, (128,), seed=0),
                                   "paired": make_batch_iterator(small_cache, "train", pipeline, verbose=False)},
                                  (("paired",), ("speech",), ("text",)))

    def prepare(parts):
        parts = dict(parts)
        if "text" in parts:
            tokens = parts["text"]["tokens"][:, 1:]
            parts["text"] = {"tokens": tokens, "token_mask": tokens > 0}
        return joint.prepare_joint_batch(parts, config, small_cache.stats)

    loss_fn = joint.make_joint_loss_fn(model, joint.loss_config("pretrain", binarization_start=3))
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3, warmup_steps=2, total_steps=12))
    run = lambda workdir, steps: fit(workdir, params, tx, loss_fn, streams(),
                                     TrainerConfig(steps=steps, checkpoint_every=3, eval_every=100, progress=False),
                                     prepare=prepare)
    whole = run(tmp_path / "whole", 12)
    assert whole.compilations == 3  # one step shape per stream after warm-up, none for new steps
    run(tmp_path / "split", 6)
    resumed = run(tmp_path / "split", 12)
    for a, b in zip(jax.tree_util.tree_leaves(whole.state.params), jax.tree_util.tree_leaves(resumed.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_experiment_then_cli_transcribe_synthesize_and_export(tmp_path, tiny_run_cache, tiny_asr_workdir):
    env = {**os.environ, "MMSPEECH_CACHE_DIR": str(tiny_run_cache), "PYTHONPATH": str(ROOT)}
    workdir = tmp_path / "joint"
    cmd = [sys.executable, "-m", "experiments.joint_speech_text", "--preset", "tiny", "--pretrain_steps", "6",
           "--pretrain_eval_every", "3", "--steps", "4", "--eval_every", "4", "--corpus_size", "32", "--batch_size",
           "4", "--num_buckets", "1", "--workdir", str(workdir), "--no_progress", "--text_sentences", "200",
           "--natural_eval_utterances", "3", "--intelligibility_sentences", "2", "--validation_utterances", "1",
           "--judge_asr", str(tiny_asr_workdir), "--rows", "scratch_asr,bestrq_asr,joint_tts,joint_asr_tts"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((workdir / "report.json").read_text())
    assert set(report["rows"]) == {"scratch_asr", "bestrq_asr", "joint_tts", "joint_asr_tts"}
    both = report["rows"]["joint_asr_tts"]
    for key in ("test_cer", "natural_cer", "test_mel_l1", "test_synthesized_cer", "natural_synthesized_cer"):
        assert 0 <= both[key] < 10, key
    assert report["pretraining"]["stages"]["joint_pretrain"]["curve"]  # validation terms over pretraining
    assert report["pretraining"]["stages"]["ctc_warmup"]["steps"] == 4  # --steps: as long as a fine-tune
    assert report["pretraining"]["validation_utterances"] == 1
    assert "| joint_asr_tts |" in report["table"]

    wav = tmp_path / "speech"
    mm = [sys.executable, "-m", "mmspeech_jax.cli"]
    synth = subprocess.run(mm + ["synthesize", "--workdir", str(workdir / "joint_asr_tts"), "--text",
                                 "Please bring the blue folder.", "--out", str(tmp_path / "a.wav")],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert synth.returncode == 0, synth.stderr[-2000:]
    heard = subprocess.run(mm + ["transcribe", "--workdir", str(workdir / "joint_asr_tts"), str(tmp_path / "a.wav")],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert heard.returncode == 0, heard.stderr[-2000:]
    refused = subprocess.run(mm + ["transcribe", "--workdir", str(workdir / "joint_tts"), str(tmp_path / "a.wav")],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "not trained for recognition" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    exported = subprocess.run(mm + ["export", "--workdir", str(workdir / "joint_asr_tts"), "--out", str(wav)],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-2000:]
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber

    from_workdir = Synthesizer.from_workdir(workdir / "joint_asr_tts").mel("Good morning.")
    from_export = Synthesizer.from_export(wav).mel("Good morning.")
    np.testing.assert_allclose(from_export, from_workdir, rtol=1e-5, atol=1e-5)
    audio = np.random.default_rng(0).normal(size=22050).astype(np.float32) * 0.1
    assert Transcriber.from_export(wav).transcribe([(audio, 22050)])[0]["text"] == \
        Transcriber.from_workdir(workdir / "joint_asr_tts").transcribe([(audio, 22050)])[0]["text"]


def _tree(argv):
    from experiments.joint_speech_text import parse_args

    return parse_args(["--workdir", "/nonexistent/joint", *argv])[1]


def test_ctc_warmup_trains_like_the_asr_rows_and_zero_turns_it_off():
    tree = _tree(["--steps", "30"])
    # The warm-up's schedule is the fine-tuning rows' own: one compiled step program for both.
    assert tree.ctc_warmup_optimizer == tree.optimizer
    assert tree.ctc_warmup_trainer.steps == tree.trainer.steps == 30
    assert _tree(["--ctc_warmup_steps", "12"]).ctc_warmup_optimizer.total_steps == 12
    off = _tree(["--ctc_warmup_steps", "0"])
    assert off.ctc_warmup_optimizer is None and off.ctc_warmup_trainer is None
    with pytest.raises(ConfigError, match="set both"):
        replace(off, ctc_warmup_trainer=tree.ctc_warmup_trainer).check()


@pytest.mark.parametrize("rows, warmup, expected", [
    ("scratch_asr,joint_asr,bestrq_asr", "8", ["ctc_warmup", "joint_pretrain", "bestrq_pretrain"]),
    ("scratch_asr,bestrq_asr", "8", ["ctc_warmup", "bestrq_pretrain"]),
    ("scratch_asr,scratch_tts", "8", []),  # no pretrained row: nothing to warm up
    ("joint_tts,bestrq_asr", "0", ["joint_pretrain", "bestrq_pretrain"]),
])
def test_pretraining_starts_from_the_ctc_warmup(rows, warmup, expected):
    from experiments.joint_speech_text import pretrain

    tree = _tree(["--rows", rows, "--ctc_warmup_steps", warmup, "--steps", "9"])
    fresh = {"encoder": np.zeros(3), "decoder": np.zeros(2)}
    calls = []

    def train(name, params, mode, optimizer, trainer, mask):  # a stand-in stage: adds its call number
        calls.append((name, mode, optimizer, trainer, mask))
        return jax.tree_util.tree_map(lambda x: x + len(calls), params), {"name": name}

    pretrained, stages = pretrain(tree, fresh, train)
    assert [c[0] for c in calls] == list(stages) == expected
    warm = 1.0 if expected[:1] == ["ctc_warmup"] else 0.0  # the warm-up (call 1) added 1 to every leaf
    for index, (name, mode, optimizer, trainer, mask) in enumerate(calls, start=1):
        if name == "ctc_warmup":
            assert mode == "asr" and optimizer.total_steps == trainer.steps == 8
            assert all(jax.tree_util.tree_leaves(mask))  # the full-strategy rows' mask: every leaf trains
            continue
        source = name.split("_")[0]
        assert mode == {"joint": "pretrain", "bestrq": "speech_ssl"}[source]
        assert (optimizer, trainer, mask) == (tree.pretrain_optimizer, tree.pretrain_trainer, None)
        np.testing.assert_array_equal(pretrained[source]["encoder"], np.full(3, warm + index))
