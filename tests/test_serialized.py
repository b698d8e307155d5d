"""`mmspeech export --stablehlo`: artifacts that run in a process importing only jax and numpy."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mmspeech_jax.cli import main as cli

# A deprecated call in the export path fails here, before a newer jax removes it.
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

RUNNER = r"""
import json, sys
import numpy as np, jax
d, name, inputs, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
fn = jax.export.deserialize(open(f"{d}/{name}.jax", "rb").read())
args = [a for a in np.load(inputs).values()]
result = fn.call(*args)
result = result if isinstance(result, (tuple, list)) else (result,)
np.savez(out, *[np.asarray(r) for r in result])
assert not any(m.startswith(("mmspeech_jax", "flax", "optax")) for m in sys.modules), "model code was imported"
"""


def run_without_model_code(directory, name, inputs: list, tmp_path):
    np.savez(tmp_path / "inputs.npz", *inputs)
    subprocess.run([sys.executable, "-c", RUNNER, str(directory), name, str(tmp_path / "inputs.npz"),
                    str(tmp_path / "out.npz")], check=True, cwd=tmp_path)
    out = np.load(tmp_path / "out.npz")
    return [out[f"arr_{i}"] for i in range(len(out.files))]


def test_tts_artifacts_match_the_model(tiny_tts_workdir, tmp_path):
    from mmspeech_jax.synthesize import Synthesizer

    out = tmp_path / "s"
    assert cli(["export", "--workdir", str(tiny_tts_workdir), "--out", str(out), "--stablehlo", "--max-tokens", "32",
                "--max-frames", "256"]) == 0
    assert cli(["export", "--workdir", str(tiny_tts_workdir), "--out", str(out), "--stablehlo"]) == 2  # no overwrite
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"]["text_to_mel"]["inputs"]["tokens"] == {"shape": ["B", 32], "dtype": "int32"}
    tts = Synthesizer.from_workdir(tiny_tts_workdir)
    expected = tts.mel("Hello there.")  # pads to 32 tokens and 256 frames, as exported
    ids = tts.tokenizer.encode("Hello there.")
    tokens = np.zeros((3, 32), np.int32)  # batch 3: the batch dimension is symbolic
    tokens[:, : ids.size] = ids
    mel, frame_mask, durations, truncated = run_without_model_code(out, "text_to_mel", [tokens, tokens > 0], tmp_path)
    assert mel.shape == (3, 256, 80)
    assert manifest["artifacts"]["text_to_mel"]["outputs"] == ["mel", "frame_mask", "durations", "truncated"]
    total = (durations * (tokens > 0)).sum(-1)
    np.testing.assert_array_equal(truncated, total > 256)
    assert not truncated.any() and frame_mask.sum(-1).tolist() == total.tolist()
    np.testing.assert_allclose(mel[1, : expected.shape[0]], expected, rtol=1e-4, atol=1e-4)
    (wave,) = run_without_model_code(out, "griffin_lim", [mel[0]], tmp_path)
    assert wave.ndim == 1 and wave.size > 0 and np.all(np.isfinite(wave))


def test_multi_platform_artifacts_run_on_the_cpu_and_flag_truncation(tiny_tts_workdir, tiny_asr_workdir, tmp_path):
    """--platforms cpu,cuda,tpu lowers each artifact for all three in one file (no GPU or TPU here); the CPU runs
    it. A max_frames shorter than the predicted speech sets `truncated` instead of cutting silently."""
    from jax import export

    from mmspeech_jax.synthesize import Synthesizer

    out = tmp_path / "multi"
    assert cli(["export", "--workdir", str(tiny_tts_workdir), "--out", str(out), "--stablehlo", "--max-tokens", "32",
                "--max-frames", "8", "--platforms", "cpu,cuda,tpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["platforms"] == ["cpu", "cuda", "tpu"]
    for name in ("text_to_mel", "griffin_lim"):
        assert export.deserialize((out / f"{name}.jax").read_bytes()).platforms == ("cpu", "cuda", "tpu")
    ids = Synthesizer.from_workdir(tiny_tts_workdir).tokenizer.encode("Hello there, how are you today?")
    tokens = np.zeros((2, 32), np.int32)
    tokens[0, : ids.size] = ids
    tokens[1, :1] = ids[:1]
    mel, frame_mask, durations, truncated = run_without_model_code(out, "text_to_mel", [tokens, tokens > 0], tmp_path)
    total = (durations * (tokens > 0)).sum(-1)
    assert total[0] > 8  # the sentence needs more than 8 frames ...
    np.testing.assert_array_equal(truncated, total > 8)  # ... and says so
    assert frame_mask.shape == (2, 8) and frame_mask[0].all()
    asr_out = tmp_path / "multi_asr"
    assert cli(["export", "--workdir", str(tiny_asr_workdir), "--out", str(asr_out), "--stablehlo",
                "--max-frames", "64", "--platforms", "cpu,cuda"]) == 0
    log_probs, out_mask = run_without_model_code(asr_out, "features_to_log_probs",
                                                 [np.zeros((1, 64, 80), np.float32) - 4, np.ones((1, 64), bool)],
                                                 tmp_path)
    assert np.all(np.isfinite(log_probs[out_mask]))


def test_unknown_platform_is_refused_in_one_line(tmp_path, capsys):
    assert cli(["export", "--workdir", str(tmp_path / "no_workdir"), "--out", str(tmp_path / "new"), "--stablehlo",
                "--platforms", "cpu,gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'gpu'" in err and "no_workdir" not in err, err


def test_asr_artifact_matches_the_model(tiny_asr_workdir, tmp_path):
    from mmspeech_jax.transcribe import Transcriber

    out = tmp_path / "a"
    assert cli(["export", "--workdir", str(tiny_asr_workdir), "--out", str(out), "--stablehlo",
                "--max-frames", "256"]) == 0
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(200, 80)).astype(np.float32) - 4
    asr = Transcriber.from_workdir(tiny_asr_workdir)
    expected, lengths = asr.log_probs([mel])
    padded = np.zeros((2, 256, 80), np.float32)
    padded[:, :200] = mel
    mask = np.zeros((2, 256), bool)
    mask[:, :200] = True
    log_probs, out_mask = run_without_model_code(out, "features_to_log_probs", [padded, mask], tmp_path)
    n = int(lengths[0])
    assert int(out_mask[0].sum()) == n
    np.testing.assert_allclose(log_probs[0, :n], expected[0, :n], rtol=1e-4, atol=1e-4)


def test_exports_never_replace_a_file_and_check_arguments_first(tiny_tts_workdir, tmp_path, capsys):
    """A directory holding any file an export would write is refused before anything is written (the old check
    looked only for model.safetensors / manifest.json and replaced the rest), in one line; bad lengths are refused
    before the workdir is even read."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("the user's own config")
    (mine / "griffin_lim.jax").write_bytes(b"the user's own artifact")
    for extra in ([], ["--stablehlo"]):
        assert cli(["export", "--workdir", str(tiny_tts_workdir), "--out", str(mine), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("config.json" if not extra else "griffin_lim.jax") in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "griffin_lim.jax"]
    assert (mine / "config.json").read_text() == "the user's own config"
    assert (mine / "griffin_lim.jax").read_bytes() == b"the user's own artifact"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert cli(["export", "--workdir", str(tiny_tts_workdir), "--out", str(a_file)]) == 2
    assert "not a directory" in capsys.readouterr().err and a_file.read_text() == "x"
    for flag in ("--max-frames", "--max-tokens"):
        assert cli(["export", "--workdir", str(tmp_path / "no_workdir"), "--out", str(tmp_path / "new"), "--stablehlo",
                    flag, "0"]) == 2
        err = capsys.readouterr().err
        assert flag[2:].replace("-", "_") in err and "no_workdir" not in err, err
    assert not (tmp_path / "new").exists()
