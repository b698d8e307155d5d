"""CTC ASR end to end: the model on pipeline batches, the experiment's workdir, `mmspeech transcribe`,
`mmspeech evaluate-tts`, and (slow) a model that learns to transcribe."""

import json

import jax
import numpy as np
import pytest
import soundfile as sf

from experiments.asr_recipe import LENGTH_BONUSES, LM_WEIGHTS
from mmspeech_jax.cli import main as cli
from mmspeech_jax.data.english_text import evaluation_sentences
from mmspeech_jax.text.normalize import normalize_text
from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.evaluate.asr import asr_normalize, error_rates
from mmspeech_jax.layers.subsampling import subsampled_length
from mmspeech_jax.models.ctc_asr import CTCASR, asr_targets, model_inputs, preset
from mmspeech_jax.text.symbols import character_table
from mmspeech_jax.train.init import init_params


def test_targets_drop_clause_marks_without_double_spaces():
    table = character_table()
    text = "well, it is. ok?"
    ids = np.asarray([table.ids(text) + [0] * 3])
    out, mask = asr_targets(ids, ids > 0)
    assert "".join(table.lookup(out[0][mask[0]])) == "well it is ok"


def test_error_rates_against_hand_counts():
    # "the cat" vs "the bat": 1 substitution / 7 characters; 1 of 2 words.
    rates = error_rates(["The cat."], ["the bat"])
    assert rates["cer"] == pytest.approx(1 / 7) and rates["wer"] == pytest.approx(1 / 2)
    assert asr_normalize("Hello, World!") == "hello world"
    with pytest.raises(ValueError):
        error_rates(["a"], [])
    # a long recording's transcript (past the normalizer's 1 000-character guard for synthesis) is scored, not
    # dropped: one substitution in 200 x "the cat" (1 599 characters normalized)
    long = " ".join(["The cat."] * 200)
    rates = error_rates([long], [long.replace("cat", "bat", 1)])
    assert rates["cer"] == pytest.approx(1 / 1599) and rates["wer"] == pytest.approx(1 / 400)


def test_model_on_a_pipeline_batch_and_padding_invariance(small_cache):
    batch = next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, num_buckets=1), verbose=False))
    inputs = model_inputs(batch, small_cache.stats)
    model = CTCASR(preset("tiny", n_mels=small_cache.n_mels))
    params = {"params": init_params(model, jax.random.PRNGKey(0), inputs["features"], inputs["frame_mask"])}
    apply = jax.jit(model.apply)  # compiled (op by op: slower than compiling both shapes)
    log_probs, mask = apply(params, inputs["features"], inputs["frame_mask"])
    assert log_probs.shape[:2] == mask.shape and log_probs.shape[2] == len(character_table())
    np.testing.assert_allclose(np.exp(np.asarray(log_probs)).sum(-1), 1.0, rtol=1e-5)
    # Row 0 alone, unpadded, gives the same log-probs on its valid frames.
    t = int(batch["frame_lengths"][0])
    alone, alone_mask = apply(params, inputs["features"][:1, :t], inputs["frame_mask"][:1, :t])
    n = int(alone_mask.sum())
    assert n == int(mask[0].sum())
    np.testing.assert_allclose(np.asarray(log_probs)[0, :n], np.asarray(alone)[0, :n], atol=1e-4)


def test_experiment_workdir_and_report(tiny_asr_workdir):
    for name in ("config.json", "symbols.json", "metrics.jsonl", "report.json", "checkpoints", "tensorboard"):
        assert (tiny_asr_workdir / name).exists(), name
    report = json.loads((tiny_asr_workdir / "report.json").read_text())
    for split in ("validation", "test", "natural"):
        for method in ("greedy", "beam", "lm"):
            if (split, method) == ("validation", "lm"):  # the weights were chosen there: no fused figure
                assert "validation_cer_lm" not in report
                continue
            assert 0.0 <= report[f"{split}_cer_{method}"] and np.isfinite(report[f"{split}_wer_{method}"])
    assert report["natural_utterances"] == 6  # --natural_eval_utterances 6: the set's first six sentences
    first_six = {normalize_text(t) for t in evaluation_sentences()[:6]}
    assert {e["reference"] for e in report["natural_examples"]} <= first_six
    assert report["lm_weight"] in LM_WEIGHTS and report["length_bonus"] in LENGTH_BONUSES
    assert report["steps"] == 4 and report["compilations"] <= report["bucket_shapes"]
    plots = sorted((tiny_asr_workdir / "plots").glob("test_*.png"))  # --num_samples 3 (the default)
    assert len(plots) == min(3, report["test_utterances"])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)


def test_tensorboard_shows_the_validation_transcripts_at_each_evaluation(tiny_asr_workdir):
    """The on_eval hook at step 4 (the only evaluation, with the final parameters) shows the first 3 validation
    utterances; its transcripts agree with what the final evaluation reports for them."""
    from tests.test_summaries import decoded_image, read_summaries

    report = json.loads((tiny_asr_workdir / "report.json").read_text())
    found = read_summaries(tiny_asr_workdir / "tensorboard")
    shown = {key: v for key, v in found.items() if key[0].startswith("validation/utterance_")}
    texts = [v.tensor.string_val[0].decode() for (tag, _), v in shown.items() if tag.endswith("/transcript/text_summary")]
    images = [decoded_image(v) for (tag, _), v in shown.items() if tag.endswith("/ctc")]
    assert {step for _, step in shown} == {4} and len(shown) == len(texts) + len(images)
    assert len(texts) == len(images) == min(3, report["validation_utterances"])
    expected = {f"reference: {e['reference']}\n\ngreedy: {e['greedy']}" for e in report["validation_examples"]}
    assert set(texts) == expected
    assert all(image.shape[0] > 100 and image.shape[1] > 400 and image.std() > 10 for image in images)
    # The natural evaluation set's greedy CER at each evaluation: in TensorBoard and in the report's curve; at the
    # last evaluation (the final parameters) it is the report's own figure.
    natural = found[("validation/natural_cer_greedy", 4)].simple_value
    assert [point["step"] for point in report["natural_cer_curve"]] == [4]
    assert natural == pytest.approx(report["natural_cer_curve"][0]["natural_cer_greedy"], rel=1e-6)
    assert natural == pytest.approx(report["natural_cer_greedy"], rel=1e-6)


def test_ctc_posteriogram_shows_blank_reference_and_chosen_symbols():
    from mmspeech_jax.evaluate.plots import ctc_posteriogram

    probs = np.full((4, 6), 0.02)
    probs[[0, 1, 2, 3], [0, 4, 4, 0]] = 0.9  # frames choose blank, 4, 4, blank
    probs /= probs.sum(axis=1, keepdims=True)
    shown, drawn = ctc_posteriogram(np.log(probs), reference_ids=[2, 4, 2])
    np.testing.assert_array_equal(shown, [0, 2, 4])  # blank, the reference's 2 and 4, the chosen 4; not 1, 3, 5
    np.testing.assert_allclose(drawn, probs[:, [0, 2, 4]].T, rtol=1e-12)


def test_transcribe_any_format_and_bad_files(tiny_asr_workdir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, (rng.normal(size=(44100, 2)) * 3000).astype(np.int16), 44100, subtype="PCM_16")
    flac = tmp_path / "float16k.flac"
    sf.write(flac, rng.normal(size=16000).astype(np.float32) * 0.1, 16000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    out = tmp_path / "results.jsonl"
    code = cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(stereo), str(broken), str(flac),
                "--out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line and not line.startswith("reading ")]
    assert len(errors) == 1 and "broken.wav" in errors[0]
    assert f"reading {tiny_asr_workdir}: checkpoint step 4" in captured.err  # says which step it reads
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(stereo), str(broken), str(flac)]
    assert "text" in rows[0] and "error" in rows[1] and "text" in rows[2]
    # An existing --out is never overwritten, and a bad beam width is refused, each before the model loads.
    assert cli(["transcribe", "--workdir", str(tmp_path / "none"), str(flac), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and len(out.read_text().splitlines()) == 3
    assert cli(["transcribe", "--workdir", str(tmp_path / "none"), str(flac), "--beam-width", "0"]) == 2
    assert "--beam-width" in capsys.readouterr().err
    # Features and waveforms handed to the Python API directly: one-line errors, not a traceback from inside jit.
    from mmspeech_jax.errors import FeatureError, MMSpeechError
    from mmspeech_jax.transcribe import Transcriber

    asr = Transcriber.from_workdir(tiny_asr_workdir)
    past_two_hours = np.broadcast_to(np.zeros((1, 80), np.float32), (700_000, 80))  # a view: no memory
    for mels, message in [([], "no log-mels"), ([np.zeros((50, 40), np.float32)], "log-mel 0: expected"),
                          ([np.zeros((50, 80)), np.full((9, 80), np.nan)], "log-mel 1: holds NaN"),
                          ([past_two_hours], "more than the 620157 accepted")]:
        with pytest.raises(FeatureError, match=message):
            asr.transcribe_features(mels)
    with pytest.raises(FeatureError, match="more than"):  # one pass takes 60 s; `transcribe` runs longer in windows
        asr.log_probs([np.zeros((6000, 80), np.float32)])
    with pytest.raises(MMSpeechError, match="mono waveform"):
        asr.mel_from_audio(np.zeros((2, 100), np.float32), 16000)
    with pytest.raises(FeatureError, match="NaN"):
        asr.mel_from_audio(np.full(1600, np.nan, np.float32), 16000)
    # The beam search path.
    beam = tmp_path / "beam.jsonl"
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(flac), "--beam-width", "4",
                "--out", str(beam)]) == 0
    assert [sorted(json.loads(line)) for line in beam.read_text().splitlines()] == [["path", "text"]]
    # A TTS workdir is not an ASR workdir.
    assert cli(["transcribe", "--workdir", str(tmp_path), str(flac)]) == 2


def test_transcribe_many_groups_by_length_and_changes_no_transcript(tiny_asr_workdir):
    """`transcribe_many` and `log_probs_many` run mels of similar length together (padded rows and frames dropped):
    each mel's log-probabilities equal its own unpadded pass (atol 1e-4) and its text is the same; with the CLI's
    shape cost it runs no more shapes than without, and shapes already run cost nothing the next time. The default
    (shape cost halved per call made) plans a first call as the CLI does and, many calls later, as least padding
    does."""
    from mmspeech_jax.synthesize import SHAPE_COST_FRAMES
    from mmspeech_jax.transcribe import Transcriber

    rng = np.random.default_rng(0)
    mels = [rng.standard_normal((n, 80)).astype(np.float32) for n in (90, 600, 130, 300, 520, 700, 40)]
    alone = [Transcriber.from_workdir(tiny_asr_workdir).log_probs([m]) for m in mels]
    plain, first_call = Transcriber.from_workdir(tiny_asr_workdir), Transcriber.from_workdir(tiny_asr_workdir)
    plain.shape_cost, first_call.shape_cost = 0, SHAPE_COST_FRAMES
    default = Transcriber.from_workdir(tiny_asr_workdir)
    assert default.shape_cost is None and default.calls_made == 0
    default_rows = default.transcribe_many(mels, 3)
    rows, rows_first = plain.transcribe_many(mels, 3), first_call.transcribe_many(mels, 3)
    assert default._compiled == first_call._compiled and default.calls_made == 1
    assert [row["text"] for row in default_rows] == [row["text"] for row in rows_first]
    lengths = [m.shape[0] for m in mels]
    assert default.plan(lengths, 3) != plain.plan(lengths, 3)  # these lengths: few shapes differ from least padding
    default.calls_made = SHAPE_COST_FRAMES  # a shape now costs 0 frames
    assert default.plan(lengths, 3) == plain.plan(lengths, 3)
    for m, (log_probs, lengths), row, row_first in zip(mels, alone, rows, rows_first):
        padded, padded_lengths = plain.log_probs([m, mels[0]], frames=1024, rows=4)
        assert padded.shape[0] == 2 and padded_lengths[0] == lengths[0]
        np.testing.assert_allclose(padded[0, : lengths[0]], log_probs[0, : lengths[0]], atol=1e-4)
        assert row["text"] == row_first["text"] == plain.transcribe_mels([m])[0]["text"]
    for m, (log_probs, lengths), many in zip(mels, alone, plain.log_probs_many(mels, 3)):  # unpadded, in order
        assert many.shape == (lengths[0], log_probs.shape[-1])
        np.testing.assert_allclose(many, log_probs[0, : lengths[0]], atol=1e-4)
    # Each row lands at its own mel's place (a stand-in decoder that names the length of the log-probs it gets)
    tagged = Transcriber.from_workdir(tiny_asr_workdir)
    tagged._decoded = lambda log_probs, lengths, timestamps: [{"text": str(int(n))} for n in lengths]
    expected = [str(int(subsampled_length(len(m), tagged.model.config.subsampling))) for m in mels]
    assert [row["text"] for row in tagged.transcribe_many(mels, 3)] == expected and len(set(expected)) == len(mels)
    assert len(first_call._compiled) <= len(plain._compiled)
    shapes = set(first_call._compiled)
    first_call.transcribe_many(mels[::-1], 3)
    assert first_call._compiled == shapes


def test_transcribe_plan_covers_each_mel_once_within_its_window(tiny_asr_workdir):
    """`Transcriber.plan`: every index exactly once, groups of at most `batch_size` mels drawn from one window of
    16 x batch_size, rows a batch size of `batch_sizes` holding the group, frames a multiple of FRAME_QUANTUM that
    holds the group's longest mel; a batch size below 1 is a one-line error."""
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.synthesize import batch_sizes
    from mmspeech_jax.transcribe import FRAME_QUANTUM, Transcriber

    asr = Transcriber.from_workdir(tiny_asr_workdir)
    lengths = list(np.random.default_rng(2).integers(1, 1400, 70))
    for batch_size in (1, 3, 4):
        groups = asr.plan(lengths, batch_size)
        assert sorted(k for group, _, _ in groups for k in group) == list(range(len(lengths)))
        for group, rows, frames in groups:
            assert 1 <= len(group) <= rows and rows in batch_sizes(batch_size)
            assert len({k // (16 * batch_size) for k in group}) == 1
            assert frames % FRAME_QUANTUM == 0 and frames >= max(lengths[k] for k in group)
    with pytest.raises(ConfigError, match="batch_size"):
        asr.plan(lengths, 0)


def test_transcribe_with_a_language_model(tiny_asr_workdir, tiny_lm_workdir, tmp_path, capsys):
    """--lm fuses the LM with the weights the ASR report chose; explicit weights win; the transcript is the
    fused beam search's (checked against decoding the same log-probs directly)."""
    from mmspeech_jax.decoding.ctc import prefix_beam_search
    from mmspeech_jax.transcribe import Transcriber, load_lm_scorer

    audio = np.random.default_rng(1).normal(size=16000).astype(np.float32) * 0.1
    path = tmp_path / "noise.wav"
    sf.write(path, audio, 16000)
    out = tmp_path / "lm.jsonl"
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--beam-width", "3",
                "--lm", str(tiny_lm_workdir), "--out", str(out)]) == 0
    report = json.loads((tiny_asr_workdir / "report.json").read_text())
    assert f"lm_weight {report['lm_weight']}, length_bonus {report['length_bonus']}" in capsys.readouterr().err
    asr = Transcriber.from_workdir(tiny_asr_workdir, "beam", 3, lm_workdir=tiny_lm_workdir, lm_weight=2.0,
                                   length_bonus=-1.0)
    assert (asr.lm_weight, asr.length_bonus) == (2.0, -1.0)
    log_probs, lengths = asr.log_probs([asr.mel(path)])
    ids = prefix_beam_search(log_probs[0], lengths[0], 3, lm=load_lm_scorer(tiny_lm_workdir), lm_weight=2.0,
                             length_bonus=-1.0)
    assert asr.transcribe_features([asr.mel(path)]) == ["".join(asr.table.lookup(ids)).strip()]
    # --lm needs a beam; an ASR workdir is not an LM workdir: one line each, nothing written.
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--lm", str(tiny_lm_workdir)]) == 2
    assert "--beam-width" in capsys.readouterr().err
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--beam-width", "2",
                "--lm", str(tiny_asr_workdir)]) == 2
    assert "not a language-model workdir" in capsys.readouterr().err


def test_evaluate_tts_closed_loop(tiny_tts_workdir, tiny_asr_workdir, tiny_run_cache, tmp_path, capsys, monkeypatch):
    from mmspeech_jax.data import CorpusConfig, embedded_feature_cache

    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tiny_run_cache))
    cache = embedded_feature_cache(CorpusConfig(num_utterances=32), progress=False)
    corpus_line = cache.texts[int(cache.indices("test")[0])]
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{corpus_line}\nA sentence of our own.\n@@@ \u2603\n")
    out = tmp_path / "report.json"
    assert cli(["evaluate-tts", "--tts", str(tiny_tts_workdir), "--asr", str(tiny_asr_workdir),
                "--text-file", str(lines), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["synthesized"]["utterances"] == 2
    assert report["ground_truth"]["utterances"] == 1
    assert report["ground_truth_vocoded"]["utterances"] == 1 and "ground_truth_vocoded_transcript" in report["lines"][0]
    assert "ground_truth_transcript" in report["lines"][0] and "error" in report["lines"][2]
    assert "\u2603" in capsys.readouterr().err or "error" in report["lines"][2]


def test_tts_experiment_closed_loop_on_the_natural_set(tiny_tts_workdir, tiny_asr_workdir, tiny_run_cache,
                                                       monkeypatch):
    """ljspeech_tts --asr_workdir's natural-set loop: every sentence synthesized and its true recording
    transcribed; cer_ratio is synthesized over true-recording CER."""
    from experiments.ljspeech_tts import intelligibility
    from mmspeech_jax.data import natural_eval_feature_cache

    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tiny_run_cache))
    natural = natural_eval_feature_cache(3)
    result = intelligibility(tiny_tts_workdir, tiny_asr_workdir, natural, natural.indices("test"))
    assert result["synthesized"]["utterances"] == result["ground_truth"]["utterances"] == 3
    assert {e["text"] for e in result["examples"]} == {natural.texts[i] for i in natural.indices("test")}
    if result["ground_truth"]["cer"] > 0:
        assert result["cer_ratio"] == pytest.approx(result["synthesized"]["cer"] / result["ground_truth"]["cer"])


@pytest.mark.slow  # ~1-2 min: pretraining + four fine-tuning runs
def test_ssl_finetune_experiment_table(tiny_run_cache, tmp_path, monkeypatch):
    import experiments.wiring
    from experiments.ssl_finetune import main as ssl_main

    meshes = []

    def recording(fit):
        def recording_fit(*args, mesh=None, **kwargs):
            meshes.append(None if mesh is None else dict(mesh.shape))
            return fit(*args, mesh=mesh, **kwargs)
        return recording_fit

    # pretraining and fine-tuning both go through the shared wiring's fit
    monkeypatch.setattr(experiments.wiring, "fit", recording(experiments.wiring.fit))
    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tiny_run_cache))
    report = ssl_main(["--preset", "tiny", "--pretrain_steps", "2", "--steps", "2", "--corpus_size", "32",
                       "--batch_size", "8", "--num_buckets", "1", "--eval_every", "2", "--checkpoint_every", "2",
                       "--strategies", "scratch,adapters,lora", "--workdir", str(tmp_path / "ssl"), "--no_progress",
                       "--mesh", "4x2"])  # the 8 simulated devices
    assert meshes == [{"data": 4, "fsdp": 2}] * 4, meshes  # --mesh reaches pretraining and every fine-tuning run
    rows = {r["strategy"]: r for r in report["rows"]}
    assert set(rows) == {"scratch", "adapters", "lora"}
    assert rows["adapters"]["trainable_params"] < rows["scratch"]["trainable_params"]
    assert rows["lora"]["trainable_params"] < rows["lora"]["total_params"]
    assert all(r["steps"] == 2 and np.isfinite(r["test_cer"]) for r in rows.values())
    assert "| strategy |" in report["table"] and report["pretrain"]["steps"] == 2
    # Each fine-tuned run is an ASR workdir the transcriber reads.
    record = json.loads((tmp_path / "ssl" / "lora" / "config.json").read_text())
    assert record["task"] == "asr" and record["model"]["lora_rank"] == 8 and record["strategy"] == "lora"


@pytest.mark.slow
def test_ctc_model_learns_to_transcribe_a_few_utterances(small_cache):
    """Overfit 8 utterances: greedy CER on them must fall well below chance (the whole stack can learn)."""
    import optax

    from mmspeech_jax.decoding.ctc import decode_batch
    from mmspeech_jax.models.ctc_asr import make_ctc_loss_fn

    rows = small_cache.indices("train")[:8]
    batch = next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=8, num_buckets=1, shuffle=False),
                                     positions=rows, verbose=False))
    inputs = model_inputs(batch, small_cache.stats)
    model = CTCASR(preset("tiny", dim=64, heads=4, ffn_dim=128, layers=2, subsampling=2, spec_augment=None,
                          dropout=0.0, attention_dropout=0.0))
    params = init_params(model, jax.random.PRNGKey(0), inputs["features"], inputs["frame_mask"])
    loss_fn = make_ctc_loss_fn(model)
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt):
        (loss, _), g = jax.value_and_grad(lambda p: loss_fn(p, inputs, jax.random.key(0), True, 0),
                                          has_aux=True)(params)
        updates, opt = tx.update(g, opt)
        return optax.apply_updates(params, updates), opt, loss

    for _ in range(400):
        params, opt, loss = step(params, opt)
    log_probs, mask = model.apply({"params": params}, inputs["features"], inputs["frame_mask"])
    table = character_table()
    hyps = ["".join(table.lookup(ids)) for ids in decode_batch(np.asarray(log_probs), np.asarray(mask).sum(-1))]
    refs = [small_cache.texts[int(i)] for i in batch["index"]]
    assert error_rates(refs, hyps)["cer"] < 0.2, (refs[:2], hyps[:2], float(loss))


@pytest.mark.slow  # ~1-2 min on 2 cores: `make test-slow` (tests/test_resume.py keeps resume in the fast suite)
def test_asr_run_resumes_from_its_checkpoint(tiny_asr_workdir, tiny_run_cache, tiny_run_args, tmp_path, monkeypatch,
                                             capsys):
    import shutil

    from experiments.ljspeech_asr import main as train

    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tiny_run_cache))
    copy = tmp_path / "w"
    shutil.copytree(tiny_asr_workdir, copy)
    args = tiny_run_args
    args[args.index("--steps") + 1] = "6"
    report = train(args + ["--workdir", str(copy)])
    assert "resuming from step 4" in capsys.readouterr().out
    assert report["steps"] == 6
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6


def test_batch_check_names_what_does_not_fit():
    """A hand-built batch: mel channels the corpus statistics do not have, masks of another length, ids outside the
    character table are refused in one line, before NumPy broadcasting or an IndexError would be."""
    from mmspeech_jax.errors import FeatureError
    from mmspeech_jax.models.ctc_asr import check_batch
    from mmspeech_jax.text.symbols import character_table

    stats = {"mel_mean": np.zeros(80).tolist(), "mel_std": np.ones(80).tolist()}
    ids = np.asarray([character_table().ids("a b"), [character_table().id("a"), 0, 0]], np.int32)
    good = {"mel": np.zeros((2, 20, 80), np.float32), "frame_mask": np.ones((2, 20), bool), "transcript_ids": ids,
            "transcript_mask": ids > 0, "example_mask": np.ones(2, bool)}
    assert model_inputs(good, stats)["labels"].shape == (2, 3)

    def refused(change, message):
        batch = {k: np.array(v) for k, v in good.items()}
        change(batch)
        with pytest.raises(FeatureError) as info:
            check_batch(batch, stats)
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)

    refused(lambda b: b.__setitem__("mel", np.zeros((2, 20, 40), np.float32)),
            "'mel' has shape (2, 20, 40), expected (B=2, T=20, M=80)")
    refused(lambda b: b.__setitem__("frame_mask", np.ones((2, 19), bool)), "'frame_mask' has shape (2, 19), "
                                                                           "expected (B=2, T=20)")
    refused(lambda b: b["transcript_ids"].__setitem__((1, 0), 99), "row 1: transcript id 99 at position 0")
    refused(lambda b: b.pop("example_mask"), "ASR batch lacks example_mask")
    with pytest.raises(FeatureError, match="'mel' has shape"):
        model_inputs({**good, "mel": np.zeros((2, 20, 40), np.float32)}, stats)  # the trainer's path checks too


def test_tts_experiment_records_the_natural_cer_curve(tiny_asr_workdir, tiny_run_cache, tmp_path, monkeypatch):
    """ljspeech_tts --asr_workdir --natural_curve_sentences N: after each evaluation the first N natural sentences
    are synthesized with the current parameters and transcribed; the curve's last point equals the same closed loop
    run independently on the finished workdir (Synthesizer.from_workdir, Transcriber.from_workdir), and TensorBoard
    holds the same value."""
    from experiments.ljspeech_tts import main as train
    from mmspeech_jax.data.english_text import evaluation_sentences
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber
    from tests.conftest import TINY_RUN_ARGS
    from tests.test_summaries import read_summaries

    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tiny_run_cache))
    workdir = tmp_path / "tts"
    report = train(TINY_RUN_ARGS + ["--workdir", str(workdir), "--num_samples", "0", "--asr_workdir",
                                    str(tiny_asr_workdir), "--intelligibility_sentences", "1",
                                    "--natural_eval_utterances", "0", "--natural_curve_sentences", "2"])
    curve = report["natural_cer_curve"]
    assert [point["step"] for point in curve] == [4]  # --eval_every 4 --steps 4
    expected = evaluate_tts(Synthesizer.from_workdir(workdir), Transcriber.from_workdir(tiny_asr_workdir),
                            list(evaluation_sentences()[:2]))
    assert curve[0]["natural_synthesized_cer"] == pytest.approx(expected["synthesized"]["cer"], abs=1e-9)
    assert curve[0]["unsynthesizable"] == sum("error" in line for line in expected["lines"])
    logged = read_summaries(workdir / "tensorboard")[("validation/natural_synthesized_cer", 4)]
    assert logged.simple_value == pytest.approx(curve[0]["natural_synthesized_cer"], rel=1e-6)


def test_asr_and_lm_exports_stand_alone(tiny_asr_workdir, tiny_lm_workdir, tmp_path, capsys):
    """An ASR export carries the feature statistics its input normalization needs (Transcriber on an export used
    to fail with `TypeError: 'NoneType' object is not subscriptable`): from_export gives the workdir's
    log-probabilities, and beam search fused with an LM export gives the transcripts of the fused workdirs; the CLI
    takes both exports."""
    from mmspeech_jax.transcribe import Transcriber

    asr_out, lm_out = tmp_path / "asr", tmp_path / "lm"
    assert cli(["export", "--workdir", str(tiny_asr_workdir), "--out", str(asr_out)]) == 0
    assert cli(["export", "--workdir", str(tiny_lm_workdir), "--out", str(lm_out)]) == 0
    mel = np.random.default_rng(3).normal(-4.0, 1.5, (180, 80)).astype(np.float32)
    trained = Transcriber.from_workdir(tiny_asr_workdir)
    exported = Transcriber.from_export(asr_out)
    np.testing.assert_allclose(exported.log_probs([mel])[0], trained.log_probs([mel])[0], atol=1e-5)
    fused = dict(method="beam", beam_width=2, lm_weight=0.5, length_bonus=0.75)
    expected = Transcriber.from_workdir(tiny_asr_workdir, lm_workdir=tiny_lm_workdir, **fused).transcribe_features([mel])
    assert Transcriber.from_export(asr_out, lm_workdir=lm_out, **fused).transcribe_features([mel]) == expected
    wav = tmp_path / "a.wav"
    sf.write(wav, np.random.default_rng(0).normal(size=22050).astype(np.float32) * 0.1, 22050)
    capsys.readouterr()
    assert cli(["transcribe", "--workdir", str(asr_out), str(wav), "--lm", str(lm_out), "--beam-width", "2",
                "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "text" in json.loads((tmp_path / "r.jsonl").read_text())


def test_a_runs_config_json_reads_back_into_the_tree_it_ran(tiny_tts_workdir, tiny_asr_workdir, tiny_lm_workdir):
    """config.json of the tiny runs (tests/conftest.py) is exactly the tree their flags make, with the sizes the
    data fixed (vocabulary, mel channels), and nothing else: not the flags."""
    from experiments.asr_recipe import with_features
    from experiments.configs.common import with_vocabulary
    from experiments.configs.ljspeech_asr import LJSpeechASRConfig
    from experiments.configs.ljspeech_tts import LJSpeechTTSConfig
    import importlib

    from mmspeech_jax.config_tree import from_record, to_dict
    from tests.conftest import TINY_RUN_ARGS

    tts_record = json.loads((tiny_tts_workdir / "config.json").read_text())
    tts = from_record(LJSpeechTTSConfig, tts_record)
    parse = lambda experiment, *flags, workdir: importlib.import_module(f"experiments.{experiment}").parse_args(
        ["--workdir", workdir, *flags])
    expected = parse("ljspeech_tts", *TINY_RUN_ARGS, "--num_samples", "1", workdir=str(tiny_tts_workdir))[1]
    assert tts == with_vocabulary(expected, tts.model.vocab_size) and tts.model.vocab_size > 2
    asr_record = json.loads((tiny_asr_workdir / "config.json").read_text())
    asr = from_record(LJSpeechASRConfig, asr_record)
    expected = parse("ljspeech_asr", *TINY_RUN_ARGS, "--natural_eval_utterances", "6", "--lm", str(tiny_lm_workdir),
                     "--lm_tune_utterances", "2", "--beam_width", "2", workdir=str(tiny_asr_workdir))[1]
    assert asr == with_features(expected, asr.model.n_mels)
    for record, tree in ((tts_record, tts), (asr_record, asr)):
        assert "args" not in record and record["task"] in ("tts", "asr")
        assert json.loads(json.dumps(to_dict(tree))) == {k: record[k] for k in to_dict(tree)}


def test_bfloat16_synthesis_and_transcription_stay_near_float32(tiny_tts_workdir, tiny_asr_workdir, tmp_path):
    """`with_compute_dtype("bfloat16")` (and the CLI's --compute-dtype): the same parameters, float32 left as they
    are, in bfloat16 arithmetic: the durations within one frame of float32's on a few tokens, and at float32's durations
    the mel within bfloat16 rounding of float32's (relative L1 < 3 %),
    the CTC log-probabilities within 0.1 nats; the models' programs really run in bfloat16 (their outputs differ
    from float32's)."""
    import jax

    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.models.variance_adaptor import Controls
    from mmspeech_jax.synthesize import Synthesizer, synthesize_ids
    from mmspeech_jax.transcribe import Transcriber

    tts = Synthesizer.from_workdir(tiny_tts_workdir)
    fast = tts.with_compute_dtype("bfloat16")
    assert fast.model.config.compute_dtype == "bfloat16" and tts.model.config.compute_dtype == "float32"
    assert all(x.dtype == np.float32 for x in jax.tree_util.tree_leaves(fast.params))
    text = "A much longer sentence, with a clause."
    ids = tts.tokenizer.encode(text)
    (full_out,), (half_out,) = tts.synthesize_ids([ids], 1), fast.synthesize_ids([ids], 1)
    full, half = full_out["mel"], half_out["mel"]
    assert half.dtype == np.float32 and half.shape[1] == full.shape[1]
    # bfloat16 may round a predicted duration the other way (seen: one token, one frame, on an AMD EPYC), and the
    # decoder's positions then shift for every later frame: at most one frame on a few tokens here, and the mels are
    # compared at float32's durations (bfloat16's `prepare` with its durations replaced, then its `render`).
    d_full, d_half = full_out["durations"], half_out["durations"]
    assert len(half) == d_half.sum() and len(full) == d_full.sum()
    assert np.abs(d_full - d_half).max() <= 1 and np.abs(d_full - d_half).sum() <= max(2, len(ids) // 10)

    def prepare_at_float32_durations(tokens, mask):
        h, durations = jax.device_get(fast._prepare(fast.params, tokens, mask, Controls()))
        durations = np.array(durations)
        durations[0, : ids.size] = d_full
        return h, durations

    render = lambda h, mask, durations, frames: fast._render(fast.params, h, mask, durations, frames, Controls())
    (forced,) = synthesize_ids(prepare_at_float32_durations, render, lambda d: d.sum(-1), [ids], 1)
    assert forced["mel"].shape == full.shape
    relative = np.abs(forced["mel"] - full).mean() / np.abs(full).mean()
    assert 0 < relative < 0.03, relative
    asr = Transcriber.from_workdir(tiny_asr_workdir)
    quick = asr.with_compute_dtype("bfloat16")
    log_probs, lengths = asr.log_probs([full])
    quick_probs, quick_lengths = quick.log_probs([full])
    np.testing.assert_array_equal(lengths, quick_lengths)
    gap = np.abs(quick_probs - log_probs)[0, : lengths[0]].max()
    assert 0 < gap < 0.1, gap
    with pytest.raises(ConfigError, match="compute_dtype"):
        tts.with_compute_dtype("float16")
    out = tmp_path / "half.wav"
    assert cli(["synthesize", "--workdir", str(tiny_tts_workdir), "--text", text, "--out", str(out),
                "--compute-dtype", "bfloat16"]) == 0 and out.stat().st_size > 44
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(out), "--compute-dtype", "bfloat16"]) == 0
