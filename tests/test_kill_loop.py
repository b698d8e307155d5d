"""SIGKILL loops (`make test-slow`): a training process killed again and again at random points — mid-step,
mid-save, mid-evaluation — and restarted with the same command ends bit-identical to an uninterrupted run, N of N,
and its metrics.jsonl logs each step once."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PROGRAM = textwrap.dedent("""
    import sys, time
    import jax.numpy as jnp, numpy as np, optax
    from mmspeech_jax.train.trainer import TrainerConfig, fit

    class Endless:
        def __init__(self):
            self.position = 0
        def __next__(self):
            self.position += 1
            return {"x": np.full((8,), 1.0 + (self.position % 5) / 10, np.float32)}
        def get_state(self):
            return {"position": self.position}
        def set_state(self, state):
            self.position = state["position"]

    def loss_fn(params, batch, rng, train, step, counts=None):
        return jnp.mean((params["w"] @ jnp.ones((64,))) ** 2 * jnp.mean(batch["x"]) - 1.0) ** 2, {}

    def slow_eval():
        for _ in range(3):
            time.sleep(0.05)  # evaluation takes a while: kills land inside it too
            yield {"x": np.ones((8,), np.float32)}

    config = TrainerConfig(steps=150, log_every=1, eval_every=3, checkpoint_every=2, keep_checkpoints=2,
                           progress=False)
    result = fit(sys.argv[1], {"w": jnp.full((64, 64), 0.01)}, optax.adamw(1e-2), loss_fn, Endless(), config,
                 eval_batches=slow_eval)
    np.save(sys.argv[2], np.asarray(result.state.params["w"]))
""")


def run(workdir, out, kill_after=None):
    process = subprocess.Popen([sys.executable, "-c", PROGRAM, str(workdir), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is None:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-2000:]
        return True
    try:
        process.wait(timeout=kill_after)
        return True  # finished before the kill
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return False


@pytest.mark.slow
def test_sigkill_loop_is_bit_identical_n_of_n(tmp_path):
    run(tmp_path / "reference", tmp_path / "reference.npy")
    expected = np.load(tmp_path / "reference.npy")
    rng = np.random.default_rng(0)
    kills = 0
    for attempt in range(12):
        if run(tmp_path / "killed", tmp_path / "killed.npy", kill_after=float(rng.uniform(2.5, 7.0))):
            break
        kills += 1
    else:
        run(tmp_path / "killed", tmp_path / "killed.npy")
    if not (tmp_path / "killed.npy").exists():
        run(tmp_path / "killed", tmp_path / "killed.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "killed.npy"), expected)
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert steps == list(range(1, 151)), steps  # each step logged once, whatever the kills
    assert kills >= 3
    print(f"{kills} kills, bit-identical")
