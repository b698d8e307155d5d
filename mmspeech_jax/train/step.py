"""Pure step functions for every model: `train_step(state, batch, rng) -> (state, metrics)` and `eval_step`.

A model plugs in `loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts)`, its loss a weighted sum
of ratios whose counts come from the masks (`losses/ratios.py`; `parts["counts"]` reports them). The step skips the
update when the loss or any gradient is not finite (the state keeps its parameters and optimizer state; `skipped`
counts it), so a bad batch or a bf16 overflow is reported, not silently written into the weights. The dropout key
is `fold_in(rng, step)`: the same (seed, step) gives the same randomness after any restart.

Gradient accumulation (`micro_batches=M`): the batch's rows are dealt into M micro-batches (row i to micro-batch
i mod M, so each device's rows feed every micro-batch); a first pass sums each micro-batch's counts (XLA keeps only
the mask sums it needs), then a `lax.scan` (unrolled on CPU, see `accumulated_gradients`) adds up the gradients
of `loss_fn(..., counts=total counts)` one micro-batch at a time. The result is the one-large-batch gradient, loss
and parts (exactly, up to float32 summation order) with the activations of one micro-batch in memory. Micro-batch m
draws its randomness from `fold_in(key, m)`, so dropout and SpecAugment masks differ from the unsplit batch's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.state import TrainState


def split_micro_batches(batch: dict, micro_batches: int) -> dict:
    """(B, ...) leaves -> (M, B / M, ...): row i goes to micro-batch i mod M."""
    def split(x):
        if x.shape[0] % micro_batches:
            raise ConfigError(f"batch of {x.shape[0]} rows does not split into {micro_batches} micro-batches")
        return jnp.swapaxes(x.reshape(x.shape[0] // micro_batches, micro_batches, *x.shape[1:]), 0, 1)

    return jax.tree_util.tree_map(split, batch)


def _without_counts(parts: dict) -> dict:
    return {k: v for k, v in parts.items() if k != "counts"}


def accumulated_gradients(loss_fn, params, batch, rng, step, micro_batches: int = 1, unroll: bool | None = None):
    """(loss, parts without counts, gradients) of `loss_fn` on `batch`, over `micro_batches` micro-batches.

    `unroll`: unroll the micro-batch loop. None: on the CPU backend only, where XLA ran the rolled loop ~24x slower
    (benchmarks/RESULTS.md: 112 s vs 4.6 s unrolled per step, FastSpeech2 base, 2 micro-batches); a rolled loop is
    what keeps only one micro-batch's activations alive on an accelerator."""
    if micro_batches == 1:
        (loss, parts), grads = jax.value_and_grad(lambda p: loss_fn(p, batch, rng, True, step),
                                                  has_aux=True)(params)
        return loss, _without_counts(parts), grads
    micro = split_micro_batches(batch, micro_batches)
    keys = jax.vmap(lambda m: jax.random.fold_in(rng, m))(jnp.arange(micro_batches))
    take = lambda m: jax.tree_util.tree_map(lambda x: x[m], micro)
    local = [loss_fn(params, take(m), keys[m], True, step)[1] for m in range(micro_batches)]
    if "counts" not in local[0]:
        raise ConfigError("gradient accumulation needs a loss_fn that reports parts['counts'] (losses/ratios.py)")
    counts = jax.tree_util.tree_map(lambda *c: sum(c), *[parts["counts"] for parts in local])

    def one(p, mb, key):
        loss, parts = loss_fn(p, mb, key, True, step, counts=counts)
        return loss, _without_counts(parts)

    grad_fn = jax.value_and_grad(one, has_aux=True)
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                   jax.eval_shape(grad_fn, params, take(0), keys[0]))

    def body(total, xs):
        return jax.tree_util.tree_map(jnp.add, total, grad_fn(params, *xs)), None

    if unroll is None:
        unroll = jax.default_backend() == "cpu"
    ((loss, parts), grads), _ = jax.lax.scan(body, zeros, (micro, keys), unroll=bool(unroll))
    return loss, parts, grads


def make_train_step(loss_fn, tx: optax.GradientTransformation, micro_batches: int = 1, unroll: bool | None = None):
    """loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts), tx -> a pure step (state, batch, rng) ->
    (state, metrics) to jit: gradients (summed exactly over `micro_batches`), the update, or a skipped update when a
    gradient is not finite (counted in `state.skipped`); metrics: loss, its parts, grad_norm, skipped."""
    if micro_batches < 1:
        raise ConfigError(f"micro_batches must be >= 1, got {micro_batches}")

    def train_step(state: TrainState, batch, rng):
        rng = jax.random.fold_in(rng, state.step)
        loss, parts, grads = accumulated_gradients(loss_fn, state.params, batch, rng, state.step, micro_batches,
                                                   unroll)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = TrainState(state.step + 1, keep(params, state.params), keep(opt_state, state.opt_state),
                               state.skipped + (~finite).astype(jnp.int32))
        return new_state, {"loss": loss, **parts, "grad_norm": grad_norm, "skipped": new_state.skipped}

    return train_step


def make_eval_step(loss_fn):
    """loss_fn -> eval_step(state, batch, rng, counts=None) -> {"loss", parts} in eval mode (no dropout), to jit.
    With `counts` (the whole evaluation set's counts, `make_eval_counts` summed over its batches) every ratio divides
    by the set's count, so the sum of the outputs over the set's batches is the set's exact loss and parts
    (losses/ratios.py; `train/evaluation.py`); without, the batch's own masked means."""
    def eval_step(state: TrainState, batch, rng, counts=None):
        loss, parts = loss_fn(state.params, batch, rng, False, state.step, counts=counts)
        return {"loss": loss, **_without_counts(parts)}

    return eval_step


def make_eval_counts(loss_fn):
    """loss_fn -> (state, batch, rng) -> the batch's `parts["counts"]` ({name: scalar}; {} when the loss reports
    none), to jit: only the mask sums survive XLA's dead-code elimination, so it costs little next to `eval_step`."""
    def eval_counts(state: TrainState, batch, rng):
        return loss_fn(state.params, batch, rng, False, state.step)[1].get("counts", {})

    return eval_counts
