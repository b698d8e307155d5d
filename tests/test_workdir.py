"""strict_json: what the trainer and the experiments write (metrics.jsonl, report.json) is JSON that any strict
reader accepts, with NaN and +-inf as null. write_run_config: a rerun never overwrites the config.json of another
model's checkpoints."""

import json
import math

import numpy as np
import pytest

from mmspeech_jax.errors import WorkdirMismatchError
from mmspeech_jax.text.symbols import character_table
from mmspeech_jax.workdir import check_resumable, strict_json, write_run_config


def _strict_loads(text):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_become_null_at_any_depth_and_the_rest_is_unchanged():
    report = {"loss": float("nan"), "best": float("inf"), "low": -math.inf, "ok": 1.5, "n": 3, "name": "x",
              "rows": [{"cer": float("nan"), "wer": 0.25}, (1.0, float("-inf"))], "flag": True, "none": None}
    text = strict_json(report, indent=1)
    assert "NaN" not in text and "Infinity" not in text
    assert _strict_loads(text) == {"loss": None, "best": None, "low": None, "ok": 1.5, "n": 3, "name": "x",
                                   "rows": [{"cer": None, "wer": 0.25}, [1.0, None]], "flag": True, "none": None}


def test_numpy_float_scalars_are_cleaned_too():
    # np.float64 is a float subclass; a NaN from a NumPy reduction must not slip through as NaN
    assert _strict_loads(strict_json({"x": np.float64("nan"), "y": np.float64(2.0)})) == {"x": None, "y": 2.0}


def test_plain_json_dumps_would_have_written_non_standard_constants():
    # the failure strict_json exists for: Python's default output is rejected by a strict reader
    with pytest.raises(ValueError, match="non-standard"):
        _strict_loads(json.dumps({"loss": float("nan")}))


def test_a_rerun_with_another_model_leaves_the_workdir_as_it_was(tmp_path):
    record = {"task": "asr", "model": {"dim": 32, "kernels": (3, 1), "aligner": {"dim": 8}}, "args": {"steps": 10}}
    write_run_config(tmp_path, record, character_table())
    assert json.loads((tmp_path / "config.json").read_text())["model"]["kernels"] == [3, 1]
    # no checkpoints yet: a changed model simply replaces the config
    write_run_config(tmp_path, {**record, "model": {**record["model"], "dim": 48}}, character_table())
    write_run_config(tmp_path, record, character_table())
    (tmp_path / "checkpoints" / "periodic" / "5").mkdir(parents=True)
    before = (tmp_path / "config.json").read_bytes()
    # the same model with other flags (more steps) resumes: the config is rewritten
    write_run_config(tmp_path, {**record, "args": {"steps": 20}}, character_table())
    assert json.loads((tmp_path / "config.json").read_text())["args"]["steps"] == 20
    before = (tmp_path / "config.json").read_bytes()
    for other, named in ((dict(record, model={**record["model"], "dim": 64}), "model.dim: 32 there, 64 now"),
                         (dict(record, model={**record["model"], "aligner": {"dim": 9}}), "model.aligner.dim: 8 there"),
                         (dict(record, model={**record["model"], "kernels": (5, 1)}), "model.kernels: [3, 1] there, "
                                                                                        "[5, 1] now"),
                         (dict(record, task="tts"), "task: 'asr' there, 'tts' now")):
        with pytest.raises(WorkdirMismatchError, match=r"holds checkpoints of another model \(") as info:
            write_run_config(tmp_path, other, character_table())
        assert named in str(info.value) and "nothing was changed" in str(info.value)
        assert (tmp_path / "config.json").read_bytes() == before
    check_resumable(tmp_path / "fresh", record)  # not a workdir yet: nothing to protect


def test_a_checkpoint_of_other_parameters_is_refused_by_name_before_orbax_reads_it():
    from mmspeech_jax.train.checkpoint import check_params_fit

    params = {"encoder": {"kernel": np.zeros((3, 32)), "bias": np.zeros(32)}, "out": {"kernel": np.zeros((32, 80))}}
    check_params_fit(params, params, "ckpt")
    wider = {**params, "encoder": {"kernel": np.zeros((3, 64)), "bias": np.zeros(64)}}
    with pytest.raises(WorkdirMismatchError, match=r"parameter encoder/bias is \(32,\) there and \(64,\) in this "
                                                   r"model \(2 parameters differ\)"):
        check_params_fit(params, wider, "ckpt")
    with pytest.raises(WorkdirMismatchError, match="parameter postnet/kernel is absent there"):
        check_params_fit(params, {**params, "postnet": {"kernel": np.zeros((5, 80))}}, "ckpt")
