"""Inference throughput: batch synthesis (text ids -> mel) and transcription (features -> CTC log-probabilities),
mmspeech_jax against ESPnet's forward passes on the same CPU, model sizes and inputs.

    python -m benchmarks.inference                       # mmspeech_jax: prints a table
    python -m benchmarks.inference --record              # ... and appends it to benchmarks/RESULTS.md
    /tmp/espnet/bin/python -m benchmarks.inference --toolkit espnet   # ESPnet (environment: benchmarks/espnet_step.py)
    python -m benchmarks.inference --first_call          # the first passes in fresh processes, for each shape
                                                         # policy, with and without the persistent compilation cache

Models: FastSpeech2 at ESPnet's LJSpeech size (our `ljspeech` preset; ESPnet2 `FastSpeech2` with
egs2/ljspeech train_fastspeech2.yaml, as `benchmarks/espnet_step.py`) and Conformer-CTC at ESPnet's
LibriSpeech-100 size (our `conformer_s`; ESPnet2 `ConformerEncoder` + `CTC`), randomly initialised. Random
duration predictors would predict nothing, so in both toolkits the duration predictor's output layer is set to the
constant log(1 + 5): every token lasts 5 frames, and both produce the same number of frames.

Inputs (`benchmarks/synthetic.py`, seeded): TTS 32 token sequences of 60-150 ids; ASR 32 utterances of 500-1500
frames of 80-dim features. Audio seconds: frames x 256 / 22 050 (the zoo's hop), the same for both toolkits.
mmspeech_jax synthesizes as `Synthesizer.synthesize_batch` does (`synthesize.synthesize_ids`: the model's `prepare`
on batches of `--batch_size` texts sorted by length, tokens padded to a multiple of 16, then `render` on the groups
of `render_plan`, padded to a power-of-two batch and the frame ladder) and transcribes as `Transcriber.transcribe`
does (grouping "plan": `Transcriber.plan`'s groups of similar length, then `Transcriber.log_probs`) and, for the
earlier entries' comparison, in batches of `--batch_size` in input order. ESPnet synthesizes one sentence per call
(`FastSpeech2.inference`, what `Text2Speech` runs) and transcribes one utterance per call (grouping "single", what
`Speech2Text` runs) and in padded batches of `--batch_size`, in input order and sorted by length (`asr_groups`). The
table sets each of our rows against ESPnet's fastest grouping for the task. float32
(or `--compute_dtype bfloat16`: our models' compute dtype, ESPnet under `torch.autocast`; float32 parameters in
both), no gradients, every core; the first pass over the inputs is a warm-up (compilation for JAX), then the median of
`--repeats` passes. Griffin-Lim and vocoders are not timed (mel out only).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.synthetic import asr_batch, tts_batch

TTS_VOCAB = 141
ASR_VOCAB = 33
FRAMES_PER_TOKEN = 5
HOP_SECONDS = 256 / 22050
NUM_SENTENCES = 32


def tts_inputs() -> list[np.ndarray]:
    b = tts_batch(NUM_SENTENCES, TTS_VOCAB, seed=3)
    return [b["tokens"][i, : b["token_lengths"][i]] for i in range(NUM_SENTENCES)]


def asr_inputs() -> tuple[np.ndarray, np.ndarray]:
    b = asr_batch(NUM_SENTENCES, seed=3)
    return b["features"], b["frame_mask"].sum(1)


def asr_groups(lengths: np.ndarray, batch_size: int, order: str) -> list[np.ndarray]:
    """Utterance indices per forward call: "input" (batches of `batch_size` in input order), "sorted" (the same, after
    sorting by length) or "single" (one utterance per call, unpadded: what ESPnet's `Speech2Text` runs)."""
    if order == "single":
        return [np.array([i]) for i in range(len(lengths))]
    index = np.argsort(lengths, kind="stable") if order == "sorted" else np.arange(len(lengths))
    return [index[i:i + batch_size] for i in range(0, len(index), batch_size)]


def timed(fn, repeats: int) -> tuple[float, object]:
    """(median seconds of `repeats` calls after one warm-up call, the last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


# --- mmspeech_jax ------------------------------------------------------------------------------------------------
# How a pass weighs compiling a new shape against padding: "least" (no shape cost: least padding), "few" (the CLI's
# fixed first-call costs) or "default" (the library's: the first-call costs halved per pass made,
# `synthesize.shape_cost_for`). The throughput rows use "least": where the default arrives after a few calls.
SHAPE_POLICIES = ("least", "few", "default")


def jax_tts(batch_size: int, compute_dtype: str = "float32", shapes: str = "least"):
    """() -> frames synthesized, over all sentences, as `Synthesizer.synthesize_batch` batches them, each pass planned
    with `shapes`' costs (`SHAPE_POLICIES`) after the passes made before it."""
    import dataclasses

    import jax

    from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset
    from mmspeech_jax.synthesize import FIRST_CALL_SHAPE_COSTS, synthesis_shape_costs, synthesize_ids

    model = FastSpeech2(dataclasses.replace(preset("ljspeech", TTS_VOCAB), compute_dtype=compute_dtype))
    probe = np.ones((1, 32), np.int32)
    params = jax.jit(lambda k: model.init(k, probe, probe > 0, 256, method=FastSpeech2.generate)["params"])(
        jax.random.key(0))
    out = params["variance_adaptor"]["duration_predictor"]["out"]
    out["kernel"], out["bias"] = out["kernel"] * 0, out["bias"] * 0 + np.log(1.0 + FRAMES_PER_TOKEN)
    prepare = jax.jit(lambda p, t, m: model.apply({"params": p}, t, m, method=FastSpeech2.prepare))
    render = jax.jit(lambda p, h, m, d, n: model.apply({"params": p}, h, m, d, n, variance=True,
                                                       method=FastSpeech2.render), static_argnums=4)
    sentences = tts_inputs()
    compiled = {"prepare": set(), "render": set()}  # kept across passes, as a `Synthesizer` keeps it
    setting = {"least": (0, 0), "few": FIRST_CALL_SHAPE_COSTS, "default": None}[shapes]
    passes = [0]

    def run():
        costs = synthesis_shape_costs(setting, passes[0])
        rows = synthesize_ids(lambda t, m: prepare(params, t, m), lambda h, m, d, n: render(params, h, m, d, n),
                              lambda d: d.sum(-1), sentences, batch_size, compiled=compiled, shape_costs=costs)
        passes[0] += 1
        return sum(r["mel"].shape[0] for r in rows)

    run.shapes = lambda: len(compiled["prepare"]) + len(compiled["render"])
    params_m = sum(x.size for x in jax.tree_util.tree_leaves(params)) / 1e6
    return run, params_m


def jax_asr(batch_size: int, compute_dtype: str = "float32", order: str = "plan", shapes: str = "least"):
    """() -> output frames, over all utterances. `order` "plan": `Transcriber.log_probs_many` (the groups of
    `Transcriber.plan`, as `Transcriber.transcribe` runs them, without decoding: similar lengths together, at most
    `batch_size` a call, padded to a power-of-two batch and a multiple of 256 frames), each pass planned with
    `shapes`' cost (`SHAPE_POLICIES`) after the passes made before it; "input": batches of `batch_size` in input
    order, padded to the batch's longest multiple of 256 frames."""
    import dataclasses

    import jax

    from mmspeech_jax.audio.features import MelConfig
    from mmspeech_jax.models.ctc_asr import CTCASR, preset
    from mmspeech_jax.synthesize import SHAPE_COST_FRAMES
    from mmspeech_jax.transcribe import Transcriber

    model = CTCASR(dataclasses.replace(preset("conformer_s", vocab_size=ASR_VOCAB, spec_augment=None),
                                       compute_dtype=compute_dtype))
    features, lengths = asr_inputs()
    mels = [features[i, :n] for i, n in enumerate(lengths)]
    params = jax.jit(lambda k: model.init(k, features[:1, :256], np.ones((1, 256), bool))["params"])(
        jax.random.key(0))
    dims = features.shape[-1]
    asr = Transcriber(model, params, {"mel_mean": np.zeros(dims), "mel_std": np.ones(dims)}, MelConfig(n_mels=dims))
    asr.shape_cost = {"least": 0, "few": SHAPE_COST_FRAMES, "default": None}[shapes]

    def run():
        if order == "plan":
            return sum(lp.shape[0] for lp in asr.log_probs_many(mels, batch_size))
        frames = 0
        for group in asr_groups(lengths, batch_size, order):
            _, out_lengths = asr.log_probs([mels[k] for k in group])
            frames += int(out_lengths.sum())
        return frames

    run.shapes = lambda: len(asr._compiled)
    params_m = sum(x.size for x in jax.tree_util.tree_leaves(params)) / 1e6
    return run, params_m


# --- ESPnet ------------------------------------------------------------------------------------------------------
def _espnet_context(torch, compute_dtype: str):
    """No gradients, and for bfloat16 torch's CPU autocast (float32 parameters, bfloat16 matmuls and
    convolutions: PyTorch's own mixed-precision inference path)."""
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if compute_dtype == "bfloat16":
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    return stack


def espnet_tts(batch_size: int, compute_dtype: str = "float32"):
    """() -> frames synthesized, one sentence per call (ESPnet2 FastSpeech2.inference)."""
    import torch

    from benchmarks.espnet_step import tts_model_and_inputs

    model, _, _ = tts_model_and_inputs(torch, 2)
    model.eval()
    with torch.no_grad():
        model.duration_predictor.linear.weight.zero_()
        model.duration_predictor.linear.bias.fill_(float(np.log(1.0 + FRAMES_PER_TOKEN)))
    sentences = [torch.from_numpy(s.astype(np.int64)) for s in tts_inputs()]

    def run():
        frames = 0
        with _espnet_context(torch, compute_dtype):
            for text in sentences:
                frames += int(model.inference(text)["feat_gen"].shape[0])
        return frames

    return run, sum(p.numel() for p in model.parameters()) / 1e6


def espnet_asr(batch_size: int, compute_dtype: str = "float32", order: str = "input"):
    """() -> encoder output frames (ESPnet2 ConformerEncoder + CTC), utterances grouped as `asr_groups(order)` says,
    each call padded to its longest utterance."""
    import torch

    from benchmarks.espnet_step import asr_model_and_inputs

    model, _, _ = asr_model_and_inputs(torch, 2)
    model.eval()
    features, lengths = asr_inputs()
    groups = asr_groups(lengths, batch_size, order)

    def run():
        frames = 0
        with _espnet_context(torch, compute_dtype):
            for group in groups:
                lens = torch.from_numpy(lengths[group].astype(np.int64))
                x = torch.from_numpy(np.ascontiguousarray(features[group, : int(lens.max())]))
                h, h_lens, _ = model["encoder"](x, lens)
                model["ctc"].log_softmax(h)
                frames += int(h_lens.sum())
        return frames

    return run, sum(p.numel() for p in model.parameters()) / 1e6


# --- report ------------------------------------------------------------------------------------------------------
# How each toolkit groups its inputs, per task: ours as the library does (`synthesize_ids`, `Transcriber.plan`) and,
# for comparison with the earlier entries, the ASR in input order; ESPnet's TTS one sentence per call, its ASR as
# `Speech2Text` (one utterance per call) and in batches in input and length order.
ORDERS = {("jax", "tts"): ("plan",), ("jax", "asr"): ("plan", "input"),
          ("espnet", "tts"): ("single",), ("espnet", "asr"): ("single", "input", "sorted")}


def measure(toolkit: str, batch_size: int, repeats: int, compute_dtype: str = "float32") -> list[dict]:
    """One JSON row per (task, order) of `ORDERS`: median seconds of `repeats` passes over the 32 inputs after a
    warm-up pass, inputs/s, audio seconds/s, frames."""
    rows = []
    if toolkit == "espnet":
        import torch

        torch.set_num_threads(os.cpu_count())
    builders = {"jax": (jax_tts, jax_asr), "espnet": (espnet_tts, espnet_asr)}[toolkit]
    _, asr_lengths = asr_inputs()
    audio = {"tts": lambda frames: frames * HOP_SECONDS, "asr": lambda _: float(asr_lengths.sum()) * HOP_SECONDS}
    for task, build in zip(("tts", "asr"), builders):
        for order in ORDERS[toolkit, task]:
            run, params_m = build(batch_size, compute_dtype) if task == "tts" else build(batch_size, compute_dtype,
                                                                                          order)
            seconds, frames = timed(run, repeats)
            rows.append({"toolkit": toolkit, "task": task, "order": order, "compute_dtype": compute_dtype,
                         "params_m": round(params_m, 1), "batch_size": 1 if order == "single" else batch_size,
                         "seconds": seconds, "items_per_s": NUM_SENTENCES / seconds,
                         "audio_s_per_s": audio[task](frames) / seconds, "frames": frames})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown rows by task and toolkit; with both toolkits, each of ours against ESPnet's fastest on that task."""
    fastest = {}
    for r in rows:
        if r["toolkit"] == "espnet":
            fastest[r["task"]] = min(fastest.get(r["task"], np.inf), r["seconds"])
    lines = ["| toolkit | task | grouping | compute | params | batch | 32 inputs | inputs/s | audio s/s "
             "| against ESPnet's fastest |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["task"], r["toolkit"])):
        ratio = f"{fastest[r['task']] / r['seconds']:.2f}x" if r["task"] in fastest else ""
        lines.append(f"| {r['toolkit']} | {r['task']} | {r.get('order', '')} | {r.get('compute_dtype', 'float32')} | "
                     f"{r['params_m']} M | {r['batch_size']} | {r['seconds']:.2f} s | {r['items_per_s']:.2f} | "
                     f"{r['audio_s_per_s']:.1f} | {ratio} |")
    return "\n".join(lines)


FIRST_CALL = r"""
import sys, time
from mmspeech_jax.train.trainer import use_compilation_cache
use_compilation_cache(sys.argv[1])
from benchmarks.inference import jax_asr, jax_tts
for build in (jax_tts, jax_asr):
    run, _ = build(16, shapes=sys.argv[2])
    for n in range(int(sys.argv[3])):
        t = time.perf_counter(); run()
        print(build.__name__, n + 1, round(time.perf_counter() - t, 3), run.shapes(), flush=True)
"""
FIRST_CALL_PASSES = 10


def first_call(policies=SHAPE_POLICIES, passes: int = FIRST_CALL_PASSES) -> list[dict]:
    """One row per (task, shape policy, cache state): for each policy of `SHAPE_POLICIES`, two fresh processes sharing
    one empty persistent compilation cache (the first fills it, the second reads it) each make `passes` passes over
    the 32 inputs; the row holds each pass's seconds and the shapes compiled after it."""
    rows = []
    for policy in policies:
        with tempfile.TemporaryDirectory() as cache:
            for state in ("empty cache", "warm cache"):
                out = subprocess.run([sys.executable, "-c", FIRST_CALL, cache, policy, str(passes)],
                                     capture_output=True, text=True, check=True).stdout
                by_task = {}
                for line in out.strip().splitlines():
                    name, _, seconds, shapes = line.split()
                    row = by_task.setdefault(name, {"task": {"jax_tts": "tts", "jax_asr": "asr"}[name],
                                                    "shapes_policy": policy, "cache": state, "seconds": [],
                                                    "shapes": []})
                    row["seconds"].append(float(seconds))
                    row["shapes"].append(int(shapes))
                rows += list(by_task.values())
                print(json.dumps(list(by_task.values())), flush=True)
    return rows


def first_call_table(rows: list[dict]) -> str:
    """Markdown: per task, policy and cache state, the first pass, the sum of all passes, the last pass and the shapes
    compiled (after the first pass and after the last)."""
    lines = ["| task | shape policy | persistent cache | pass 1 | passes 2-n (sum) | all n passes | pass n "
             "| shapes after pass 1 / n |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["task"], r["cache"], r["shapes_policy"])):
        t = r["seconds"]
        lines.append(f"| {r['task']} | {r['shapes_policy']} | {r['cache']} | {t[0]:.2f} s | {sum(t[1:]):.2f} s | "
                     f"{sum(t):.2f} s (n = {len(t)}) | {t[-1]:.2f} s | {r['shapes'][0]} / {r['shapes'][-1]} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--toolkit", choices=["jax", "espnet"], default="jax")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compute_dtype", choices=["float32", "bfloat16"], default="float32",
                   help="bfloat16: our models' compute_dtype, ESPnet under torch.autocast (float32 parameters both)")
    p.add_argument("--first_call", action="store_true",
                   help="time the first passes in fresh processes instead, for each shape policy")
    p.add_argument("--passes", type=int, default=FIRST_CALL_PASSES, help="passes per process with --first_call")
    p.add_argument("--espnet_json", default=None, metavar="FILE",
                   help="ESPnet's rows (the JSON lines `--toolkit espnet` printed) to put beside ours")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args()
    if args.toolkit == "jax":
        from mmspeech_jax.host_memory import keep_freed_memory

        keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    if args.first_call:
        text = first_call_table(first_call(passes=args.passes))
    else:
        rows = measure(args.toolkit, args.batch_size, args.repeats, args.compute_dtype)
        if args.espnet_json:
            rows += [json.loads(line) for line in open(args.espnet_json) if line.startswith("{")]
        text = table(rows)
    print(text)
    if args.record:
        from benchmarks.measure import machine, record

        command = "python -m benchmarks.inference" + (" --first_call" if args.first_call else "") + \
            (f" --compute_dtype {args.compute_dtype}" if args.compute_dtype != "float32" else "")
        record(f"### Inference throughput — {datetime.date.today()}\n\nCommand: `{command}`  \n"
               f"Machine: {machine()}\n\n{text}\n")


if __name__ == "__main__":
    main()
