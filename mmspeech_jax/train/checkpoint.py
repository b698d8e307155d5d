"""Orbax checkpoints of a whole run: the TrainState (params, optimizer state, step), the PRNG key, the input
pipeline's iterator state and the trainer's bookkeeping (best validation loss, patience) — everything an exact
resume needs.

Two managers: `periodic/` (every N steps, keep the last `keep`) and `best/` (lowest validation loss, keep 1).
Orbax writes each checkpoint to a temporary directory and commits it by renaming, so a run killed mid-save
(even with SIGKILL) leaves no checkpoint that `latest_step()` would return: a partial checkpoint is never loaded.
A committed step that was damaged afterwards (a truncated or deleted file) is reported in one line and moved aside
to `<step>.damaged` (kept, never deleted); the resume continues from the newest step that restores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from mmspeech_jax.errors import CheckpointDamagedError, WorkdirMismatchError
from mmspeech_jax.train.checkpoint_bytes import unreadable_reason


class Checkpointer:
    """The run's Orbax checkpoints under `directory`: `periodic/` (every save, the last `keep`) and `best/` (lowest
    validation loss). Each step holds the TrainState, the PRNG key and a JSON dict (pipeline position, bookkeeping)."""
    def __init__(self, directory, keep: int = 3):
        directory = Path(directory).absolute()
        # Each manager names its cross-process barriers with its own prefix: both save step N at the end of a
        # run, and Orbax keys a barrier by the step directory's name ("async_write_complete.N"), so without the
        # prefixes the two saves would share barrier names across processes and can time out (seen with two
        # processes under load).
        self.periodic = ocp.CheckpointManager(directory / "periodic", options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, multiprocessing_options=_barriers("periodic")))
        self.best = ocp.CheckpointManager(directory / "best", options=ocp.CheckpointManagerOptions(
            max_to_keep=1, best_fn=lambda metrics: metrics["val_loss"], best_mode="min", create=True,
            multiprocessing_options=_barriers("best")))

    @staticmethod
    def _args(state, rng, data: dict):
        # typed PRNG keys are stored as their raw key data (and their implementation's name)
        data = {**data, "rng_impl": str(jax.random.key_impl(rng)) if _typed(rng) else None}
        return ocp.args.Composite(state=ocp.args.StandardSave({"train": state, "rng": _raw(rng)}),
                                  data=ocp.args.JsonSave(data))

    def save(self, step: int, state, rng, data: dict) -> None:
        """Save (state, rng, data) as periodic step `step` (asynchronously; `wait` for it)."""
        self.periodic.save(step, args=self._args(state, rng, data), force=True)

    def save_best(self, step: int, state, rng, data: dict, val_loss: float) -> None:
        """Save as a best-checkpoint candidate scored by `val_loss` (only the lowest is kept)."""
        self.best.save(step, args=self._args(state, rng, data), metrics={"val_loss": float(val_loss)}, force=True)

    def latest_step(self) -> int | None:
        """The newest committed periodic step, or None."""
        return self.periodic.latest_step()

    def restore(self, abstract_state, abstract_rng, step: int | None = None, *, best: bool = False,
                report=lambda line: print(line, file=sys.stderr)):
        """Returns (state, rng, data) of `step` (default: the newest periodic step that restores, or the best with
        best=True), or None when there is none. By default a step that does not restore — and holds this model,
        else `WorkdirMismatchError` — is reported through `report`, moved aside to `<step>.damaged` and the step
        before it is tried."""
        manager = self.best if best else self.periodic
        if step is not None or best:
            step = step if step is not None else manager.best_step()
            if step is None:
                return None
            check_bytes(Path(manager.directory) / str(step))
            return self._restore(manager, step, abstract_state, abstract_rng)
        from mmspeech_jax.workdir import damaged_step_line

        for step in sorted(manager.all_steps(), reverse=True):
            where = Path(manager.directory) / str(step)
            try:
                check_bytes(where)
                stored = ocp.StandardCheckpointHandler().metadata(where / "state").tree
            except Exception as exc:  # noqa: BLE001 - unreadable bytes or metadata: a damaged step
                report(damaged_step_line(step, manager.directory, exc))
                self._set_aside(manager, where)
                continue
            check_params_fit(stored["train"]["params"], abstract_state.params, where)  # another model: stop here
            check_state_fits(stored["train"], abstract_state, where)
            try:
                return self._restore(manager, step, abstract_state, abstract_rng)
            except Exception as exc:  # noqa: BLE001 - the model fits, the data does not read: a damaged step
                report(damaged_step_line(step, manager.directory, exc))
                self._set_aside(manager, where)
        return None

    @staticmethod
    def _set_aside(manager, where: Path) -> None:
        target, n = where.with_name(f"{where.name}.damaged"), 1
        while target.exists():
            target, n = where.with_name(f"{where.name}.damaged-{n}"), n + 1
        where.rename(target)
        manager.reload()

    def _restore(self, manager, step: int, abstract_state, abstract_rng):
        stored = ocp.StandardCheckpointHandler().metadata(Path(manager.directory) / str(step) / "state").tree
        check_params_fit(stored["train"]["params"], abstract_state.params, Path(manager.directory) / str(step))
        target = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct,
                                        {"train": abstract_state, "rng": _raw(abstract_rng)})
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                 data=ocp.args.JsonRestore()))
        rng = restored["state"]["rng"]
        if _typed(abstract_rng):
            rng = jax.random.wrap_key_data(rng, impl=jax.random.key_impl(abstract_rng))
        return restored["state"]["train"], rng, restored["data"]

    def wait(self) -> None:
        """Block until every save in flight is committed."""
        self.periodic.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        """Wait for the saves, then release both managers."""
        self.wait()
        self.periodic.close()
        self.best.close()


def _shapes(tree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape) for path, leaf in leaves}


def check_params_fit(stored, params, where) -> None:
    """The parameters a checkpoint holds (`stored`: Orbax metadata or arrays) have this model's names and shapes,
    else `WorkdirMismatchError` naming the first parameter that differs, before Orbax starts reading (a failed
    restore used to end in a long Orbax traceback and background-thread noise)."""
    old, new = _shapes(stored), _shapes(params)
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            there = "absent" if name not in old else old[name]
            now = "absent" if name not in new else new[name]
            differ = sum(old.get(k) != new.get(k) for k in set(old) | set(new))
            raise WorkdirMismatchError(f"the checkpoint {where} holds another model: parameter {name} is {there} "
                                       f"there and {now} in this model ({differ} parameters differ); use a new "
                                       f"workdir or the flags that made it (nothing was changed)")


def check_state_fits(stored, state, where) -> None:
    """The whole stored train state (optimizer included) has this run's number of arrays and their shapes (Orbax
    metadata names custom nodes differently, so the shapes are compared as a sorted list), else
    `WorkdirMismatchError` (another optimizer: not a damaged step)."""
    old = sorted(tuple(leaf.shape) for leaf in jax.tree_util.tree_leaves(stored))
    new = sorted(tuple(jax.numpy.shape(leaf)) for leaf in jax.tree_util.tree_leaves(state))
    if old != new:
        raise WorkdirMismatchError(f"the checkpoint {where} holds another training state ({len(old)} arrays there, "
                                   f"{len(new)} now: another optimizer?); use a new workdir or the flags that made "
                                   f"it (nothing was changed)")


def check_bytes(step_dir: Path) -> None:
    """`CheckpointDamagedError` (one line) when a stored byte of the step's `state` or `data` item does not read:
    found without Orbax, whose concurrent restore would spill TensorStore tracebacks (`checkpoint_bytes.py`)."""
    for item in ("state", "data"):
        problem = unreadable_reason(step_dir / item)
        if problem:
            raise CheckpointDamagedError(f"{step_dir.name}/{item}: {problem}")


def _barriers(prefix: str):
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


def _typed(key) -> bool:
    return jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def _raw(key):
    return jax.random.key_data(key) if _typed(key) else key
