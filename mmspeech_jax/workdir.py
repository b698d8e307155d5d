"""A training workdir as the inference tools read it: `config.json` and the latest complete checkpoint's params;
`strict_json` for what the trainer and the experiments write into it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from mmspeech_jax.errors import CorpusNotFoundError


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
