"""FastSpeech2's TensorBoard views, shared by the experiments that train one (`experiments/ljspeech_tts.py`,
`experiments/multispeaker_tts.py`): the figure and Griffin-Lim audio of a validation utterance, and the trainer's
`on_eval` hook that logs them (and the natural-set closed loop) after each evaluation. Not an experiment itself (no
`main`): experiments import it, never each other.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.flags import WHOLE_SPLIT
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.audio.io import clip_protected
from mmspeech_jax.data import make_batch_iterator
from mmspeech_jax.evaluate.plots import tts_example_figure
from mmspeech_jax.models.fastspeech2 import FastSpeech2
from mmspeech_jax.train.summaries import Audio, Image, Scalar, figure_pixels


def sample_views(batch, r, aux, mel_gen, gen_mask, cache, mel_cfg):
    """Row r of a validation batch -> (its figure: target vs generated mel, alignment, pitch; the generated mel's
    Griffin-Lim waveform at the model's level, `clip_protected`)."""
    t, n, tg = int(batch["frame_lengths"][r]), int(batch["token_lengths"][r]), int(gen_mask[r].sum())
    fig = tts_example_figure(batch["mel"][r, :t], mel_gen[r, :tg],
                             np.exp(aux["log_alignment"][r, :t, :n]) if "log_alignment" in aux else None,
                             aux["pitch_target"][r, :n], aux["pitch"][r, :n], cache.texts[int(batch["index"][r])])
    wave = log_mel_to_waveform(mel_gen[r, : max(tg, 2)], jax.random.PRNGKey(0), mel_cfg)
    return fig, clip_protected(wave)


def eval_summaries(model, cache, eval_config, prepare, count: int, positions=None, generate=None,
                   closed_loop=None, curve: list | None = None):
    """The trainer's `on_eval` hook (None when count is 0 and there is no `closed_loop`): after each evaluation, for
    the first `count` validation utterances (those `evaluate` plots at the end; `positions` narrows the split as in
    `make_batch_iterator`), the figure of `sample_views` as an Image and its generated speech as Audio, so
    TensorBoard shows the alignment and the voice taking shape during training. `generate(params, model_batch,
    max_frames) -> (mel, frame_mask, ...)`: FastSpeech2's from the batch's tokens when None (a conditioned model
    passes its own). `closed_loop(params) -> (cer, failed)` (`natural_closed_loop`): its CER as the Scalar
    `natural_synthesized_cer`, also appended to `curve` as {"step", "seconds" (since the hook was made: this
    process's training time, compilation and earlier evaluations included), "natural_synthesized_cer",
    "unsynthesizable"}."""
    if count == 0 and closed_loop is None:
        return None
    started = time.perf_counter()
    batch = next(iter(make_batch_iterator(cache, "validation", eval_config, positions=positions, verbose=False,
                                          **WHOLE_SPLIT)))
    model_batch, rows = prepare(batch), np.flatnonzero(batch["example_mask"])[:count]
    forward = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))
    if generate is None:
        generate = lambda p, b, n: model.apply({"params": p}, b["tokens"], b["token_mask"], n,
                                               method=FastSpeech2.generate)
    generate = jax.jit(generate, static_argnums=2)
    mel_cfg = MelConfig(**cache.config["mel"])

    def on_eval(params, step):
        seconds = time.perf_counter() - started
        summaries = {}
        if closed_loop is not None:
            cer, failed = closed_loop(params)
            summaries["natural_synthesized_cer"] = Scalar(cer)
            if curve is not None:
                curve.append({"step": int(step), "seconds": round(seconds, 1), "natural_synthesized_cer": cer,
                              "unsynthesizable": failed})
        if not rows.size:
            return summaries
        _, aux = jax.device_get(forward(params, model_batch))
        mel_gen, gen_mask = jax.device_get(generate(params, model_batch, batch["mel"].shape[1] * 2)[:2])
        for r in rows:
            uid = cache.ids[int(batch["index"][r])]
            fig, wave = sample_views(batch, r, aux, mel_gen, gen_mask, cache, mel_cfg)
            summaries[f"{uid}/plot"] = Image(figure_pixels(fig))
            summaries[f"{uid}/generated"] = Audio(wave, mel_cfg.sample_rate)
        return summaries

    return on_eval
