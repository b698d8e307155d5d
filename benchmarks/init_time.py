"""Parameter initialisation time of FastSpeech2: Flax's `model.init` op by op against `train/init.py`'s compiled
`init_params`, on the tts_step benchmark's synthetic batch, with no compilation cache (a new process's first init).

    PYTHONPATH=. python3 -m benchmarks.init_time [--presets tiny base] [--batch_size 8]
"""

from __future__ import annotations

import argparse
import time

import jax

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.tts_step import synthetic_batch
from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset
from mmspeech_jax.train.init import init_params


def seconds(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base"])
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"### FastSpeech2 parameter init, batch {args.batch_size}, {jax.devices()[0].device_kind}\n")
    print("| preset | op by op (s) | compiled (s) | max difference |\n|---|---|---|---|")
    for name in args.presets:
        model = FastSpeech2(preset(name, 141))
        batch = synthetic_batch(args.batch_size, 141)
        rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
        # Each timed once, first: op by op, every primitive compiles on its first use (what a new process pays, and
        # what the persistent cache does not keep); a second op-by-op init in the same process takes ~1-3 s.
        eager, compiled = {}, {}
        op_by_op = seconds(lambda: eager.setdefault("p", model.init(rngs, batch, train=False)["params"]))
        jitted = seconds(lambda: compiled.setdefault("p", init_params(model, rngs, batch, train=False)))
        diff = max(float(abs(a - b).max()) for a, b in zip(jax.tree.leaves(eager["p"]), jax.tree.leaves(compiled["p"])))
        print(f"| {name} | {op_by_op:.1f} | {jitted:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
