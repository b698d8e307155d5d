"""A damaged checkpoint is never a dead end: training resumes from, and inference reads, the newest step that
restores; the damaged step is reported in one line and kept (moved aside), never deleted. Damaged workdir files
are one-line errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.errors import CheckpointDamagedError, WorkdirDamagedError, WorkdirMismatchError
from mmspeech_jax.text.symbols import SymbolTable, character_table
from mmspeech_jax.train.trainer import TrainerConfig, fit
from mmspeech_jax.workdir import read_workdir_config, restore_params
from tests.test_trainer import Endless

CONFIG = TrainerConfig(steps=3, eval_every=1000, checkpoint_every=1, keep_checkpoints=3, progress=False)


def loss_fn(params, batch, rng, train, step, counts=None):
    return jnp.sum((params["w"] * batch["x"][:3] - 1.0) ** 2), {}


def train(workdir, steps, optimizer=None):
    return fit(workdir, {"w": jnp.ones((3,))}, optimizer or optax.adam(0.1), loss_fn, Endless(),
               dataclasses.replace(CONFIG, steps=steps))


def damage_metadata(step_dir):
    (step_dir / "state" / "_METADATA").unlink()


def damage_data(step_dir):
    for path in sorted(step_dir.joinpath("state").rglob("*")):
        if path.is_file() and path.parent.name == "d":
            path.write_bytes(path.read_bytes()[:5])  # truncated


@pytest.mark.parametrize("damage", [damage_metadata, damage_data], ids=["metadata", "data"])
def test_damaged_latest_step_falls_back_and_is_kept(tmp_path, damage, capsys):
    reference = train(tmp_path / "ref", 5)  # uninterrupted
    workdir = tmp_path / "w"
    train(workdir, 3)
    periodic = workdir / "checkpoints" / "periodic"
    expected_step2, _ = restore_params(workdir)
    damage(periodic / "3")
    capsys.readouterr()
    # Inference: step 2, with one line naming step 3.
    params, step = restore_params(workdir)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mmspeech:")]
    assert step == 2 and len(lines) == 1 and "checkpoint step 3" in lines[0] and "does not restore" in lines[0]
    assert params["w"].shape == (3,)
    # Training: resumes from step 2, keeps the damaged step aside, and ends as the uninterrupted run does.
    result = train(workdir, 5)
    err = capsys.readouterr().err
    assert "checkpoint step 3" in err and (periodic / "3.damaged").is_dir()
    assert int(result.state.step) == 5
    np.testing.assert_array_equal(np.asarray(result.state.params["w"]), np.asarray(reference.state.params["w"]))


def test_no_step_restores_is_one_line(tmp_path, capsys):
    train(tmp_path, 2)
    for step_dir in (tmp_path / "checkpoints" / "periodic").iterdir():
        damage_metadata(step_dir)
    with pytest.raises(CheckpointDamagedError, match="steps 2, 1 all failed") as error:
        restore_params(tmp_path)
    assert "\n" not in str(error.value)
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("mmspeech:")]) == 2


def test_another_optimizer_is_a_mismatch_not_damage(tmp_path):
    train(tmp_path, 2)
    with pytest.raises(WorkdirMismatchError, match="another training state"):
        train(tmp_path, 4, optax.sgd(0.1))  # no moments: fewer arrays
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "periodic").iterdir()) == ["1", "2"]  # nothing moved


def test_damaged_config_and_symbols_are_one_line_errors(tmp_path):
    (tmp_path / "config.json").write_text('{"task": "as')
    with pytest.raises(WorkdirDamagedError, match="config.json is damaged"):
        read_workdir_config(tmp_path)
    with pytest.raises(WorkdirDamagedError, match="symbols.json is missing"):
        SymbolTable.load(tmp_path / "symbols.json")
    character_table().save(tmp_path / "symbols.json")
    text = (tmp_path / "symbols.json").read_text()
    (tmp_path / "symbols.json").write_text(text[: len(text) // 2])
    with pytest.raises(WorkdirDamagedError, match="symbols.json is damaged"):
        SymbolTable.load(tmp_path / "symbols.json")


def test_a_diverging_resume_never_rotates_out_the_healthy_checkpoints(tmp_path):
    from mmspeech_jax.errors import TrainingDivergedError

    config = dataclasses.replace(CONFIG, steps=4, keep_checkpoints=2)
    fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), config)
    healthy, _ = restore_params(tmp_path)

    def diverging(params, batch, rng, train, step, counts=None):  # NaN from step 5 (1-based) on
        loss, parts = loss_fn(params, batch, rng, train, step)
        return loss * jnp.where(step >= 4, jnp.nan, 1.0), parts

    with pytest.raises(TrainingDivergedError):
        fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), diverging, Endless(),
            dataclasses.replace(config, steps=50, max_consecutive_skipped=3))
    periodic = tmp_path / "checkpoints" / "periodic"
    assert sorted(int(p.name) for p in periodic.iterdir()) == [3, 4]  # the healthy ones, not steps 5 and 6
    params, step = restore_params(tmp_path)
    assert step == 4
    np.testing.assert_array_equal(np.asarray(params["w"]), np.asarray(healthy["w"]))


def test_resumed_logs_do_not_repeat_the_steps_after_the_checkpoint(tmp_path):
    config = dataclasses.replace(CONFIG, steps=2, log_every=1, checkpoint_every=2)
    fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), config)
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:  # what a run killed at step 5, after its checkpoint at 2, had logged
        f.write("".join(json.dumps({"step": s, "split": "train", "loss": 9.0}) + "\n" for s in (3, 4, 5)))
        f.write('{"step": 6, "spl')  # torn by the kill
    fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), dataclasses.replace(config, steps=4))
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert all(json.loads(line)["loss"] != 9.0 for line in metrics.read_text().splitlines())


def test_wall_time_and_compilations_add_up_across_resumes(tmp_path):
    config = dataclasses.replace(CONFIG, steps=2)
    first = fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), config)
    assert first.compilations == 1 and first.wall_seconds == pytest.approx(first.run_wall_seconds)
    second = fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(),
                 dataclasses.replace(config, steps=4))
    assert second.compilations == 2  # one per process that trained
    assert second.wall_seconds > second.run_wall_seconds and second.wall_seconds >= first.run_wall_seconds
    again = fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(),
                dataclasses.replace(config, steps=4))  # a rerun of the finished command trains nothing
    assert again.compilations == 2 and again.wall_seconds >= second.wall_seconds - 0.5


def test_fault_injection_every_file_of_the_latest_step(tmp_path, capsys):
    """Each file of the newest step deleted, then truncated to half (one copy of the workdir per case): inference
    and resumed training both either read that step or fall back to the one before with one line; never a
    traceback. Counted cases are recorded in benchmarks/RESULTS.md (reliability table)."""
    import shutil

    original = tmp_path / "original"
    fit(original, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), CONFIG)
    newest = original / "checkpoints" / "periodic" / "3"
    files = sorted(p.relative_to(newest) for p in newest.rglob("*") if p.is_file())
    assert len(files) >= 8
    cases = fell_back = 0
    for relative in files:
        for damage in ("delete", "truncate"):
            workdir = tmp_path / f"case{cases}"
            shutil.copytree(original, workdir)
            target = workdir / "checkpoints" / "periodic" / "3" / relative
            if damage == "delete":
                target.unlink()
            else:
                target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
            capsys.readouterr()
            params, step = restore_params(workdir)
            lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mmspeech:")]
            assert step in (2, 3) and len(lines) == (step == 2), (relative, damage, lines)
            assert np.all(np.isfinite(np.asarray(params["w"])))
            if cases % 4 == 0:  # resumed training on a quarter of the cases (each compiles a step)
                result = fit(workdir, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(),
                             dataclasses.replace(CONFIG, steps=4))
                assert int(result.state.step) == 4
            fell_back += step == 2
            cases += 1
    assert cases == 2 * len(files) and fell_back >= 4
    print(f"fault injection: {cases} cases, {fell_back} fell back to the previous step, all held")


def test_after_a_divergence_the_best_checkpoint_is_read_and_resumed(tmp_path, capsys):
    """A healthy run with evaluations, then a resume whose updates blow the parameters up (finite) before the loss
    turns NaN: the newest periodic checkpoint holds diverged parameters; inference and the next resume read the
    best one, saying so; the first healthy save clears the mark."""
    from mmspeech_jax.errors import TrainingDivergedError
    from mmspeech_jax.train.trainer import diverged_marker

    evaluation = lambda: iter([{"x": np.full((4,), 2.0, np.float32)}])
    config = dataclasses.replace(CONFIG, steps=4, eval_every=2, checkpoint_every=2)
    fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(), config, eval_batches=evaluation)
    healthy, healthy_step = restore_params(tmp_path)

    def exploding(params, batch, rng, train, step, counts=None):  # NaN from the 6th step on
        loss, parts = loss_fn(params, batch, rng, train, step)
        return jnp.where(step >= 5, jnp.nan, loss), parts

    with pytest.raises(TrainingDivergedError):  # lr 1e6: the 5th update is finite and huge, and checkpointed
        fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(1e6), exploding, Endless(),
            dataclasses.replace(config, steps=40, eval_every=1000, checkpoint_every=1, max_consecutive_skipped=3),
            eval_batches=evaluation)
    assert diverged_marker(tmp_path).is_file()
    newest = max(int(p.name) for p in (tmp_path / "checkpoints" / "periodic").iterdir() if p.name.isdigit())
    capsys.readouterr()
    params, step = restore_params(tmp_path)
    assert "diverged" in capsys.readouterr().err and step <= healthy_step < newest
    assert np.abs(np.asarray(params["w"])).max() < 10
    result = fit(tmp_path, {"w": jnp.ones((3,))}, optax.adam(0.1), loss_fn, Endless(),
                 dataclasses.replace(config, steps=8), eval_batches=evaluation)
    assert "resuming from the best checkpoint" in capsys.readouterr().out
    assert int(result.state.step) == 8 and not diverged_marker(tmp_path).exists()


WIDE_RESTORE = """
import sys
from mmspeech_jax.workdir import restore_params
for _ in range(5):
    params, step = restore_params(sys.argv[1])
    print("restored", step, len(params), flush=True)
"""


def test_a_truncated_data_file_gives_one_line_and_no_traceback(tmp_path):
    """A step whose OCDBT data files are truncated, in a checkpoint of many arrays: before the byte check
    (train/checkpoint_bytes.py) Orbax's concurrent restore failed on one array and TensorStore then printed dozens
    of `RuntimeError: Event loop is closed` tracebacks from its threads (in 2 of 3 runs). Five restores in a fresh
    process: each reports step 3 in one line, reads step 2, and nothing else reaches stderr."""
    import subprocess
    import sys

    train_wide(tmp_path, 3)
    damage_data(tmp_path / "checkpoints" / "periodic" / "3")
    done = subprocess.run([sys.executable, "-c", WIDE_RESTORE, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["restored 2 200"] * 5
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 5 and all("checkpoint step 3" in line and "does not restore" in line for line in lines), \
        done.stderr[-3000:]
    # Training resumes the same way: one line, the step moved aside, no traceback.
    done = subprocess.run([sys.executable, "-c", f"from tests.test_checkpoint_fallback import train_wide; "
                           f"print(int(train_wide({str(tmp_path)!r}, 4).state.step))"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "4", done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
    assert len(lines) == 1 and "checkpoint step 3" in lines[0] and "CheckpointDamagedError" in lines[0], \
        done.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "periodic" / "3.damaged").is_dir()


def train_wide(workdir, steps):
    """`train` with 200 parameter arrays: enough concurrent reads for the restore race above."""
    wide = {f"w{i:03d}": jnp.full((64,), 1.0 + i / 100) for i in range(200)}
    wide_loss = lambda params, batch, rng, train, step, counts=None: (
        sum(jnp.sum((p * batch["x"][:1] - 1.0) ** 2) for p in jax.tree_util.tree_leaves(params)), {})
    return fit(workdir, wide, optax.adam(0.1), wide_loss, Endless(), dataclasses.replace(CONFIG, steps=steps))


def test_the_byte_check_names_the_unreadable_file(tmp_path):
    from mmspeech_jax.train.checkpoint_bytes import unreadable_reason

    train(tmp_path, 2)
    state = tmp_path / "checkpoints" / "periodic" / "2" / "state"
    assert unreadable_reason(state) is None and unreadable_reason(state, "train.params.") is None
    assert unreadable_reason(state, "no.such.prefix") == "no stored key under 'no.such.prefix'"
    damage_data(tmp_path / "checkpoints" / "periodic" / "2")
    reason = unreadable_reason(state)
    assert reason and "OUT_OF_RANGE" in reason and "\n" not in reason
    assert unreadable_reason(tmp_path / "nowhere") == f"{(tmp_path / 'nowhere').absolute()} is missing"
