"""Parameter initialisation, compiled: `init_params(model, rngs, *inputs, **static) -> params`.

Flax's `model.init` run op by op dispatches every initializer and every layer of the forward pass one at a time, and
in a new process each primitive compiles on its first use: FastSpeech2's first init (batch 8) took 28.5 s (`tiny`)
and 21.6 s (`base`) that way on a 2-core AMD EPYC, compiled 7.4 and 10.2 s (`benchmarks/init_time.py`,
benchmarks/RESULTS.md, 2026-12-03); with the persistent compilation cache a repeated start loads the program. The
values agree with the op-by-op init to float32 rounding (max difference 6e-8).

`inputs` are the arrays (or pytrees of arrays) the model's `__call__` takes positionally; `static` are its Python
keyword arguments (`train=False`), fixed at trace time."""

from __future__ import annotations

import jax


def init_params(model, rngs, *inputs, **static):
    """`model.init(rngs, *inputs, **static)["params"]`, compiled. `rngs`: a key or a dict of keys by collection."""
    return jax.jit(lambda r, *x: model.init(r, *x, **static))(rngs, *inputs)["params"]
