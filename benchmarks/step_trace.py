"""Where a train step's device time goes: a profiler trace of a few steps, summarised from the trace itself.

    python -m benchmarks.step_trace --model tts --preset ljspeech --batch_size 48 --compute_dtype bfloat16 --out DIR
    python -m benchmarks.step_trace --model asr --preset conformer_s --compute_dtype bfloat16 --out DIR

Compiles the benchmark's step (`benchmarks/tts_step.py` or `asr_step.py`: same model, batch and optimizer), runs
two warm-up steps, then traces `--steps` steps with `jax.profiler.trace(create_perfetto_trace=True)`, each step
waited for. Writes into DIR: `perfetto_trace.json.gz` (open it at ui.perfetto.dev), `step_hlo.txt.gz` (the
compiled step's optimised HLO, to look up what an op in the trace computes) and `trace_summary.md`, printed too.

The summary reads the trace's accelerator processes (`/device:...`): per step, the wall time, the time some kernel
ran (the union of the stream lines' kernel intervals) and the idle rest (launch gaps, host work, waits), then the
ops (the "XLA Ops" line, or kernel names where the trace has no such line) by total time, and the model
components by time where the trace's ops carry JAX's name scopes. A CPU trace has no such processes: the summary
then says so (on the CPU, `asr_step --profile` and `tts_profile` time each component instead).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import tempfile
from pathlib import Path

import jax

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import machine, xla_flags_prefix

SCOPE_KEYS = ("tf_op", "long_name", "name_scope", "scope")  # where a trace's op events may carry the JAX scope


def device_events(trace: dict) -> tuple[dict[tuple[int, int], str], list[dict]]:
    """({(pid, tid): thread name} of accelerator processes, their complete ('X') events)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    device_pids = {e["pid"] for e in events
                   if e.get("ph") == "M" and e.get("name") == "process_name"
                   and str(e.get("args", {}).get("name", "")).startswith("/device:")}
    threads = {(e["pid"], e.get("tid")): str(e.get("args", {}).get("name", ""))
               for e in events if e.get("ph") == "M" and e.get("name") == "thread_name" and e["pid"] in device_pids}
    return threads, [e for e in events if e.get("ph") == "X" and e.get("pid") in device_pids and "dur" in e]


def interval_union(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by (start, end) intervals."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def scope_of(name: str, depth: int = 3) -> str:
    """A JAX name scope ('jit(train_step)/jvp(FastSpeech2)/decoder/block_0/attention/dot_general') cut to its first
    `depth` module names, transformations (jvp, transpose, remat, ...) dropped: 'FastSpeech2/decoder/block_0'."""
    parts = []
    for part in name.split("/"):
        if part.startswith(("jit(", "pjit(")):  # the jitted function itself, not a module
            continue
        while (unwrapped := re.sub(r"^\w+\((.*)\)$", r"\1", part)) != part:  # transpose(jvp(X)) -> X
            part = unwrapped
        if part and part not in ("train_step", "checkpoint", "remat", "while", "body", "cond"):
            parts.append(part)
    return "/".join(parts[:depth]) or "(no scope)"


def summarize(trace: dict, steps: int, top: int = 25) -> str:
    """Markdown summary of a trace of `steps` train steps (see the module docstring)."""
    threads, events = device_events(trace)
    if not events:
        raw = trace["traceEvents"] if isinstance(trace, dict) else trace
        names = sorted({str(e.get("args", {}).get("name")) for e in raw if e.get("name") == "process_name"})
        return (f"No accelerator processes in this trace (a CPU run): nothing to summarise. Processes: "
                f"{', '.join(names) or 'none'}.\n")
    line = lambda e: threads.get((e["pid"], e.get("tid")), "")
    ops = [e for e in events if "XLA Ops" in line(e)]
    modules = [e for e in events if "XLA Modules" in line(e)]
    kernels = [e for e in events if "XLA" not in line(e)]  # the stream lines
    timed = kernels or ops
    busy = interval_union([(e["ts"], e["ts"] + e["dur"]) for e in timed])
    first = min(e["ts"] for e in timed)
    last = max(e["ts"] + e["dur"] for e in timed)
    wall = last - first
    text = (f"Device time per step (trace of {steps} steps, {len(timed)} {'kernel' if kernels else 'op'} events): "
            f"span {wall / steps / 1e3:.2f} ms, some kernel running {busy / steps / 1e3:.2f} ms "
            f"({100 * busy / wall:.1f} %), idle {(wall - busy) / steps / 1e3:.2f} ms.\n")
    if modules:
        text += (f"XLA modules run per step: {len(modules) / steps:.1f} "
                 f"({', '.join(sorted({e['name'] for e in modules})[:5])}).\n")
    lines = collections.Counter()
    for e in events:
        lines[line(e) or "(unnamed)"] += e["dur"]
    text += "\n| trace line | ms per step (sum of its events) |\n| --- | --- |\n"
    for name, dur in lines.most_common(12):
        text += f"| {name} | {dur / steps / 1e3:.3f} |\n"
    table = ops or kernels
    totals, counts = collections.Counter(), collections.Counter()
    for e in table:
        totals[e["name"]] += e["dur"]
        counts[e["name"]] += 1
    whole = sum(totals.values())
    text += (f"\n| {'XLA op' if ops else 'kernel'} | calls per step | ms per step | share |\n| --- | --- | --- | --- |\n")
    for name, dur in totals.most_common(top):
        text += f"| `{name[:90]}` | {counts[name] / steps:.1f} | {dur / steps / 1e3:.3f} | {100 * dur / whole:.1f} % |\n"
    arg_keys = sorted({k for e in table for k in e.get("args", {})})
    scoped = collections.Counter()
    for e in table:
        scope = next((e["args"][k] for k in SCOPE_KEYS if k in e.get("args", {})), None)
        if scope:
            scoped[scope_of(str(scope))] += e["dur"]
    if scoped:
        text += "\n| name scope | ms per step | share |\n| --- | --- | --- |\n"
        for scope, dur in scoped.most_common(top):
            text += f"| `{scope}` | {dur / steps / 1e3:.3f} | {100 * dur / whole:.1f} % |\n"
    text += f"\nArguments the op events carry: {', '.join(arg_keys) or 'none'}.\n"
    return text


def build(model: str, preset_name: str, batch_size: int, compute_dtype: str):
    """(train step, state, batch) as the step benchmark builds them."""
    if model == "tts":
        from benchmarks.tts_step import build as build_tts
        _, _, step, state, batch = build_tts(preset_name, batch_size, compute_dtype=compute_dtype)
    else:
        from benchmarks.asr_step import build as build_asr
        _, _, step, state, batch = build_asr(preset_name, batch_size, compute_dtype)
    return step, state, batch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tts", "asr"), default="tts")
    parser.add_argument("--preset", default=None, help="default: ljspeech (tts), conformer_s (asr)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    preset_name = args.preset or {"tts": "ljspeech", "asr": "conformer_s"}[args.model]
    step_fn, state, batch = build(args.model, preset_name, args.batch_size, args.compute_dtype)
    rng = jax.random.key(0, impl="rbg")
    batch = jax.device_put(batch)
    compiled = jax.jit(step_fn, donate_argnums=0).lower(state, batch, rng).compile()
    args.out.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out / "step_hlo.txt.gz", "wt") as f:
        f.write(compiled.as_text())
    for _ in range(2):
        state, metrics = compiled(state, batch, rng)
        jax.block_until_ready(metrics["loss"])
    with tempfile.TemporaryDirectory() as trace_dir:  # the profiler's own tree (xplane.pb, ...) stays out of DIR
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(args.steps):
                state, metrics = compiled(state, batch, rng)
                jax.block_until_ready(metrics["loss"])
        found = sorted(Path(trace_dir).glob("**/perfetto_trace.json.gz"))
        if not found:
            raise SystemExit(f"the profiler wrote no perfetto_trace.json.gz under {trace_dir}")
        (args.out / "perfetto_trace.json.gz").write_bytes(found[-1].read_bytes())
    summary = (f"### {args.model.upper()} train step trace — {preset_name}, batch {args.batch_size}, "
               f"{args.compute_dtype}\n\nCommand: `{xla_flags_prefix()}python -m benchmarks.step_trace --model {args.model} --preset "
               f"{preset_name} --batch_size {args.batch_size} --compute_dtype {args.compute_dtype} --steps "
               f"{args.steps} --out DIR`  \nMachine: {machine()}\n\n"
               + summarize(json.load(gzip.open(args.out / "perfetto_trace.json.gz")), args.steps))
    (args.out / "trace_summary.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
