"""Vocoder train-step speed and MFU, per preset and phase, on seeded synthetic audio.

    python -m benchmarks.vocoder_step                                  # every preset, the papers' batch and crop
    python -m benchmarks.vocoder_step --presets istft:cpu,hifigan:v2 --batch_size 4 --record
    python -m benchmarks.vocoder_step --compute_dtype bfloat16         # on an accelerator

For each `generator:preset` and each phase ("warm-up": reconstruction losses only; "adversarial": with the
multi-period + multi-resolution discriminators at `--discriminator_scale`, the papers' widths by default), it
compiles the step as the trainer does (jit, donated state), times `--steps` steps after compilation (median), and
reports the step's FLOPs from XLA's cost analysis, the achieved FLOP/s and MFU against `measure.mfu_peak` (the
datasheet bf16 peak on a known accelerator, else the measured matmul peak). Batch and crop default to the papers':
HiFi-GAN 16 x 8192 samples, Vocos 16 x 64 frames (16 384 samples). Also the generator's inference real-time factor
(a 10 s mel, batch 1, compiled).
"""

from __future__ import annotations

import argparse
import datetime
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.measure import machine, mfu_peak, progress, record, time_train_step, xla_flags_prefix
from mmspeech_jax.host_memory import keep_freed_memory
from mmspeech_jax.models.discriminators import DiscriminatorConfig
from mmspeech_jax.models.hifigan import HiFiGANConfig, PRESETS as HIFIGAN_PRESETS
from mmspeech_jax.models.istft_vocoder import ISTFTVocoderConfig, PRESETS as ISTFT_PRESETS
from mmspeech_jax.models.vocoder import (VocoderConfig, generate, init_vocoder_params, make_vocoder_loss_fn,
                                         make_vocoder_optimizer)
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

ALL = "hifigan:v1,hifigan:v2,hifigan:v3,istft:cpu,istft:paper"
PAPER_SEGMENT_FRAMES = {"hifigan": 32, "istft": 64}


def vocoder_config(name: str, compute_dtype: str, discriminator_scale: float) -> VocoderConfig:
    """"generator:preset" -> its `VocoderConfig` (MPD + MRD discriminators)."""
    generator, preset = name.split(":")
    istft = ISTFTVocoderConfig(**ISTFT_PRESETS[preset if generator == "istft" else "cpu"], compute_dtype=compute_dtype)
    hifigan = HiFiGANConfig(**HIFIGAN_PRESETS[preset if generator == "hifigan" else "v2"], compute_dtype=compute_dtype)
    return VocoderConfig(generator=generator, istft=istft, hifigan=hifigan,
                         discriminator=DiscriminatorConfig(channel_scale=discriminator_scale,
                                                           compute_dtype=compute_dtype))


def synthetic_crops(batch_size: int, frames: int, config: VocoderConfig, seed: int = 0) -> dict:
    """Seeded harmonic audio with noise, as the crops iterator shapes it: audio (B, S), context (B, S + n_fft)."""
    rng = np.random.default_rng(seed)
    samples, n_fft = frames * config.hop_samples, config.mel.n_fft
    t = np.arange(samples + n_fft) / config.mel.sample_rate
    f0 = rng.uniform(90, 250, (batch_size, 1))
    context = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * 0.1
    context = (context + rng.normal(size=context.shape) * 0.01).astype(np.float32)
    return {"audio": context[:, n_fft // 2: n_fft // 2 + samples], "context": context}


def real_time_factor(config: VocoderConfig, params, seconds: float = 10.0) -> float:
    """Seconds of audio per second of wall time: one `seconds`-long mel, batch 1, compiled, median of 3."""
    frames = int(seconds * config.mel.sample_rate / config.hop_samples) + 1
    mel = jnp.full((1, frames, config.mel.n_mels), -5.0, jnp.float32)
    run = jax.jit(lambda p, m: generate(config, p, m))
    jax.block_until_ready(run(params, mel))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(run(params, mel))
        times.append(time.perf_counter() - start)
    return (frames - 1) * config.hop_samples / config.mel.sample_rate / float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default=ALL, help=f"comma-separated generator:preset (default {ALL})")
    p.add_argument("--phases", default="warm-up,adversarial", help="warm-up, adversarial or both")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--segment_frames", type=int, default=None, help="default: the paper's (HiFi-GAN 32, Vocos 64)")
    p.add_argument("--discriminator_scale", type=float, default=1.0)
    p.add_argument("--compute_dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    peak, peak_sentence = mfu_peak(args.compute_dtype)
    rows = []
    for name in args.presets.split(","):
        config = vocoder_config(name, args.compute_dtype, args.discriminator_scale)
        frames = args.segment_frames or PAPER_SEGMENT_FRAMES[config.generator]
        batch = synthetic_crops(args.batch_size, frames, config)
        params = init_vocoder_params(config, jax.random.PRNGKey(0))
        g_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params["generator"]))
        d_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params["discriminator"]))
        rtf = real_time_factor(config, params["generator"])
        for phase in args.phases.split(","):
            progress(f"{name} {phase}")
            tx = make_vocoder_optimizer(OptimizerConfig(2e-4, 0, 100), OptimizerConfig(2e-4, 0, 100))
            step = make_train_step(make_vocoder_loss_fn(config, adversarial=phase == "adversarial"), tx)
            timed = time_train_step(step, TrainState.create(params, tx), batch, args.steps)
            rows.append((name, phase, g_params, d_params, frames * config.hop_samples, timed, rtf))
    date = datetime.date.today().isoformat()
    command = (f"{xla_flags_prefix()}python -m benchmarks.vocoder_step --presets {args.presets} --phases {args.phases} "
               f"--batch_size {args.batch_size}" + (f" --segment_frames {args.segment_frames}" if args.segment_frames
                                                    else "")
               + f" --discriminator_scale {args.discriminator_scale} --compute_dtype {args.compute_dtype}")
    text = (f"### Vocoder train step ({date})\n\nCommand: `{command}`\nMachine: {machine()}\n{peak_sentence}\n\n"
            f"| generator | phase | G params | D params | batch x samples | compile s | step s | step FLOPs | "
            f"TFLOP/s | MFU | inference RTF (10 s, batch 1) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | "
            f"--- | --- |\n")
    for name, phase, g, d, samples, timed, rtf in rows:
        achieved = timed["flops"] / timed["step_s"]
        text += (f"| {name} | {phase} | {g / 1e6:.2f} M | {d / 1e6:.2f} M | {args.batch_size} x {samples} | "
                 f"{timed['compile_s']:.1f} | {timed['step_s']:.3f} | {timed['flops'] / 1e9:.1f} G | "
                 f"{achieved / 1e12:.3f} | {100 * achieved / peak:.1f} % | {rtf:.0f}x |\n")
    print(text)
    if args.record:
        record(text)
    return rows


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
