"""FastSpeech2 (+ aligner) train-step speed on a seeded synthetic batch.

    python -m benchmarks.tts_step                       # ljspeech preset, batch 16, text 60-150, mel 400-800
    python -m benchmarks.tts_step --preset base --record

Reports compile time, median step time (after compile), mel frames/s, inference real-time factor (generate() of a
150-token sentence into 1024 frames, mel only, no vocoder), the step's FLOPs from XLA's cost analysis
(`jax.jit(...).lower(...).compile().cost_analysis()`), achieved FLOP/s, and MFU against a peak: the vendor's
datasheet dense peak on a known accelerator in bf16 (`benchmarks/measure.py`), else the matmul peak measured on the
same device in the compute dtype (2048^3 on the CPU, 8192^3 on an accelerator); the measured peak is printed too.
With the batch and lengths of the paper's LJSpeech run (`--batch_size 48`), it also prints how long its 160 k-step
schedule takes at this step time.

Two FLOP counts, both XLA's: "model FLOPs" count the step with every convolution computed directly
(`conv_algorithm="direct"`, compiled but not run): the textbook count, the same whatever algorithm runs, and the
numerator of MFU. "Executed FLOPs" count the step that ran; with Winograd convolutions (`layers/winograd.py`, the
float32 CPU default) they are fewer, so MFU can exceed the hardware utilisation (HFU, executed FLOPs / peak) and even
100 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime

import jax
import numpy as np

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import (add_epoch_compilations_flag, epoch_compilations, epoch_compilations_sentence,
                                machine, median_seconds, mfu_peak, progress, record, step_flops,
                                time_train_step, xla_flags_prefix)
from benchmarks.synthetic import tts_batch
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.aligner import with_alignment_prior
from mmspeech_jax.layers.winograd import ALGORITHMS
from mmspeech_jax.losses.recurrence import ALGORITHMS as RECURRENCES
from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step


def synthetic_batch(batch_size: int, vocab: int, seed: int = 0, **ranges):
    """`benchmarks/synthetic.py`'s seeded TTS batch plus the aligner's log prior."""
    return with_alignment_prior(tts_batch(batch_size, vocab, seed, **ranges))


def tts_epoch_compilations(preset_name: str = "tiny", num_utterances: int = 400) -> tuple[int, int, int]:
    """Compile count over one epoch (lengths drawn like the embedded corpus's 1-8 s utterances). Compile counts do
    not depend on model width, so the small preset keeps this row cheap."""
    rng = np.random.default_rng(0)
    frames = rng.integers(86, 690, num_utterances)
    tokens = np.maximum(4, frames // 6 + rng.integers(-5, 6, num_utterances))
    model = FastSpeech2(preset(preset_name, 141))
    tx = make_optimizer(OptimizerConfig(total_steps=1000))

    def make_step(batch):
        params = model.init({"params": jax.random.PRNGKey(0)}, batch, train=False)["params"]
        return make_train_step(make_fastspeech2_loss_fn(model, binarization_start=0), tx), TrainState.create(params, tx)

    def make_batch(shape, frame_range, token_range, seed):
        return synthetic_batch(16, 141, seed=seed, n_max=shape.tokens, t_max=shape.frames, n_range=token_range,
                               t_range=frame_range)

    return epoch_compilations(make_step, make_batch, frames, tokens)


def build(preset_name: str, batch_size: int, durations: str = "aligner", micro_batches: int = 1,
          recurrence: str = "auto", **config_changes):
    """(model, optimizer, train step, state, batch) of the benchmark: AdamW, the seeded synthetic batch;
    `recurrence`: the aligner's (`AlignerConfig.recurrence`)."""
    overrides = {"aligner": None} if durations == "external" else {}
    overrides.update(config_changes)
    config = preset(preset_name, 141, **overrides)
    if config.aligner is not None:
        config = dataclasses.replace(config, aligner=dataclasses.replace(config.aligner, recurrence=recurrence))
    model = FastSpeech2(config)
    batch = synthetic_batch(batch_size, 141)
    params = init_params(model, {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, batch, train=False)
    tx = make_optimizer(OptimizerConfig(total_steps=1000))
    return model, tx, make_train_step(make_fastspeech2_loss_fn(model, binarization_start=0), tx, micro_batches), TrainState.create(params, tx), batch


def run(preset_name: str, batch_size: int, steps: int, durations: str = "aligner", micro_batches: int = 1,
        recurrence: str = "auto", **config_changes):
    progress(f"building {preset_name}, batch {batch_size}")
    model, tx, train_step, state, batch = build(preset_name, batch_size, durations, micro_batches, recurrence,
                                                **config_changes)
    abstract_state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)  # survives donation
    timed = time_train_step(train_step, state, batch, steps)
    state, median, compile_seconds, flops = timed["state"], timed["step_s"], timed["compile_s"], timed["flops"]
    model_flops = flops  # the step that ran computes its convolutions directly: its count is the model's
    if model.config.conv_algorithm != "direct":
        progress("compiling the direct-convolution step for its FLOP count")
        direct = FastSpeech2(dataclasses.replace(model.config, conv_algorithm="direct"))
        model_flops = step_flops(make_train_step(make_fastspeech2_loss_fn(direct, binarization_start=0), tx,
                                                           micro_batches),
                                 abstract_state, batch)
    frames = int(batch["frame_lengths"].sum())
    # Inference: one 150-token sentence, generate() with a static 1024-frame output (11.9 s of audio at hop 256).
    # Shapes are static, so the cost depends on max_frames, not on what the (untrained) duration predictor says.
    tokens = np.asarray(np.random.default_rng(1).integers(1, 141, (1, 150)), np.int32)
    generate = jax.jit(lambda p, t, m: model.apply({"params": p}, t, m, 1024, method=FastSpeech2.generate))
    progress("compiling and timing generate()")
    gen_seconds = median_seconds(generate, state.params, tokens, tokens > 0, repeats=5)
    audio_seconds = 1024 * 256 / 22050
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(abstract_state.params))
    return {"preset": preset_name, "durations": durations, "params_m": n_params / 1e6, "compile_s": compile_seconds, "step_s": median,
            "frames_per_s": frames / median, "flops": flops, "flops_per_s": flops / median,
            "model_flops": model_flops, "model_flops_per_s": model_flops / median,
            "rtf": gen_seconds / audio_seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ljspeech")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--durations", choices=("aligner", "external"), default="aligner",
                        help="aligner: the learned aligner trains in the step (default); external: durations come "
                             "with the batch, as in ESPnet's FastSpeech2 recipe (the like-for-like comparison)")
    parser.add_argument("--micro_batches", type=int, default=1, help="gradient accumulation over M micro-batches")
    parser.add_argument("--remat", action="store_true", help="recompute encoder/decoder blocks in the backward pass")
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--recurrence", default="auto", choices=RECURRENCES,
                        help="the aligner's MAS and forward-sum over frames (losses/recurrence.py): auto "
                             "(sequential on the CPU, blocked elsewhere), sequential or blocked")
    parser.add_argument("--conv_algorithm", default="auto", choices=ALGORITHMS,
                        help="kernel-3/5 convolutions: auto (Winograd for float32 on CPU), winograd or direct")
    add_epoch_compilations_flag(parser)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    r = run(args.preset, args.batch_size, args.steps, args.durations, args.micro_batches, args.recurrence,
            remat=args.remat,
            compute_dtype=args.compute_dtype, conv_algorithm=args.conv_algorithm)
    progress("measuring the matmul peak")
    peak, peak_sentence = mfu_peak(args.compute_dtype)
    command = (f"{xla_flags_prefix()}python -m benchmarks.tts_step --preset {args.preset} --batch_size {args.batch_size} --steps {args.steps} "
               f"--durations {args.durations} --micro_batches {args.micro_batches} --compute_dtype {args.compute_dtype} "
               f"--conv_algorithm {args.conv_algorithm} --recurrence {args.recurrence}"
               + (" --remat" if args.remat else "") + ("" if args.epoch_compilations else " --no-epoch_compilations"))
    # XLA's cost analysis counts a while loop's body once: with micro-batches the step's FLOPs are not comparable.
    counted = args.micro_batches == 1
    na = lambda cell: cell if counted else "n/a"
    flops_cell = na(f"{r['model_flops'] / 1e12:.3g} / {r['flops'] / 1e12:.3g} TFLOP")
    achieved_cell = na(f"{r['model_flops_per_s'] / 1e12:.3g} TFLOP/s")
    mfu_cell = na(f"{100 * r['model_flops_per_s'] / peak:.1f} % / {100 * r['flops_per_s'] / peak:.1f} %")
    text = (f"### FastSpeech2 train step — {datetime.date.today().isoformat()}\n\nCommand: `{command}`  \n"
            f"Machine: {machine()}\n\n"
            "| preset | durations | micro-batches | compute | params | batch | compile | median step | mel frames/s | step FLOPs (XLA): model / executed | achieved (model FLOPs) | MFU / HFU | inference RTF (mel, 150 tokens) |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
            f"| {r['preset']} | {r['durations']} | {args.micro_batches} | {args.compute_dtype} | {r['params_m']:.1f} M | "
            f"{args.batch_size} (text 60-150, mel 400-800) | {r['compile_s']:.1f} s | {r['step_s'] * 1e3:.1f} ms | "
            f"{r['frames_per_s']:.0f} | {flops_cell} | {achieved_cell} | {mfu_cell} | {r['rtf']:.4f} |\n\n"
            f"{peak_sentence} "
            f"The paper's 160 k-step LJSpeech schedule at this step time: {160_000 * r['step_s'] / 3600:.2f} h.\n\n")
    if args.epoch_compilations:
        progress("counting compilations over one epoch")
        text += epoch_compilations_sentence(*tts_epoch_compilations())
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
