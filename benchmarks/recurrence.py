"""The aligner's and the ASR's recurrences over frames: sequential, unrolled and blocked (`losses/recurrence.py`).

    python -m benchmarks.recurrence                  # ljspeech TTS shapes (B=16, T=800, N=150), conformer_s CTC
    python -m benchmarks.recurrence --batch_size 48 --record

Each row: median of 5 jitted calls (after compilation) of the forward-sum loss with its gradient, of monotonic
alignment search (no gradient; the blocked form back-tracks by autodiff), and of the CTC loss with its gradient at
the `asr_step` shapes (T/4 = 375 frames after subsampling, 120 labels, 32 symbols), each under each algorithm.
"""

from __future__ import annotations

import argparse
import datetime

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import machine, median_seconds, record
from mmspeech_jax.losses.aligner import forward_sum_loss
from mmspeech_jax.losses.ctc import ctc_loss
from mmspeech_jax.models.aligner import monotonic_alignment_search

ALGORITHMS = ("sequential", "unrolled", "blocked")


def inputs(batch_size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    b, t, n = batch_size, 800, 150
    frames, tokens = rng.integers(400, t + 1, b), rng.integers(60, n + 1, b)
    tts = (jnp.asarray(jax.nn.log_softmax(rng.normal(size=(b, t, n)), axis=-1), jnp.float32),
           jnp.asarray(np.arange(n)[None] < tokens[:, None]), jnp.asarray(np.arange(t)[None] < frames[:, None]))
    tc, lc, v = 375, 120, 33
    asr_frames, labels = rng.integers(125, tc + 1, b), rng.integers(80, lc + 1, b)
    asr = (jnp.asarray(rng.normal(size=(b, tc, v)), jnp.float32), jnp.asarray(np.arange(tc)[None] < asr_frames[:, None]),
           jnp.asarray(rng.integers(1, v, (b, lc)), jnp.int32), jnp.asarray(np.arange(lc)[None] < labels[:, None]))
    return tts, asr


def rows(batch_size: int) -> list[tuple[str, str, float]]:
    tts, asr = inputs(batch_size)
    out = []
    for algorithm in ALGORITHMS:
        forward_sum = jax.jit(jax.value_and_grad(lambda x, tm, fm: forward_sum_loss(x, tm, fm, algorithm=algorithm)))
        mas = jax.jit(lambda x, tm, fm: monotonic_alignment_search(x, tm, fm, algorithm))
        ctc = jax.jit(jax.value_and_grad(lambda x, m, y, ym: ctc_loss(x, m, y, ym, algorithm=algorithm)))
        out += [("forward-sum loss + gradient", algorithm, median_seconds(forward_sum, *tts, repeats=5)),
                ("monotonic alignment search", algorithm, median_seconds(mas, *tts, repeats=5)),
                ("CTC loss + gradient (ASR)", algorithm, median_seconds(ctc, *asr, repeats=5))]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    measured = rows(args.batch_size)
    seconds = {(name, algorithm): s for name, algorithm, s in measured}
    text = (f"### Recurrences over frames, sequential / unrolled / blocked — {datetime.date.today().isoformat()}\n\n"
            f"Command: `python -m benchmarks.recurrence --batch_size {args.batch_size}`  \nMachine: {machine()}\n\n"
            f"| computation (batch {args.batch_size}; TTS T=800, N=150; ASR T=375, L=120) | "
            + " | ".join(ALGORITHMS) + " |\n| --- |" + " --- |" * len(ALGORITHMS) + "\n")
    for name in dict.fromkeys(name for name, _, _ in measured):
        text += f"| {name} | " + " | ".join(f"{seconds[(name, a)] * 1e3:.2f} ms" for a in ALGORITHMS) + " |\n"
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
