"""A training workdir as the inference tools read it: `config.json` and the newest checkpoint whose parameters
restore (a damaged step is reported in one line, kept, and the one before it used); `strict_json` for what the
trainer and the experiments write into it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from mmspeech_jax.errors import CheckpointDamagedError, CorpusNotFoundError, WorkdirDamagedError, WorkdirMismatchError

# The config.json entries a resumed run must share with the run that wrote the checkpoints (flags such as --steps
# may change between the two; the model may not).
RESUME_KEYS = ("task", "model")


def atomic_write_text(path, text: str) -> Path:
    """Writes `text` to `path` through a temporary file in the same folder and a rename, so a reader (or a run
    killed mid-write) sees the old file or the new one, never half of one. Permissions: 0644 less the umask's
    usual bits, like the files around it."""
    import os

    path = Path(path)
    partial = path.with_name(f".{path.name}.tmp{os.getpid()}")
    partial.write_text(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    return path


def strict_json(obj, **kwargs) -> str:
    """`json.dumps` that writes NaN and +-inf as null (Python's json module would write `NaN`/`Infinity`, which jq,
    JavaScript and most JSON readers reject): a skipped bf16 step's NaN loss, a best loss that was never measured."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(obj), allow_nan=False, **kwargs)


def _flat(value, prefix=""):
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix[:-1]: value}


def check_resumable(workdir, record: dict) -> None:
    """Before a run writes `record` as `workdir/config.json`: when the workdir already holds checkpoints, the
    config.json they were written with must agree with `record` on `RESUME_KEYS`, else `WorkdirMismatchError`
    names the first fields that differ and nothing is written (a rerun with another `--preset` or `--set` used to
    overwrite config.json, leaving checkpoints the inference tools could no longer load, then fail in Orbax)."""
    workdir = Path(workdir)
    path, checkpoints = workdir / "config.json", workdir / "checkpoints"
    if not path.is_file() or not checkpoints.is_dir() or not any(checkpoints.iterdir()):
        return
    stored = json.loads(path.read_text())
    new = json.loads(json.dumps(record))  # tuples -> lists, as they are stored
    for r in (stored, new):  # a FastSpeech2 workdir written before config.json named its task
        r.setdefault("task", "tts")
    old_flat = _flat({k: stored.get(k) for k in RESUME_KEYS})
    new_flat = _flat({k: new.get(k) for k in RESUME_KEYS})
    differ = [k for k in sorted(set(old_flat) | set(new_flat)) if old_flat.get(k) != new_flat.get(k)]
    if differ:
        shown = "; ".join(f"{k}: {old_flat.get(k)!r} there, {new_flat.get(k)!r} now" for k in differ[:3])
        more = f" (+{len(differ) - 3} more)" if len(differ) > 3 else ""
        raise WorkdirMismatchError(f"{workdir} holds checkpoints of another model ({shown}{more}); rerun with the "
                                   f"flags that made it to resume, or pass a new --workdir (nothing was changed)")


def write_run_config(workdir, record: dict, table, *, primary: bool = True):
    """Claims the workdir (`workdir_lock.claim_workdir`: the lock, refused in one line while another process holds
    it; the marker), then writes a training run's `config.json` (`record`) and `symbols.json` (`table`, a
    SymbolTable; None for a model without one, the vocoders) after `check_resumable`. Every process calls it (each checks, so all stop together); only the
    primary claims and writes. Returns the held `WorkdirLock` (None on other processes): the caller releases it
    when its run is done."""
    from mmspeech_jax.workdir_lock import check_workdir_path, claim_workdir, holds

    check_workdir_path(workdir)
    newly = primary and not holds(workdir)
    lock = claim_workdir(workdir, str(record.get("task", "tts"))) if primary else None
    try:
        check_resumable(workdir, record)
    except Exception:
        if newly:
            lock.release()
        raise
    if primary:
        workdir = Path(workdir)
        atomic_write_text(workdir / "config.json", json.dumps(record, indent=1))
        if table is not None:
            table.save(workdir / "symbols.json")
    return lock


def read_workdir_config(workdir) -> dict:
    """config.json of a training workdir; `CorpusNotFoundError` if it is not one."""
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise CorpusNotFoundError(f"{workdir} is not a training workdir (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkdirDamagedError(f"{path} is damaged (not JSON: {exc}); restore it from a backup or retrain") from None
    if not isinstance(config, dict):
        raise WorkdirDamagedError(f"{path} is damaged (a JSON {type(config).__name__}, not an object)")
    return config


def damaged_step_line(step: int, directory, exc: BaseException) -> str:
    """The one line that reports a checkpoint step that does not restore (the step is kept as it is)."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    return f"mmspeech: checkpoint step {step} in {directory} does not restore ({detail}); it is kept, and the step " \
           f"before it is tried"


def restore_params(workdir: Path, report=lambda line: print(line, file=sys.stderr)):
    """The parameters (plain dicts of arrays, on this process's first device) of the newest periodic checkpoint
    whose parameters restore, and its step. Only the parameters are read (not the optimizer state), so a damaged
    optimizer file does not matter. A step that does not restore is reported through `report` (one line) and the
    one before it is tried; `CheckpointDamagedError` when none restores, `CorpusNotFoundError` when there is none.
    After a run that stopped for divergence (`checkpoints/DIVERGED.json`) the best checkpoint (lowest validation
    loss) is read instead, and `report` says so. Works whatever mesh (and however many hosts) wrote the checkpoint."""
    import jax
    import orbax.checkpoint as ocp

    from mmspeech_jax.train.checkpoint_bytes import unreadable_reason

    directory = (Path(workdir) / "checkpoints" / "periodic").absolute()
    diverged = Path(workdir) / "checkpoints" / "DIVERGED.json"
    best = directory.parent / "best"
    if diverged.is_file() and best.is_dir() and any(p.name.isdigit() for p in best.iterdir()):
        report(f"mmspeech: the last training run in {workdir} diverged ({diverged.read_text().strip()}); reading its "
               f"best checkpoint")
        directory = best
    manager = ocp.CheckpointManager(directory) if directory.is_dir() else None
    steps = sorted(manager.all_steps(), reverse=True) if manager else []
    if not steps:
        raise CorpusNotFoundError(f"no complete checkpoint in {directory}; train first")
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    try:
        for step in steps:
            try:
                problem = unreadable_reason(directory / str(step) / "state", prefix="train.params.")
                if problem:  # found without Orbax: it would spill tracebacks (train/checkpoint_bytes.py)
                    raise CheckpointDamagedError(problem)
                metadata = ocp.StandardCheckpointHandler().metadata(directory / str(step) / "state").tree
                params_meta = metadata["train"]["params"]
                target = {"train": {"params": jax.tree_util.tree_map(
                    lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here), params_meta)}}
                restore_args = jax.tree_util.tree_map(
                    lambda m: ocp.ArrayRestoreArgs(global_shape=m.shape, dtype=m.dtype, sharding=here), target)
                restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                    target, restore_args=restore_args, partial_restore=True)))
                return restored["state"]["train"]["params"], step
            except Exception as exc:  # noqa: BLE001 - any failure of one step: report it, try the previous one
                report(damaged_step_line(step, directory, exc))
    finally:
        manager.close()
    raise CheckpointDamagedError(f"no checkpoint in {directory} restores (steps {', '.join(map(str, steps))} "
                                 f"all failed); retrain, or restore the workdir from a backup")
