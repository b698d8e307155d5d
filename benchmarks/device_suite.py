"""The benchmarks to run when a GPU is lent, as one prepared command with a time budget.

    python3 -m benchmarks.device_suite --out "$OUT"                  # on the GPU machine (timeout_s=510)
    python -m benchmarks.device_suite --out /tmp/suite --smoke       # the same plumbing on the CPU, tiny presets

Runs, most important first, each in its own process with its own time limit, skipping any whose limit no longer
fits in `--budget_s`:
  1. `tts_step`: the `ljspeech` preset, batch 48, bf16 (the issue's MFU target), 10 timed steps, with XLA's GPU
     autotuning off (`XLA_FLAGS=--xla_gpu_autotune_level=0`);
  2. `asr_step`: `conformer_s`, batch 16, bf16, autotuning off;
  3. `tts_step` as 1 with XLA's default autotuning (what a user's run compiles);
  3b. `vocoder_step`: HiFi-GAN V1 and the paper-sized iSTFT vocoder, bf16, the papers' batch and crop, both phases,
     with their real-time factor (issue #28), autotuning off;
  3c. `joint_step`: the joint speech–text model's pretraining streams and joint fine-tuning step, base preset,
     batch 48, bf16, MFU (issue #29), autotuning off;
  4. `step_trace`: a profiler trace of the step of 1 (what limits it);
  5. `tts_step` as 1 with the sequential recurrences (1 runs the blocked ones, "auto" off the CPU);
  6. `tts_step` as 1 in float32 (for the bf16 speed-up);
  7. `recurrence`: the aligner's and the CTC's recurrences over frames, sequential, unrolled and blocked, batch 48.
Why this order: on the first lease (2026-12-04, H200) the step of 3 did not finish compiling in 220 s (blocked
recurrences) nor in 115 s (sequential), with XLA's autotuner timing kernels throughout, and no step time came back;
7 was measured then. Every run streams its output (progress lines with seconds included) into suite.log as it goes,
so a run stopped at its limit still says which phase it was in.
Writes into OUT: `suite.log` (every command's output), `entries.md` (the benchmark entries, ready to append to
benchmarks/RESULTS.md) and the trace files of `step_trace`. Needs only jax, flax, optax, chex and numpy (the
model zoo imports without its data layer; `tests/test_imports.py`), which the GPU image has.
"""

from __future__ import annotations

import argparse
import os
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


def plan(smoke: bool, out: Path) -> list[tuple[str, list[str], int, dict]]:
    """(name, argv after `python -m`, time limit in seconds, environment variables to add) of each run, in order."""
    if smoke:
        tts = ["--preset", "tiny", "--batch_size", "2", "--steps", "1"]
        asr = ["--preset", "tiny", "--batch_size", "2", "--steps", "1"]
        trace = ["--model", "tts", "--preset", "tiny", "--batch_size", "2", "--steps", "1"]
    else:
        tts = ["--preset", "ljspeech", "--batch_size", "48", "--steps", "10"]
        asr = ["--preset", "conformer_s", "--batch_size", "16", "--steps", "20"]
        trace = ["--model", "tts", "--preset", "ljspeech", "--batch_size", "48", "--steps", "3"]
    vocoders = (["--presets", "istft:cpu", "--batch_size", "2", "--segment_frames", "8", "--steps", "1",
                 "--discriminator_scale", "0.125"] if smoke else
                ["--presets", "hifigan:v1,istft:paper", "--batch_size", "16", "--steps", "5"])
    joint = (["--preset", "tiny", "--batch_size", "2", "--steps", "1"] if smoke else
             ["--preset", "base", "--batch_size", "48", "--steps", "5"])
    fast = ["--no-epoch_compilations"]  # compile counts do not depend on the device; the CPU entries have them
    no_autotune = {"XLA_FLAGS": "--xla_gpu_autotune_level=0"}
    recurrence = ["--batch_size", "2" if smoke else "48"]
    runs = [
        ("tts bf16, autotuning off", ["benchmarks.tts_step", *tts, "--compute_dtype", "bfloat16", *fast], 240,
         no_autotune),
        ("asr bf16, autotuning off", ["benchmarks.asr_step", *asr, "--compute_dtype", "bfloat16", *fast], 120,
         no_autotune),
        ("tts bf16", ["benchmarks.tts_step", *tts, "--compute_dtype", "bfloat16", *fast], 300, {}),
        ("vocoders bf16, autotuning off", ["benchmarks.vocoder_step", *vocoders, "--compute_dtype", "bfloat16"], 180,
         no_autotune),
        ("joint bf16, autotuning off", ["benchmarks.joint_step", *joint, "--compute_dtype", "bfloat16"], 150,
         no_autotune),
        ("tts trace, autotuning off", ["benchmarks.step_trace", *trace, "--compute_dtype", "bfloat16", "--out",
                                       str(out)], 150, no_autotune),
        ("tts bf16 sequential, autotuning off", ["benchmarks.tts_step", *tts, "--compute_dtype", "bfloat16",
                                                 "--recurrence", "sequential", *fast], 180, no_autotune),
        ("tts f32, autotuning off", ["benchmarks.tts_step", *tts, "--compute_dtype", "float32", *fast], 180,
         no_autotune),
        ("recurrences", ["benchmarks.recurrence", *recurrence], 120, {}),
    ]
    if smoke:
        return [(name, argv, limit * SMOKE_LIMIT_SCALE, env) for name, argv, limit, env in runs]
    return runs


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


def run_streamed(argv: list[str], limit: float, stem: Path, env: dict | None = None) -> tuple[int | None, str, str]:
    """Run `python -m argv` with its stdout and stderr written to `stem`.out/.err as it goes (unbuffered), so a run
    killed at its time limit still leaves what it printed, progress lines included. (exit status or None when it
    timed out, stdout, stderr); the two files are removed afterwards (their text goes into suite.log). `env`: variables
    added to this process's environment."""
    out_path, err_path = stem.with_suffix(".out"), stem.with_suffix(".err")
    with out_path.open("w") as out, err_path.open("w") as err:
        child = subprocess.Popen([sys.executable, "-u", "-m", *argv], stdout=out, stderr=err, text=True,
                                 env={**os.environ, **(env or {})})
        try:
            returncode = child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            returncode = None
    stdout, stderr = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    return returncode, stdout, stderr


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
    for index, (name, argv, limit, env) in enumerate(plan(args.smoke, args.out)):
        elapsed = time.monotonic() - start
        if elapsed + limit > args.budget_s:
            line = f"== {name}: skipped ({elapsed:.0f} s spent, its {limit} s limit would pass the budget)\n"
        else:
            t0 = time.monotonic()
            returncode, stdout, stderr = run_streamed(argv, limit, args.out / f"run{index}", env)
            status = f"exit {returncode}" if returncode is not None else f"timed out after {limit} s"
            if returncode == 0:
                with entries.open("a") as f:
                    f.write(entry_of(stdout) + "\n")
            setting = "".join(f"{k}={v} " for k, v in env.items())
            line = (f"== {name}: {status} in {time.monotonic() - t0:.0f} s: {setting}python -m {' '.join(argv)}\n"
                    f"{stdout}{stderr}\n")
        with log.open("a") as f:
            f.write(line)
        print(line, flush=True)


if __name__ == "__main__":
    main()
