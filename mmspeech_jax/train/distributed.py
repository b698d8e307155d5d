"""Multi-host training: one process per host, joined by `jax.distributed.initialize`, before any other JAX call.

    initialize(DistributedConfig("10.0.0.1:1234", num_processes=4, process_id=host))
    mesh = make_mesh(MeshConfig(data=-1, fsdp=8))   # over every process's devices (jax.devices() is global)

Then each process reads only its rows of every global batch (`data/pipeline.py` slices by `jax.process_index()`),
`shard_batch` assembles the global arrays, and Orbax saves and restores the sharded state from all processes
(the workdir must be on a file system every host sees). Only the primary process (index 0) writes logs and
reports. On CPU the processes exchange collectives over Gloo (tested with two processes on one machine).
"""

from __future__ import annotations

import dataclasses

import jax

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-process run: the coordinator's host:port (None: one process), the number of processes and this one's id.
    Checked when built."""
    coordinator_address: str | None = None  # "host:port" of process 0; None: a single process
    num_processes: int = 1
    process_id: int = 0

    def __post_init__(self):
        config_checks.integers(self, num_processes=1, process_id=0)
        if self.coordinator_address is not None and not isinstance(self.coordinator_address, str):
            raise ConfigError(f"coordinator address must be host:port, got {self.coordinator_address!r}")
        if self.coordinator_address is None:
            if self.num_processes != 1 or self.process_id != 0:
                raise ConfigError("num_processes/process_id need a coordinator address (host:port)")
            return
        host, _, port = self.coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"coordinator address must be host:port, got {self.coordinator_address!r}")
        if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
            raise ConfigError(f"process_id {self.process_id} is not in [0, num_processes={self.num_processes})")


def initialize(config: DistributedConfig) -> None:
    """Join the processes (a no-op for a single process). Call before anything else touches JAX devices."""
    if config.coordinator_address is None:
        return
    jax.distributed.initialize(coordinator_address=config.coordinator_address, num_processes=config.num_processes,
                               process_id=config.process_id)


def is_primary() -> bool:
    """True in the process that writes logs, reports and samples."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (a no-op for one process): the others wait for the primary
    to finish its evaluation and reports before they exit (an early exit would trip the shutdown barrier's
    timeout)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def host_copy(tree):
    """A pytree of (possibly multi-process, sharded) arrays -> full NumPy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
