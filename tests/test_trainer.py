"""The shared trainer on a toy problem: a run whose every step is non-finite stops loudly instead of skipping
updates for hours; isolated bad steps are skipped and counted; a workdir of another model is refused."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.errors import ConfigError, TrainingDivergedError, WorkdirMismatchError
from mmspeech_jax.train.trainer import TrainerConfig, fit


class Endless:
    """A batch iterator with the pipeline's resumable-state interface."""

    def __init__(self):
        self.position = 0

    def __next__(self):
        self.position += 1
        return {"x": np.full((4,), 2.0, np.float32)}

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = state["position"]


def toy_loss(bad_step):
    """Squared error of w * x against 1; the loss is NaN at the steps `bad_step(step)` marks."""

    def loss_fn(params, batch, rng, train, step, counts=None):
        loss = jnp.mean((params["w"] * batch["x"] - 1.0) ** 2) * jnp.where(bad_step(step), jnp.nan, 1.0)
        return loss, {}

    return loss_fn


def run(tmp_path, bad_step, steps, limit):
    config = TrainerConfig(steps=steps, log_every=1, eval_every=1000, checkpoint_every=1000, progress=False,
                           max_consecutive_skipped=limit)
    return fit(tmp_path, {"w": jnp.zeros(())}, optax.sgd(0.1), toy_loss(bad_step), Endless(), config)


def test_consecutive_non_finite_steps_stop_the_run(tmp_path, capsys):
    with pytest.raises(TrainingDivergedError) as info:
        run(tmp_path, lambda step: step >= 3, steps=100, limit=5)  # steps 4.. (1-based) are all NaN
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("steps 4-8: 5 consecutive steps had a non-finite loss or gradient"), message
    assert "still those after step 3" in message
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 8 and records[-1]["skipped"] == 5 and records[-1]["loss"] is None
    assert records[2]["step"] == 3 and records[2]["skipped"] == 0
    out = capsys.readouterr().out
    assert out.count("update skipped") == 1 and "step 4: non-finite loss or gradient" in out  # told once, at once


def test_isolated_bad_steps_are_skipped_and_the_run_completes(tmp_path):
    # Every other step is NaN: never two in a row, so a limit of 2 never triggers; 5 of 10 steps skipped.
    result = run(tmp_path / "a", lambda step: step % 2 == 1, steps=10, limit=2)
    assert int(result.state.step) == 10 and int(result.state.skipped) == 5
    # w follows plain SGD on its 5 finite steps: w <- w - 0.1 * d/dw mean((2w - 1)^2) = w - 0.1 * 4 (2w - 1)
    w = 0.0
    for _ in range(5):
        w -= 0.1 * 4.0 * (2.0 * w - 1.0)
    np.testing.assert_allclose(float(result.state.params["w"]), w, rtol=1e-6)
    # None: never stop, however many are skipped
    result = run(tmp_path / "b", lambda step: step >= 0, steps=6, limit=None)
    assert int(result.state.skipped) == 6 and float(result.state.params["w"]) == 0.0


def test_limit_is_checked():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="TrainerConfig.max_consecutive_skipped must be None or an integer >= 1"):
            TrainerConfig(max_consecutive_skipped=bad)


def test_resuming_in_a_workdir_of_another_model_is_refused(tmp_path):
    config = TrainerConfig(steps=2, eval_every=1000, checkpoint_every=1, progress=False)
    loss_fn = lambda params, batch, rng, train, step, counts=None: (jnp.sum(params["w"] ** 2), {})
    fit(tmp_path, {"w": jnp.ones((3,))}, optax.sgd(0.1), loss_fn, Endless(), config)
    saved = sorted(p.name for p in (tmp_path / "checkpoints" / "periodic").iterdir())
    with pytest.raises(WorkdirMismatchError, match=r"parameter w is \(3,\) there and \(4,\) in this model"):
        fit(tmp_path, {"w": jnp.ones((4,))}, optax.sgd(0.1), loss_fn, Endless(), dataclasses.replace(config, steps=4))
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "periodic").iterdir()) == saved
    # the same model resumes from the last checkpoint and goes on
    result = fit(tmp_path, {"w": jnp.ones((3,))}, optax.sgd(0.1), loss_fn, Endless(),
                 dataclasses.replace(config, steps=4))
    assert int(result.state.step) == 4


def test_logged_learning_rate_is_the_schedule_at_the_applied_update_count(tmp_path):
    """Every third step is NaN (skipped: the optimizer's count stays); each logged rate is the schedule at the
    number of updates applied so far, i.e. the rate of the next update."""
    from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer

    optimizer = OptimizerConfig(learning_rate=0.1, warmup_steps=4, total_steps=12)
    schedule = learning_rate_schedule(optimizer)
    bad = lambda step: step % 3 == 1  # 0-based steps 1, 4, 7, 10
    config = TrainerConfig(steps=12, log_every=1, eval_every=1000, checkpoint_every=1000, progress=False,
                           max_consecutive_skipped=None)
    fit(tmp_path, {"w": jnp.zeros(())}, make_optimizer(optimizer), toy_loss(bad), Endless(), config,
        learning_rate=schedule)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    applied = np.cumsum([not bad(s) for s in range(12)])  # updates applied after steps 1..12
    assert [r["step"] for r in records] == list(range(1, 13))
    np.testing.assert_allclose([r["learning_rate"] for r in records], [float(schedule(int(n))) for n in applied],
                               rtol=1e-6)
    assert len({r["learning_rate"] for r in records}) > 6  # the schedule moves over the run: a constant would fail
    assert records[1]["learning_rate"] == records[0]["learning_rate"]  # step 2 was skipped: same next rate


class TwoStreams(Endless):
    """Alternating batches of two streams: {"a": position} at odd positions, {"b": position} at even ones."""

    def __next__(self):
        self.position += 1
        return {"a" if self.position % 2 else "b": np.full((2,), float(self.position), np.float32)}


def test_each_train_line_averages_every_term_over_the_steps_that_computed_it(tmp_path):
    def loss_fn(params, batch, rng, train, step, counts=None):
        (name, x), = batch.items()
        return jnp.mean((params["w"] * x - 1.0) ** 2), {f"{name}_term": jnp.mean(x)}

    config = TrainerConfig(steps=10, log_every=4, eval_every=1000, checkpoint_every=1000, progress=False)
    fit(tmp_path, {"w": jnp.zeros(())}, optax.sgd(0.0), loss_fn, TwoStreams(), config)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["split"] == "train"]
    assert [r["step"] for r in train] == [4, 8, 10]
    # a_term is the position of each "a" step (odd), b_term of each "b" step (even): means over each window.
    assert [(r["a_term"], r["b_term"]) for r in train] == [(2.0, 3.0), (6.0, 7.0), (9.0, 10.0)]
    # w stays 0 (learning rate 0): every step's loss is 1, and no step was skipped.
    assert [(r["loss"], r["skipped"]) for r in train] == [(1.0, 0), (1.0, 0), (1.0, 0)]
