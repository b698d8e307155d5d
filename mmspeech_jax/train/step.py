"""Pure step functions for every model: `train_step(state, batch, rng) -> (state, metrics)` and `eval_step`.

A model plugs in `loss_fn(params, batch, rng, train, step) -> (loss, parts)`. The step skips the update when the
loss or any gradient is not finite (the state keeps its parameters and optimizer state; `skipped` counts it), so a
bad batch or a bf16 overflow is reported, not silently written into the weights. The dropout key is
`fold_in(rng, step)`: the same (seed, step) gives the same randomness after any restart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmspeech_jax.train.state import TrainState


def make_train_step(loss_fn, tx: optax.GradientTransformation):
    def train_step(state: TrainState, batch, rng):
        rng = jax.random.fold_in(rng, state.step)
        (loss, parts), grads = jax.value_and_grad(
            lambda p: loss_fn(p, batch, rng, True, state.step), has_aux=True)(state.params)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = TrainState(state.step + 1, keep(params, state.params), keep(opt_state, state.opt_state),
                               state.skipped + (~finite).astype(jnp.int32))
        return new_state, {"loss": loss, **parts, "grad_norm": grad_norm, "skipped": new_state.skipped}

    return train_step


def make_eval_step(loss_fn):
    def eval_step(state: TrainState, batch, rng):
        loss, parts = loss_fn(state.params, batch, rng, False, state.step)
        return {"loss": loss, **parts}

    return eval_step
