"""Joint speech–text model train-step speed and MFU, per data stream, on seeded synthetic batches.

    python -m benchmarks.joint_step                                  # base preset, batch 8 (the CPU default)
    python -m benchmarks.joint_step --batch_size 48 --compute_dtype bfloat16 --record     # on an accelerator

The joint pretraining alternates one stream per step (paired, speech, paired, text, ...:
`experiments/joint_speech_text.py`), so each stream's step is compiled and timed on its own, as the trainer runs it
(jit, donated state, AdamW): "paired" (CTC + FastSpeech2 with the aligner + modality matching, 800 mel frames,
150 tokens, 120 characters), "speech" (BEST-RQ, 800 frames), "text" (masked tokens, 94 phonemes) and the joint
fine-tuning step "asr_tts" (CTC + FastSpeech2 on paired data). For each: compile seconds, median step seconds,
XLA's FLOP count, TFLOP/s and MFU against `measure.mfu_peak`; then the pretraining schedule's mean step time and MFU.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime

import jax
import numpy as np

from benchmarks.measure import machine, mfu_peak, progress, record, time_train_step, xla_flags_prefix
from benchmarks.synthetic import tts_batch
from mmspeech_jax.host_memory import keep_freed_memory
from mmspeech_jax.models import joint_speech_text as joint
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

VOCAB = 140  # the espeak table's size
STREAMS = ("paired", "speech", "text", "asr_tts")
SCHEDULE = ("paired", "speech", "paired", "text")


def synthetic_parts(batch_size: int, seed: int = 0, t_max: int = 800, n_max: int = 150, l_max: int = 128) -> dict:
    """{"speech", "text", "paired"} as `prepare_joint_batch` takes them: pipeline-like batches (tokens, mel,
    contours, lengths, character transcripts of 80-120 ids, example mask) and a text batch of 60-94 phonemes."""
    rng = np.random.default_rng(seed)
    tts = tts_batch(batch_size, VOCAB, seed, n_max=n_max, t_max=t_max, t_range=(400, t_max))
    tts.pop("durations")
    l_len = rng.integers(80, 121, batch_size)
    transcript_mask = np.arange(l_max)[None] < l_len[:, None]
    paired = {**tts, "transcript_ids": (rng.integers(1, 27, (batch_size, l_max)) * transcript_mask).astype(np.int32),
              "transcript_mask": transcript_mask, "example_mask": np.ones(batch_size, bool)}
    n_len = rng.integers(60, 95, batch_size)
    token_mask = np.arange(94)[None] < n_len[:, None]
    text = {"tokens": (rng.integers(1, VOCAB, (batch_size, 94)) * token_mask).astype(np.int32),
            "token_mask": token_mask}
    return {"speech": paired, "text": text, "paired": paired}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="base", choices=["tiny", "base"])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--compute_dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--streams", default=",".join(STREAMS), help=f"comma-separated subset of {STREAMS}")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    config = joint.preset(args.preset, VOCAB)
    config = dataclasses.replace(config, speech=dataclasses.replace(config.speech, compute_dtype=args.compute_dtype),
                                 text=dataclasses.replace(config.text, compute_dtype=args.compute_dtype))
    model = joint.JointSpeechText(config)
    stats = {"mel_mean": np.zeros(80, np.float32), "mel_std": np.ones(80, np.float32)}
    parts = synthetic_parts(args.batch_size)
    paired = {k.split("/", 1)[1]: v for k, v in
              joint.prepare_joint_batch({"paired": parts["paired"]}, config, stats).items()}
    params = jax.jit(lambda k: model.init({"params": k}, paired, method=joint.JointSpeechText.initialize))(
        jax.random.PRNGKey(0))["params"]
    count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-3, warmup_steps=0, total_steps=100))
    peak, peak_sentence = mfu_peak(args.compute_dtype)
    rows = {}
    for stream in args.streams.split(","):
        progress(f"stream {stream}")
        mode = "asr_tts" if stream == "asr_tts" else "pretrain"
        needed = ("paired",) if stream == "asr_tts" else (stream,)
        batch = joint.prepare_joint_batch({n: parts[n] for n in needed}, config, stats)
        step = make_train_step(joint.make_joint_loss_fn(model, joint.loss_config(mode)), tx)
        rows[stream] = time_train_step(step, TrainState.create(params, tx), batch, args.steps)
    date = datetime.date.today().isoformat()
    command = (f"{xla_flags_prefix()}python -m benchmarks.joint_step --preset {args.preset} --batch_size "
               f"{args.batch_size} --compute_dtype {args.compute_dtype} --streams {args.streams}")
    text = (f"### Joint speech–text train step ({date})\n\nCommand: `{command}`\nMachine: {machine()}\n"
            f"{peak_sentence} {args.preset} preset, {count / 1e6:.2f} M parameters.\n\n"
            "| stream | compile s | step s | step FLOPs | TFLOP/s | MFU |\n| --- | --- | --- | --- | --- | --- |\n")
    for stream, timed in rows.items():
        achieved = timed["flops"] / timed["step_s"]
        text += (f"| {stream} | {timed['compile_s']:.1f} | {timed['step_s']:.3f} | {timed['flops'] / 1e9:.1f} G | "
                 f"{achieved / 1e12:.3f} | {100 * achieved / peak:.1f} % |\n")
    if all(s in rows for s in set(SCHEDULE)):
        seconds = float(np.mean([rows[s]["step_s"] for s in SCHEDULE]))
        flops = float(np.mean([rows[s]["flops"] for s in SCHEDULE]))
        text += (f"\nPretraining schedule ({', '.join(SCHEDULE)}, repeated): {seconds:.3f} s a step on average, "
                 f"MFU {100 * flops / seconds / peak:.1f} %.\n")
    print(text)
    if args.record:
        record(text)
    return rows


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
