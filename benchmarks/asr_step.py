"""CTC ASR train-step speed (Conformer encoder + CTC, AdamW) on a seeded synthetic batch, and decoding speed.

    python -m benchmarks.asr_step                       # conformer_s, batch 16, 500-1500 frames, ~100-token targets
    python -m benchmarks.asr_step --preset base --record
    python -m benchmarks.asr_step --profile              # also: forward+backward time of each encoder component

Reports compile time, median step time (after compile, float32 unless `--compute_dtype bfloat16`, SpecAugment and
dropout on as in training), the step's FLOPs from XLA's cost analysis of the step with the frontend's convolutions
computed directly (`conv_algorithm="direct"`, compiled but not run where the timed step uses Winograd: the
textbook count, whatever algorithm runs), achieved FLOP/s and MFU against the peak `benchmarks/measure.py` picks
(datasheet bf16 peak on a known accelerator, else the matmul peak measured in the compute dtype); decoding
speed as x real time (forward pass + greedy, forward pass + prefix beam search of width 8) on the same batch, audio
duration taken at the embedded corpus's 11.6 ms hop; and the compile count of the train step over one epoch of
bucketed data (`tiny` preset; counts do not depend on width).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time

import jax
import numpy as np

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import (add_epoch_compilations_flag, epoch_compilations, epoch_compilations_sentence,
                                machine, median_seconds, mfu_peak, record, step_flops, time_train_step,
                                xla_flags_prefix)
from benchmarks.synthetic import asr_batch as synthetic_batch
from mmspeech_jax.decoding.ctc import decode_batch
from mmspeech_jax.layers.winograd import ALGORITHMS as CONV_ALGORITHMS
from mmspeech_jax.losses.recurrence import ALGORITHMS as RECURRENCES
from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn, preset
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

HOP_SECONDS = 256 / 22050


def asr_epoch_compilations(num_utterances: int = 400) -> tuple[int, int, int]:
    rng = np.random.default_rng(0)
    frames = rng.integers(86, 690, num_utterances)
    chars = np.maximum(2, frames // 8 + rng.integers(-3, 4, num_utterances))
    model = CTCASR(preset("tiny"))
    tx = make_optimizer(OptimizerConfig(total_steps=1000))

    def make_step(batch):
        params = model.init(jax.random.PRNGKey(0), batch["features"], batch["frame_mask"])["params"]
        return make_train_step(make_ctc_loss_fn(model), tx), TrainState.create(params, tx)

    def make_batch(shape, frame_range, token_range, seed):
        return synthetic_batch(16, seed, t_max=shape.frames, l_max=shape.tokens, t_range=frame_range,
                               l_range=token_range)

    return epoch_compilations(make_step, make_batch, frames, chars)


def build(preset_name: str, batch_size: int, compute_dtype: str = "float32", recurrence: str = "auto",
          conv_algorithm: str = "auto"):
    """(model, optimizer, train step, state, batch) of the benchmark: AdamW, the seeded synthetic batch;
    `recurrence`: the CTC loss's (`CTCASRConfig.ctc_recurrence`); `conv_algorithm`: the frontend's."""
    model = CTCASR(preset(preset_name, compute_dtype=compute_dtype, ctc_recurrence=recurrence,
                          conv_algorithm=conv_algorithm))
    batch = synthetic_batch(batch_size)
    params = init_params(model, jax.random.PRNGKey(0), batch["features"], batch["frame_mask"])
    tx = make_optimizer(OptimizerConfig(total_steps=1000))
    return model, tx, make_train_step(make_ctc_loss_fn(model), tx), TrainState.create(params, tx), batch


def run(preset_name: str, batch_size: int, steps: int, compute_dtype: str = "float32", recurrence: str = "auto",
        conv_algorithm: str = "auto") -> dict:
    model, tx, train_step, state, batch = build(preset_name, batch_size, compute_dtype, recurrence, conv_algorithm)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params))
    # Abstract, to survive donation.
    abstract_state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    timed = time_train_step(train_step, state, batch, steps)
    state, median, compile_seconds, flops = timed["state"], timed["step_s"], timed["compile_s"], timed["flops"]
    if model.config.conv_algorithm != "direct":  # count the textbook FLOPs, not Winograd's
        direct = CTCASR(dataclasses.replace(model.config, conv_algorithm="direct"))
        flops = step_flops(make_train_step(make_ctc_loss_fn(direct), tx), abstract_state, batch)
    forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
    forward_seconds = median_seconds(forward, state.params, batch["features"], batch["frame_mask"])
    log_probs, mask = jax.device_get(forward(state.params, batch["features"], batch["frame_mask"]))
    audio_seconds = float(batch["frame_mask"].sum()) * HOP_SECONDS
    speeds = {}
    for method in ("greedy", "beam"):
        start = time.perf_counter()
        decode_batch(log_probs, mask.sum(-1), method, beam_width=8)
        speeds[method] = audio_seconds / (forward_seconds + time.perf_counter() - start)
    return {"preset": preset_name, "params_m": n_params / 1e6, "compile_s": compile_seconds, "step_s": median,
            "flops": flops, "flops_per_s": flops / median, "greedy_x_rt": speeds["greedy"], "beam_x_rt": speeds["beam"]}


def profile(preset_name: str, batch_size: int, conv_algorithm: str = "auto") -> list[tuple[str, float, float]]:
    """(component, seconds, XLA FLOPs) of jitted forward+backward of each encoder part alone at the benchmark's
    shapes (train mode, dropout on), median of 3: where the step's time goes."""
    import jax.numpy as jnp

    from benchmarks.measure import compiled_flops
    from mmspeech_jax.layers.attention import MultiHeadSelfAttention
    from mmspeech_jax.layers.conformer import ConformerBlock, ConvolutionModule, FeedForward
    from mmspeech_jax.layers.subsampling import Conv2dSubsampling, subsampled_length

    c = preset(preset_name, conv_algorithm=conv_algorithm)
    batch = synthetic_batch(batch_size)
    t = int(subsampled_length(batch["features"].shape[1], c.subsampling))
    h = jax.numpy.asarray(np.random.default_rng(0).normal(size=(batch_size, t, c.dim)), jnp.float32)
    mask = np.ones((batch_size, t), bool)
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    block = ConformerBlock(c.block) if c.encoder == "conformer" else None
    parts = [
        (f"Conv2d subsampling ({c.subsampling}x, {c.subsampling_channels} channels), (B, 1500, 80) in",
         Conv2dSubsampling(c.dim, c.subsampling_channels, c.subsampling, conv_algorithm=c.conv_algorithm), (batch["features"], batch["frame_mask"]), {}),
        (f"one Conformer block, T'={t}", block, (h, mask), {"train": True}),
        ("  feed-forward (one of the two)", FeedForward(c.dim, c.ffn_dim, c.dropout), (h,), {"train": True}),
        ("  self-attention, relative positions", MultiHeadSelfAttention(c.dim, c.heads, c.attention_dropout,
                                                                        relative_positions=True), (h, mask), {"train": True}),
        ("  self-attention, absolute positions (for comparison)", MultiHeadSelfAttention(c.dim, c.heads, c.attention_dropout),
         (h, mask), {"train": True}),
        ("  convolution module", ConvolutionModule(c.dim, c.conv_kernel, c.dropout), (h, mask), {"train": True}),
    ]
    rows = []
    for name, module, inputs, kwargs in parts:
        if module is None:
            continue
        params = module.init(rngs, *inputs, **kwargs)

        def loss(p, module=module, inputs=inputs, kwargs=kwargs):
            out = module.apply(p, *inputs, rngs={"dropout": jax.random.PRNGKey(2)}, **kwargs)
            return jnp.sum((out[0] if isinstance(out, tuple) else out) ** 2)

        grad = jax.jit(jax.grad(loss))
        rows.append((name, median_seconds(grad, params), compiled_flops(grad.lower(params).compile())))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="conformer_s")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--recurrence", default="auto", choices=RECURRENCES,
                        help="the CTC loss over frames (losses/ctc.py): auto (optax's scan on the CPU, blocked "
                             "elsewhere), sequential or blocked")
    parser.add_argument("--conv_algorithm", default="auto", choices=CONV_ALGORITHMS,
                        help="the frontend's strided convolutions (layers/subsampling.py): auto (Winograd for "
                             "float32 on the CPU from 64 input channels), winograd or direct (patch matmul)")
    add_epoch_compilations_flag(parser)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also time each encoder component alone")
    args = parser.parse_args()
    r = run(args.preset, args.batch_size, args.steps, args.compute_dtype, args.recurrence, args.conv_algorithm)
    peak, peak_sentence = mfu_peak(args.compute_dtype)
    command = (f"{xla_flags_prefix()}python -m benchmarks.asr_step --preset {args.preset} --batch_size {args.batch_size} --steps {args.steps} "
               f"--compute_dtype {args.compute_dtype} --recurrence {args.recurrence} "
               f"--conv_algorithm {args.conv_algorithm}" + (" --profile" if args.profile else "")
               + ("" if args.epoch_compilations else " --no-epoch_compilations"))
    text = (f"### CTC ASR train step — {datetime.date.today().isoformat()}\n\nCommand: `{command}`  \n"
            f"Machine: {machine()}\n\n"
            "| preset | compute | params | batch | compile | median step | step FLOPs (XLA) | achieved | MFU | "
            "greedy decoding | beam-8 decoding |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
            f"| {r['preset']} | {args.compute_dtype} | {r['params_m']:.1f} M | {args.batch_size} (500-1500 frames, "
            f"80-120 chars) | {r['compile_s']:.1f} s | {r['step_s'] * 1e3:.1f} ms | {r['flops'] / 1e12:.3g} TFLOP | "
            f"{r['flops_per_s'] / 1e12:.3g} TFLOP/s | {100 * r['flops_per_s'] / peak:.1f} % | "
            f"{r['greedy_x_rt']:.0f}x real time | {r['beam_x_rt']:.0f}x real time |\n\n"
            f"{peak_sentence}\n\n")
    if args.epoch_compilations:
        text += epoch_compilations_sentence(*asr_epoch_compilations())
    if args.profile:
        text += ("\n| component (forward+backward, train mode, median of 3) | seconds | XLA FLOPs | FLOP/s |\n"
                 "| --- | --- | --- | --- |\n")
        for name, seconds, flops in profile(args.preset, args.batch_size, args.conv_algorithm):
            text += f"| {name} | {seconds:.3f} | {flops / 1e9:.1f} G | {flops / seconds / 1e9:.0f} G |\n"
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
