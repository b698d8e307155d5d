"""strict_json: what the trainer and the experiments write (metrics.jsonl, report.json) is JSON that any strict
reader accepts, with NaN and +-inf as null."""

import json
import math

import numpy as np
import pytest

from mmspeech_jax.workdir import strict_json


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
