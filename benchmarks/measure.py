"""What every benchmark here needs: the machine's description, median wall-clock times, the matmul peaks that MFU is
measured against (measured here, and the vendor's datasheet figure on a known accelerator), XLA's FLOP count of a
compiled step, the compile count of a step over one epoch of bucketed shapes, and `record` (append an entry to
benchmarks/RESULTS.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from benchmarks.cpu import cpu_description


RESULTS = Path(__file__).with_name("RESULTS.md")
_STARTED = time.perf_counter()  # when the benchmark process imported this module; read-only


def xla_flags_prefix() -> str:
    """`XLA_FLAGS=... ` when the variable is set (it changes what is measured, e.g. GPU autotuning off), else "":
    the start of an entry's Command line, so the entry says how it was run."""
    import os

    flags = os.environ.get("XLA_FLAGS", "").strip()
    return f"XLA_FLAGS='{flags}' " if flags else ""


def progress(message: str) -> None:
    """One line on stderr, flushed at once, with the seconds since the process began: a benchmark stopped by a
    time limit (the device suite's) still says which phase it was in."""
    print(f"[{time.perf_counter() - _STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def record(entry: str) -> None:
    """Append a markdown entry (heading, command, machine, table) to benchmarks/RESULTS.md."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    RESULTS.write_text(existing.rstrip() + "\n\n" + entry)


def judged_tts_parser(description: str) -> argparse.ArgumentParser:
    """The flags of a benchmark that judges a FastSpeech2 workdir by an ASR workdir: --tts, --asr, --utterances
    (the first N sentences), --out (JSON) and --record (append to RESULTS.md); the caller adds its own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tts", required=True, help="a FastSpeech2 workdir")
    p.add_argument("--asr", required=True, help="the ASR workdir that judges")
    p.add_argument("--utterances", type=int, default=None, help="the first N sentences (default: all)")
    p.add_argument("--out", default=None, help="also write the full results as JSON")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    return p


def asr_natural_parser(description: str) -> argparse.ArgumentParser:
    """The flags of a benchmark that runs ASR workdirs on the natural evaluation set: --asr (repeatable),
    --utterances (the first N sentences), --out (JSON) and --record (append to RESULTS.md); the caller adds its own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr", action="append", required=True, help="an ASR workdir or export (repeatable)")
    p.add_argument("--utterances", type=int, default=None, help="the first N natural sentences (default: all)")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    return p


def natural_recordings(utterances: int | None = None) -> tuple[list[tuple[np.ndarray, int]], list[str]]:
    """([(float32 (S,) samples, sample rate)], [text]) of the first `utterances` sentences of the natural evaluation
    set (None: all), as espeak-ng en-us speaks them (`synthetic_corpus.natural_eval_config`)."""
    from mmspeech_jax.data.synthetic_corpus import generate_corpus, natural_eval_config

    corpus = generate_corpus(natural_eval_config(num_utterances=utterances), progress=False)
    return [(corpus.audio(u), u.sample_rate) for u in corpus.utterances], [u.text for u in corpus.utterances]


def publish(text: str, results, out=None, append: bool = False) -> None:
    """A benchmark's ending: print its markdown `text`, write `results` as JSON to `out` (a path, if given) and,
    with `append`, add `text` to benchmarks/RESULTS.md (`record`)."""
    print(text)
    if out:
        Path(out).write_text(json.dumps(results, indent=1))
    if append:
        record(text)


# Dense matrix-unit bf16 peaks, FLOP/s, from NVIDIA's datasheets (which print twice these, "with sparsity"), matched
# in order against `device_kind`: H100 PCIe 1513 -> 756.5 T; H100 SXM and H200 1979 -> 989.5 T; A100 624 -> 312 T.
DATASHEET_BF16_PEAKS = (("H100 PCIe", 756.5e12), ("H100", 989.5e12), ("H200", 989.5e12), ("A100", 312e12))


def machine() -> str:
    """The CPU (and the accelerators, where JAX runs on them), the JAX version and backend."""
    devices = jax.devices()
    if devices[0].platform == "cpu":
        return f"{cpu_description()}, jax {jax.__version__} on cpu"
    return (f"{len(devices)} x {devices[0].device_kind} ({devices[0].platform}); host {cpu_description()}; "
            f"jax {jax.__version__}")


def datasheet_peak(compute_dtype: str) -> float | None:
    """The vendor's dense peak for `compute_dtype` on this JAX backend's first device; None when not known (every
    CPU, float32 anywhere, an accelerator not in DATASHEET_BF16_PEAKS)."""
    device = jax.devices()[0]
    if device.platform == "cpu" or compute_dtype != "bfloat16":
        return None
    return next((peak for name, peak in DATASHEET_BF16_PEAKS if name in device.device_kind), None)


def mfu_peak(compute_dtype: str) -> tuple[float, str]:
    """(peak FLOP/s for MFU, a sentence saying what it is): the datasheet peak where one is known, else the measured
    matmul peak (`matmul_peak`); the measured peak is named in the sentence either way."""
    measured = matmul_peak(compute_dtype)
    sheet = datasheet_peak(compute_dtype)
    if sheet is None:
        return measured, f"MFU against the measured {compute_dtype} matmul peak, {measured / 1e12:.3g} TFLOP/s."
    return sheet, (f"MFU against {sheet / 1e12:.1f} TFLOP/s ({jax.devices()[0].device_kind} datasheet, dense "
                   f"{compute_dtype}); measured {compute_dtype} matmul peak {measured / 1e12:.1f} TFLOP/s.")


def median_seconds(fn, *args, repeats: int = 3) -> float:
    """Median wall time of fn(*args) after one warm-up call (compilation excluded), results waited for."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def matmul_peak(dtype: str = "float32", size: int | None = None, repeats: int = 5) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) matmul in `dtype` on JAX's default device: 2048 on the CPU,
    8192 on an accelerator (big enough to keep every matrix unit busy). Random operands: zeros run faster on GPUs."""
    size = size or (2048 if jax.devices()[0].platform == "cpu" else 8192)
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times)


def time_train_step(step_fn, state, batch, steps: int) -> dict:
    """Compile `step_fn` (jit, donated state) for `batch`, then time `steps` steps after compilation.

    Returns {"compile_s", "flops" (XLA cost analysis), "step_s" (median), "state" (after the steps)}."""
    step = jax.jit(step_fn, donate_argnums=0)
    rng = jax.random.key(0, impl="rbg")  # as the trainer
    batch = jax.device_put(batch)  # on the device once: the steps time compute, not the host-to-device copy
    progress("compiling the train step")
    start = time.perf_counter()
    compiled = step.lower(state, batch, rng).compile()
    compile_seconds = time.perf_counter() - start
    progress(f"compiled in {compile_seconds:.1f} s")
    flops = compiled_flops(compiled)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        state, metrics = compiled(state, batch, rng)
        jax.block_until_ready(metrics["loss"])
        times.append(time.perf_counter() - start)
        progress(f"step {i + 1}/{steps}: {times[-1] * 1e3:.1f} ms")
    return {"compile_s": compile_seconds, "flops": flops, "step_s": float(np.median(times)), "state": state}


def step_flops(step_fn, state, batch) -> float:
    """XLA's FLOP count of `step_fn(state, batch, rng)` compiled as the benchmarks run it (not executed)."""
    return compiled_flops(jax.jit(step_fn).lower(state, batch, jax.random.key(0, impl="rbg")).compile())


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled function, from XLA's cost analysis (nan when unavailable)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def add_epoch_compilations_flag(parser) -> None:
    """`--epoch_compilations` / `--no-epoch_compilations` (default on) for the step benchmarks."""
    parser.add_argument("--epoch_compilations", action=argparse.BooleanOptionalAction, default=True,
                        help="also count the step's compilations over one epoch of bucketed data (`tiny` preset; "
                             "the count does not depend on the device)")


def epoch_compilations_sentence(compiles: int, shapes: int, batches: int) -> str:
    return (f"Compilations of the train step over one epoch of bucketed data (`tiny` preset, {batches} batches): "
            f"{compiles}, for {shapes} bucket shapes.\n")


def epoch_compilations(make_step, make_batch, frames, tokens, batch_size: int = 16,
                       num_buckets: int = 4) -> tuple[int, int, int]:
    """Compilations of a jitted train step over one epoch of bucketed batches: (compiles, shapes, batches).

    `frames`/`tokens` are per-utterance lengths; the epoch plan and padded shapes come from the pipeline's own
    `plan_buckets`/`epoch_batches`. `make_batch(shape, frame_range, token_range, seed)` builds a batch of that
    padded shape; `make_step(first_batch)` returns (step, state) with step(state, batch, rng) -> (state, metrics).
    """
    from mmspeech_jax.data.pipeline import epoch_batches, plan_buckets

    frames, tokens = np.asarray(frames), np.asarray(tokens)
    shapes, bucket_of = plan_buckets(frames, tokens, tokens, num_buckets)
    batches = epoch_batches(bucket_of, batch_size, seed=0, epoch=0)
    traces, step, state = [], None, None
    rng = jax.random.key(0, impl="rbg")
    for b, positions in batches:
        batch = make_batch(shapes[b], (int(frames[positions].min()), int(frames[positions].max())),
                           (int(tokens[positions].min()), int(tokens[positions].max())), b)
        if step is None:
            inner, state = make_step(batch)

            def counted(state, batch, rng):
                traces.append(1)  # runs once per trace, i.e. once per compilation
                return inner(state, batch, rng)

            step = jax.jit(counted, donate_argnums=0)
        state, metrics = step(state, batch, rng)
    jax.block_until_ready(metrics["loss"])
    return len(traces), len(shapes), len(batches)
