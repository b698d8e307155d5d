"""Parameter initialisation, compiled: `init_params(model, rngs, *inputs, **static) -> params`.

Flax's `model.init` run op by op dispatches every initializer and every layer of the forward pass one at a time: for
FastSpeech2 (the `tiny` and the `base` preset alike, batch 8) that took ~28 s on a 2-core AMD EPYC, compiled 8-11 s
(2026-12-03); with the persistent compilation cache a repeated start loads the program instead. The values agree
with the op-by-op init to float32 rounding (measured max difference 6e-8); a resumed run's parameters come from its
checkpoint, not from the init.

`inputs` are the arrays (or pytrees of arrays) the model's `__call__` takes positionally; `static` are its Python
keyword arguments (`train=False`), fixed at trace time."""

from __future__ import annotations

import jax


def init_params(model, rngs, *inputs, **static):
    """`model.init(rngs, *inputs, **static)["params"]`, compiled. `rngs`: a key or a dict of keys by collection."""
    return jax.jit(lambda r, *x: model.init(r, *x, **static))(rngs, *inputs)["params"]
