"""Output paths are checked before any work: one line for a folder where a file goes, a missing or read-only
folder, an existing file, a parent that is a file."""

import json
import os

import pytest

from mmspeech_jax.cli import main as cli
from mmspeech_jax.errors import OutputPathError
from mmspeech_jax.output_paths import check_output_dir, check_output_file


def test_output_file_cases(tmp_path):
    (tmp_path / "exists.jsonl").write_text("x")
    (tmp_path / "a_file").write_text("x")
    for path, message in [(tmp_path, "is a folder"), (tmp_path / "exists.jsonl", "exists; pass --overwrite"),
                          (tmp_path / "missing" / "out.jsonl", "does not exist"),
                          (tmp_path / "a_file" / "out.jsonl", "is a file, not a folder")]:
        with pytest.raises(OutputPathError, match=message) as error:
            check_output_file(path, what="--out")
        assert "\n" not in str(error.value)
    assert check_output_file(tmp_path / "exists.jsonl", overwrite=True) == tmp_path / "exists.jsonl"
    assert check_output_file(tmp_path / "new" / "deep" / "x.wav", create_parents=True)  # the writer makes them
    with pytest.raises(OutputPathError, match="is a file"):
        check_output_file(tmp_path / "a_file" / "x.wav", create_parents=True)


def test_output_dir_cases(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "a_file")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "a_file" / "sub")
    assert check_output_dir(tmp_path / "new" / "sub") == tmp_path / "new" / "sub"
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(OutputPathError, match="not writable"):
            check_output_dir(tmp_path / "ro")


def test_cli_checks_outputs_before_any_model_loads(tmp_path, capsys):
    """The workdirs do not exist: had the model loaded first, the error would name them instead."""
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    text = tmp_path / "lines.txt"
    text.write_text("Hello there.\n")
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["transcribe", "--workdir", str(tmp_path / "none"), str(audio), "--out", str(tmp_path / "no" / "r.jsonl")],
         "does not exist"),
        (["transcribe", "--workdir", str(tmp_path / "none"), str(audio), "--out", str(tmp_path)], "is a folder"),
        (["synthesize", "--workdir", str(tmp_path / "none"), "--text-file", str(text), "--out-dir",
          str(tmp_path / "a_file")], "is a file, not a folder"),
        (["synthesize", "--workdir", str(tmp_path / "none"), "--text", "Hi.", "--out", str(tmp_path / "a_file" / "x.wav")],
         "is a file, not a folder"),
        (["evaluate-tts", "--tts", str(tmp_path / "none"), "--asr", str(tmp_path / "none"), "--text-file", str(text),
          "--out", str(tmp_path / "no" / "e.json")], "does not exist"),
    ]
    for argv, message in cases:
        assert cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "workdir" not in err, (argv, err)


def test_synthesize_with_a_workdir_of_another_task_is_one_line(tmp_path, capsys):
    for task in ("asr", "lm"):
        workdir = tmp_path / task
        workdir.mkdir()
        (workdir / "config.json").write_text(json.dumps({"task": task, "model": {"conv_kernels": None}}))
        assert cli(["synthesize", "--workdir", str(workdir), "--text", "Hi.", "--out", str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err
        assert f"is not a TTS workdir (config.json task is '{task}')" in err and err.count("\n") == 1
    assert not (tmp_path / "x.wav").exists()
