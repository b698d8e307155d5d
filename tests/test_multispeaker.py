"""`python -m experiments.multispeaker_tts` end to end on a tiny multi-voice corpus, and the conditioned CLI."""

import io
import json

import numpy as np
import pytest
import soundfile as sf

from mmspeech_jax.cli import main as cli
from mmspeech_jax.workdir import strict_json
from tests.conftest import _with_cache_dir

# The whole experiment (4 voices, 3 strategies x 2 held-out voices, a speaker classifier) takes ~4 min on 2 cores.
pytestmark = pytest.mark.slow

RUN = ["--preset", "tiny", "--corpus_size", "24", "--num_voices", "4", "--held_out", "2", "--steps", "3",
       "--batch_size", "8", "--num_buckets", "1", "--checkpoint_every", "3", "--eval_every", "3",
       "--adapt_utterances", "3", "--adapt_steps", "2", "--eval_utterances", "2", "--classifier_steps", "2",
       "--no_progress", "--mesh", "4x2"]  # the 8 simulated devices


def errors_only(err: str) -> str:
    """stderr without the CLI's `reading WORKDIR: checkpoint step N` line."""
    return "".join(line + "\n" for line in err.splitlines() if not line.startswith("reading "))


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_run_cache):
    import experiments.multispeaker_tts as experiment
    import experiments.wiring as wiring

    meshes = []

    def recording_fit(*args, mesh=None, **kwargs):
        meshes.append(None if mesh is None else dict(mesh.shape))
        return fit(*args, mesh=mesh, **kwargs)

    fit = wiring.fit  # every training run of the experiment goes through the shared wiring
    workdir = tmp_path_factory.mktemp("multispeaker") / "w"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wiring, "fit", recording_fit)
        report = _with_cache_dir(tiny_run_cache, lambda: experiment.main(RUN + ["--workdir", str(workdir)]))
    # --mesh shards the multi-speaker training; the six adaptation runs (3 utterances each) use one device
    assert meshes == [{"data": 4, "fsdp": 2}] + [None] * 6, meshes
    return workdir, report


def test_report_compares_every_strategy_on_every_held_out_voice(run):
    workdir, report = run
    assert json.loads((workdir / "report.json").read_text()) == json.loads(strict_json(report))
    held_out = report["training"]["held_out_voices"]
    assert len(held_out) == 2 and not set(held_out) & set(report["training"]["training_voices"])
    rows = report["rows"]
    assert sorted((r["voice"], r["strategy"]) for r in rows) == sorted(
        (v, s) for v in held_out for s in ("zero_shot", "full", "plain_adapters", "hyper"))
    for r in rows:
        for key in ("mcd_dtw_db", "speaker_cosine", "speaker_accuracy"):
            assert np.isfinite(r[key]), (r, key)
        assert r["steps"] == (0 if r["strategy"] == "zero_shot" else 2)
    s = report["summary"]
    assert s["zero_shot"]["trainable_parameters"] == 0
    assert 0 < s["plain_adapters"]["trainable_parameters"] < s["hyper"]["trainable_parameters"]
    assert s["hyper"]["trainable_parameters"] < s["full"]["trainable_parameters"] == s["full"]["total_parameters"]
    assert (workdir / "plots" / "embeddings.png").stat().st_size > 0
    assert len(list((workdir / "samples").glob("*.wav"))) == 8
    # each adaptation run is its own resumable workdir with a checkpoint at its last step
    for voice in held_out:
        for strategy in ("full", "plain_adapters", "hyper"):
            assert (workdir / "adapt" / voice / strategy / "checkpoints" / "periodic").is_dir()


def test_tensorboard_shows_each_validation_voice_at_each_evaluation(run):
    """The multi-speaker training's on_eval hook (eval at step 3, the last): the first --num_samples (3) validation
    utterances of the training voices, each a plot and speech."""
    from tests.test_summaries import decoded_image, read_summaries

    workdir, _ = run
    found = read_summaries(workdir / "tensorboard")
    plots = {tag for tag, step in found if tag.endswith("/plot") and step == 3}
    speech = {tag for tag, step in found if tag.endswith("/generated") and step == 3}
    assert 1 <= len(plots) <= 3 and {t.replace("/plot", "/generated") for t in plots} == speech
    for tag in speech:
        samples, rate = sf.read(io.BytesIO(found[tag, 3].audio.encoded_audio_string))
        assert rate == 22050 and samples.size > 256 and np.all(np.isfinite(samples))
    assert all(decoded_image(found[tag, 3]).std() > 10 for tag in plots)


def test_synthesize_with_speaker_or_reference_and_one_line_errors(run, tmp_path, capsys):
    workdir, _ = run
    base = ["synthesize", "--workdir", str(workdir), "--text", "Hello there."]
    assert cli(base + ["--out", str(tmp_path / "a.wav"), "--speaker", "1"]) == 0
    audio, rate = sf.read(tmp_path / "a.wav")
    assert rate == 22050 and audio.size > 0 and np.all(np.isfinite(audio))
    reference = tmp_path / "ref.wav"
    rng = np.random.default_rng(0)
    sf.write(reference, (0.1 * rng.standard_normal(22050)).astype(np.float32), 22050)
    assert cli(base + ["--out", str(tmp_path / "b.wav"), "--reference", str(reference)]) == 0
    capsys.readouterr()
    assert cli(base + ["--out", str(tmp_path / "c.wav"), "--speaker", "7"]) == 2
    err = errors_only(capsys.readouterr().err)
    assert err.count("\n") == 1 and "unknown speaker id 7" in err
    assert cli(base + ["--out", str(tmp_path / "d.wav")]) == 2
    assert "needs a voice" in capsys.readouterr().err
    sf.write(tmp_path / "short.wav", np.zeros(2000, np.float32), 22050)
    assert cli(base + ["--out", str(tmp_path / "e.wav"), "--reference", str(tmp_path / "short.wav")]) == 2
    err = errors_only(capsys.readouterr().err)
    assert err.count("\n") == 1 and "at least" in err
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    assert cli(base + ["--out", str(tmp_path / "f.wav"), "--reference", str(tmp_path / "junk.wav")]) == 2
    assert errors_only(capsys.readouterr().err).count("\n") == 1
    assert not any((tmp_path / n).exists() for n in ("c.wav", "d.wav", "e.wav", "f.wav"))
    # A reference log-mel handed to the Python API directly is checked as one.
    from mmspeech_jax.errors import FeatureError
    from mmspeech_jax.synthesize import Synthesizer

    tts = Synthesizer.from_workdir(workdir)
    for bad, message in [(np.zeros((300, 40), np.float32), "shape"), (np.full((300, 80), np.nan), "NaN")]:
        with pytest.raises(FeatureError, match=message):
            tts.mel("Hello there.", reference=bad)


def test_export_rebuilds_hyperspeech_in_a_new_module(run, tmp_path):
    from mmspeech_jax.export import load_exported
    from mmspeech_jax.models.hyperspeech import HyperSpeech
    from mmspeech_jax.synthesize import Synthesizer

    workdir, _ = run
    assert cli(["export", "--workdir", str(workdir), "--out", str(tmp_path / "x")]) == 0
    model, params, _, _ = load_exported(tmp_path / "x")
    assert isinstance(model, HyperSpeech)
    tts = Synthesizer.from_workdir(workdir)
    ids = tts.tokenizer.encode("Hello there.")
    tokens = np.zeros((1, 32), np.int32)
    tokens[0, : ids.size] = ids
    mel, _, _ = model.apply({"params": params}, tokens, tokens > 0, 256, np.array([0], np.int32),
                            method=model.generate)
    expected = tts.mel("Hello there.", speaker=0)
    np.testing.assert_allclose(np.asarray(mel[0, : expected.shape[0]]), expected, rtol=1e-4, atol=1e-4)


def test_evaluate_tts_speaks_in_the_given_voice(run, tiny_asr_workdir, tmp_path, capsys):
    workdir, _ = run
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello there.\nThe cat sat on the mat.\n")
    out = tmp_path / "report.json"
    assert cli(["evaluate-tts", "--tts", str(workdir), "--asr", str(tiny_asr_workdir), "--text-file", str(lines),
                "--speaker", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["synthesized"]["utterances"] == 2 and report["ground_truth"] is None
    assert cli(["evaluate-tts", "--tts", str(workdir), "--asr", str(tiny_asr_workdir), "--text-file", str(lines),
                "--speaker", "9"]) == 2
    assert "unknown speaker id 9" in capsys.readouterr().err
