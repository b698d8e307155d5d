"""The training state: a pytree of arrays only, so Orbax saves it as is and shardings map one to one."""

from __future__ import annotations

import flax.struct
import jax
import optax


@flax.struct.dataclass
class TrainState:
    """What a train step carries: the update count, the parameters, the optimizer state and the count of skipped
    (non-finite) updates. A pytree (jit, donate, checkpoint it as a whole)."""
    step: jax.Array  # int32 scalar: optimizer updates applied
    params: optax.Params
    opt_state: optax.OptState
    skipped: jax.Array  # int32 scalar: updates skipped because a gradient was not finite

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation) -> "TrainState":
        """A fresh state. The params are copied, so a step that donates the state never deletes the caller's arrays."""
        import jax.numpy as jnp

        params = jax.tree_util.tree_map(jnp.array, params)
        return cls(jnp.zeros((), jnp.int32), params, tx.init(params), jnp.zeros((), jnp.int32))
