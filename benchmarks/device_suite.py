"""The benchmarks to run when a GPU is lent, as one prepared command with a time budget.

    python3 -m benchmarks.device_suite --out "$OUT"                  # on the GPU machine (timeout_s=510)
    python -m benchmarks.device_suite --out /tmp/suite --smoke       # the same plumbing on the CPU, tiny presets

Runs, most important first, each in its own process with its own time limit, skipping any whose limit no longer
fits in `--budget_s`:
  1. `tts_step`: the `ljspeech` preset, batch 48, bf16 (the issue's MFU target), 20 timed steps;
  2. `recurrence`: the aligner's and the CTC's recurrences over frames, sequential, unrolled and blocked, batch 48;
  3. `step_trace`: a profiler trace of the step of 1 (what limits it);
  4. `asr_step`: `conformer_s`, batch 16, bf16;
  5. `tts_step` as 1 with the sequential recurrences (1 runs the blocked ones, "auto" off the CPU);
  6. `tts_step` at batch 48 in float32 (for the bf16 speed-up).
Writes into OUT: `suite.log` (every command's output), `entries.md` (the benchmark entries, ready to append to
benchmarks/RESULTS.md) and the trace files of `step_trace`. Needs only jax, flax, optax, chex and numpy (the
model zoo imports without its data layer), which the GPU image has.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


# A lease is 15 device minutes, a machine's start 1-2 of them: 450 s of runs (`run` with timeout_s=510) leaves a few
# minutes to rerun one step that failed.
BUDGET_S = 450
# The CPU smoke runs (tiny presets) get twice the GPU runs' limits: alone on 2 slow cores the recurrence run took
# 113 s of its 120 s, and beside a second pytest worker it ran past it.
SMOKE_LIMIT_SCALE = 2


def plan(smoke: bool, out: Path) -> list[tuple[str, list[str], int]]:
    """(name, argv after `python -m`, time limit in seconds) of each run, in order."""
    if smoke:
        tts = ["--preset", "tiny", "--batch_size", "2", "--steps", "1"]
        asr = ["--preset", "tiny", "--batch_size", "2", "--steps", "1"]
        trace = ["--model", "tts", "--preset", "tiny", "--batch_size", "2", "--steps", "1"]
    else:
        tts = ["--preset", "ljspeech", "--batch_size", "48", "--steps", "20"]
        asr = ["--preset", "conformer_s", "--batch_size", "16", "--steps", "20"]
        trace = ["--model", "tts", "--preset", "ljspeech", "--batch_size", "48", "--steps", "3"]
    fast = ["--no-epoch_compilations"]  # compile counts do not depend on the device; the CPU entries have them
    recurrence = ["--batch_size", "2" if smoke else "48"]
    runs = [
        ("tts bf16", ["benchmarks.tts_step", *tts, "--compute_dtype", "bfloat16", *fast], 210),
        ("recurrences", ["benchmarks.recurrence", *recurrence], 120),
        ("tts trace", ["benchmarks.step_trace", *trace, "--compute_dtype", "bfloat16", "--out", str(out)], 120),
        ("asr bf16", ["benchmarks.asr_step", *asr, "--compute_dtype", "bfloat16", *fast], 150),
        ("tts bf16 sequential", ["benchmarks.tts_step", *tts, "--compute_dtype", "bfloat16", "--recurrence",
                                 "sequential", *fast], 180),
        ("tts f32", ["benchmarks.tts_step", *tts, "--compute_dtype", "float32", *fast], 150),
    ]
    return [(name, argv, limit * SMOKE_LIMIT_SCALE) for name, argv, limit in runs] if smoke else runs


def entry_of(output: str) -> str:
    """The benchmark entry a command printed: from its first '### ' heading to the end."""
    start = output.find("### ")
    return output[start:].strip() + "\n" if start >= 0 else ""


def environment() -> str:
    """Device, driver and package versions, as the machine reports them."""
    lines = []
    for argv in (["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv"],
                 [sys.executable, "-c", "import jax, flax, optax, chex, numpy; print('jax', jax.__version__, "
                  "jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'chex', chex.__version__, "
                  "'numpy', numpy.__version__)"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            lines.append((done.stdout + done.stderr).strip())
        except (OSError, subprocess.TimeoutExpired) as error:
            lines.append(f"{argv[0]}: {error}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget_s", type=float, default=BUDGET_S, help="skip a run whose limit would end past this")
    parser.add_argument("--smoke", action="store_true", help="tiny presets and one step: check the plumbing on a CPU")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log, entries = args.out / "suite.log", args.out / "entries.md"
    start = time.monotonic()
    log.write_text(environment())
    entries.write_text("")
    print(log.read_text(), flush=True)
    for name, argv, limit in plan(args.smoke, args.out):
        elapsed = time.monotonic() - start
        if elapsed + limit > args.budget_s:
            line = f"== {name}: skipped ({elapsed:.0f} s spent, its {limit} s limit would pass the budget)\n"
        else:
            t0 = time.monotonic()
            try:
                done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=limit)
                output, status = done.stdout + done.stderr, f"exit {done.returncode}"
                if done.returncode == 0:
                    with entries.open("a") as f:
                        f.write(entry_of(done.stdout) + "\n")
            except subprocess.TimeoutExpired as error:
                output = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
                status = f"timed out after {limit} s"
            line = f"== {name}: {status} in {time.monotonic() - t0:.0f} s: python -m {' '.join(argv)}\n{output}\n"
        with log.open("a") as f:
            f.write(line)
        print(line, flush=True)


if __name__ == "__main__":
    main()
