"""A training workdir as the inference tools read it: `config.json` and the latest complete checkpoint's params;
`strict_json` for what the trainer and the experiments write into it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mmspeech_jax.errors import CorpusNotFoundError, WorkdirMismatchError

# The config.json entries a resumed run must share with the run that wrote the checkpoints (flags such as --steps
# may change between the two; the model may not).
RESUME_KEYS = ("task", "model")


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
    old_flat = _flat({k: stored.get(k) for k in RESUME_KEYS})
    new_flat = _flat({k: new.get(k) for k in RESUME_KEYS})
    differ = [k for k in sorted(set(old_flat) | set(new_flat)) if old_flat.get(k) != new_flat.get(k)]
    if differ:
        shown = "; ".join(f"{k}: {old_flat.get(k)!r} there, {new_flat.get(k)!r} now" for k in differ[:3])
        more = f" (+{len(differ) - 3} more)" if len(differ) > 3 else ""
        raise WorkdirMismatchError(f"{workdir} holds checkpoints of another model ({shown}{more}); rerun with the "
                                   f"flags that made it to resume, or pass a new --workdir (nothing was changed)")


def write_run_config(workdir, record: dict, table, *, primary: bool = True) -> None:
    """A training run's `config.json` (`record`) and `symbols.json` (`table`, a SymbolTable), after
    `check_resumable`. Every process calls it (each checks, so all stop together); only the primary writes."""
    check_resumable(workdir, record)
    if primary:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(json.dumps(record, indent=1))
        table.save(workdir / "symbols.json")


def read_workdir_config(workdir) -> dict:
    """config.json of a training workdir; `CorpusNotFoundError` if it is not one."""
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise CorpusNotFoundError(f"{workdir} is not a training workdir (no config.json)")
    return json.loads(path.read_text())


def restore_params(workdir: Path):
    """Latest complete periodic checkpoint's params (plain dicts of arrays) and its step."""
    import orbax.checkpoint as ocp

    directory = (workdir / "checkpoints" / "periodic").absolute()
    manager = ocp.CheckpointManager(directory) if directory.is_dir() else None
    step = manager.latest_step() if manager else None
    if step is None:
        raise CorpusNotFoundError(f"no complete checkpoint in {directory}; train first")
    # Restore onto this process's first device, whatever mesh (and however many hosts) wrote the checkpoint.
    import jax

    metadata = ocp.StandardCheckpointHandler().metadata(directory / str(step) / "state").tree
    here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here), metadata)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    manager.close()
    return restored["state"]["train"]["params"], step
