"""Exact resume: a run killed with SIGKILL and restarted with the same command ends bit-identical to an
uninterrupted run (tiny preset, CPU), and a partially written checkpoint is never loaded."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from mmspeech_jax.workdir import restore_params
from mmspeech_jax.train.checkpoint import Checkpointer

STEPS = 16


def command(workdir):
    return [sys.executable, "-m", "experiments.ljspeech_tts", "--preset", "tiny", "--steps", str(STEPS),
            "--corpus_size", "24", "--batch_size", "4", "--num_buckets", "1", "--eval_every", "1000",
            "--checkpoint_every", "4", "--num_samples", "0", "--workdir", str(workdir), "--no_progress"]


def final_params(workdir):
    params, step = restore_params(Path(workdir))
    return step, params


@pytest.mark.slow  # ~3 min; the fast suite resumes runs in test_asr.py and test_sharding.py
def test_sigkill_then_restart_is_bit_identical(tmp_path):
    env = {**os.environ, "MMSPEECH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    root = Path(__file__).resolve().parents[1]
    subprocess.run(command(tmp_path / "reference"), env=env, cwd=root, check=True, capture_output=True, timeout=600)

    killed = subprocess.Popen(command(tmp_path / "killed"), env=env, cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    periodic = tmp_path / "killed" / "checkpoints" / "periodic"
    deadline = time.time() + 400
    while time.time() < deadline and killed.poll() is None:
        steps = [int(p.name) for p in periodic.glob("*") if p.name.isdigit()] if periodic.exists() else []
        if any(s >= 8 for s in steps):
            break
        time.sleep(0.2)
    assert killed.poll() is None, "the run finished before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(command(tmp_path / "killed"), env=env, cwd=root, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step" in resumed.stdout

    ref_step, ref = final_params(tmp_path / "reference")
    got_step, got = final_params(tmp_path / "killed")
    assert ref_step == got_step == STEPS
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(got)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_partial_checkpoint_is_never_loaded(tmp_path):
    import jax.numpy as jnp
    import optax

    from mmspeech_jax.train.state import TrainState

    tx = optax.adam(1e-3)
    state = TrainState.create({"w": jnp.ones(3)}, tx)
    checkpointer = Checkpointer(tmp_path / "ckpt")
    checkpointer.save(4, state, jax.random.PRNGKey(0), {"iterator": {"next_index": 4}, "book": {}})
    checkpointer.close()
    # a save interrupted mid-write: Orbax's temporary directory for step 8, never committed
    (tmp_path / "ckpt" / "periodic" / "8.orbax-checkpoint-tmp-123").mkdir()
    checkpointer = Checkpointer(tmp_path / "ckpt")
    assert checkpointer.latest_step() == 4
    restored_state, _, data = checkpointer.restore(state, jax.random.PRNGKey(0))
    assert int(restored_state.step) == 0 and data["iterator"] == {"next_index": 4}
    checkpointer.close()
