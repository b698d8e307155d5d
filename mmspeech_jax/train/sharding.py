"""Sharded step functions over a `jax.sharding.Mesh` with axes ("data", "fsdp"), for any device count.

    mesh = make_mesh(MeshConfig(data=2, fsdp=4))                 # 8 devices
    state_sharding = state_shardings(state, mesh)                # params + optimizer state: FSDP by shape rule
    train_step, eval_step = make_sharded_steps(loss_fn, tx, state_sharding, mesh)
    state = jax.device_put(state, state_sharding)
    state, metrics = train_step(state, shard_batch(batch, mesh), rng)

Rules (one place, no per-model code):
  * batches: the leading (batch) axis is split over both mesh axes, ("data", "fsdp"): every device holds
    batch_size / devices examples (FSDP is data parallel too);
  * parameters and optimizer-state leaves: with fsdp > 1, a leaf of at least `min_shard_size` elements is split
    along its largest axis that `fsdp` divides (the optimizer moments have their parameter's shape, so they follow
    it); everything else — scalars, small leaves, leaves with no divisible axis — is replicated. With fsdp = 1 the
    state is fully replicated (plain data parallelism).
The step is the same pure `train_step(state, batch, rng)` as on one device, compiled by `jax.jit` with explicit
in/out shardings; XLA inserts the gradient all-reduce and the FSDP all-gathers. No pmap.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.step import make_eval_counts, make_eval_step, make_train_step

AXES = ("data", "fsdp")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """A (data, fsdp) device mesh: devices along "data" (-1: all that fsdp leaves), along "fsdp", and the smallest
    parameter leaf that is sharded. Checked when built."""
    data: int = -1  # devices along "data"; -1: all the devices fsdp leaves
    fsdp: int = 1
    min_shard_size: int = 1024  # smaller parameter leaves stay replicated

    def __post_init__(self):
        config_checks.integers(self, fsdp=1, min_shard_size=1)
        if self.data != -1:
            config_checks.integer(self, "data", 1)  # -1 (all the devices fsdp leaves) or a device count


def make_mesh(config: MeshConfig = MeshConfig(), devices=None) -> Mesh:
    """The `jax.sharding.Mesh` of `config` over `devices` (default: all); `ConfigError` when they cannot form it."""
    devices = list(jax.devices() if devices is None else devices)
    if config.fsdp < 1 or len(devices) % config.fsdp:
        raise ConfigError(f"MeshConfig.fsdp={config.fsdp} does not divide the {len(devices)} devices")
    data = len(devices) // config.fsdp if config.data == -1 else config.data
    if data * config.fsdp != len(devices):
        raise ConfigError(f"mesh data={data} x fsdp={config.fsdp} needs {data * config.fsdp} devices, "
                          f"{len(devices)} are available")
    return Mesh(np.asarray(devices).reshape(data, config.fsdp), AXES)


def leaf_spec(shape: tuple[int, ...], fsdp: int, min_shard_size: int) -> P:
    """The partition of one parameter/optimizer leaf (see the module docstring)."""
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_shard_size:
        return P()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % fsdp == 0:
            return P(*([None] * axis + ["fsdp"]))
    return P()


def state_shardings(state, mesh: Mesh, min_shard_size: int = MeshConfig.min_shard_size):
    """A pytree of `NamedSharding` like `state` (a TrainState or any pytree of arrays)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree_util.tree_map(lambda x: NamedSharding(mesh, leaf_spec(tuple(np.shape(x)), fsdp, min_shard_size)),
                                  state)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches split along their leading axis over both mesh axes."""
    return NamedSharding(mesh, P(AXES))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Host arrays (this process's rows) -> global arrays split along the batch axis. On one host this is a
    `device_put`; on several, each process passes its own slice of the global batch (the pipeline's host shard)."""
    sharding = batch_sharding(mesh)
    devices = mesh.devices.size
    for key, value in batch.items():
        if np.ndim(value) == 0 or np.shape(value)[0] % (devices // jax.process_count()):
            raise ConfigError(f"batch key {key!r} with shape {np.shape(value)}: the batch axis must divide evenly "
                              f"over the {devices} devices")
    if jax.process_count() == 1:
        return jax.device_put(batch, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def make_sharded_steps(loss_fn, tx, state_sharding, mesh: Mesh, micro_batches: int = 1):
    """(train_step, eval_step, eval_counts) jitted with explicit shardings; the train step donates its state and
    accumulates gradients over `micro_batches` (train/step.py)."""
    replicated = NamedSharding(mesh, P())
    batch = batch_sharding(mesh)
    train_step = jax.jit(make_train_step(loss_fn, tx, micro_batches), in_shardings=(state_sharding, batch, replicated),
                         out_shardings=(state_sharding, replicated), donate_argnums=0)
    jitted_eval = jax.jit(make_eval_step(loss_fn), in_shardings=(state_sharding, batch, replicated, replicated),
                          out_shardings=replicated)
    eval_step = lambda state, batch_, rng, counts=None: jitted_eval(state, batch_, rng, counts)
    eval_counts = jax.jit(make_eval_counts(loss_fn), in_shardings=(state_sharding, batch, replicated),
                          out_shardings=replicated)
    return train_step, eval_step, eval_counts
