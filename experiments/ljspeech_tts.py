"""FastSpeech2 with its own aligner on the embedded corpus (default) or LJSpeech.

    python -m experiments.ljspeech_tts                       # base preset, embedded corpus, workdir ./workdir/ljspeech_tts
    python -m experiments.ljspeech_tts --preset tiny --steps 200 --workdir /tmp/tts

Rerunning the same command resumes from the last checkpoint. Writes config.json, symbols.json, checkpoints/,
tensorboard/ (losses; after each evaluation the plot and generated speech of the first --num_samples validation
utterances), metrics.jsonl, plots/*.png, samples/*.wav and report.json into the workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.io import save_audio
from experiments.flags import (WHOLE_SPLIT, add_data_args, add_distributed_args, add_trainer_args,
                               initialize_distributed, load_data, mesh_from_flag, parse_checked, run_command,
                               trainer_config)
from mmspeech_jax.data import PipelineConfig, make_batch_iterator, natural_eval_feature_cache
from mmspeech_jax.evaluate.alignment import boundary_error_ms, path_log_probability
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.evaluate.mcd import mcd_dtw, mcd_sptk
from mmspeech_jax.evaluate.plots import save_figure
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.fastspeech2 import FastSpeech2, model_inputs, preset
from mmspeech_jax.overrides import apply_overrides
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from mmspeech_jax.train.distributed import barrier, is_primary
from mmspeech_jax.train.trainer import fit
from mmspeech_jax.workdir import atomic_write_text, strict_json, write_run_config
from experiments.tts_recipe import eval_summaries, sample_views


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/ljspeech_tts")
    p.add_argument("--preset", default="base", choices=["tiny", "base", "ljspeech"])
    add_data_args(p)
    # 2 400 steps: what fits the 30-minute budget on 2 cores (about 1.9 steps/s on the English corpus; RESULTS.md)
    add_trainer_args(p, steps=2400, learning_rate=1.5e-3, eval_every=200)
    p.set_defaults(batch_size=8)  # twice the updates of batch 16 in the same CPU time: faster to intelligible
    p.add_argument("--num_samples", type=int, default=3, help="validation utterances to plot and synthesize")
    p.add_argument("--asr_workdir", default=None,
                   help="a trained ASR workdir (experiments.ljspeech_asr): also report the CER/WER of synthesized "
                        "test sentences, next to the same ASR on their ground-truth recordings")
    p.add_argument("--intelligibility_sentences", type=int, default=20)
    p.add_argument("--vocoder", default=None, metavar="VOCODER_WORKDIR",
                   help="with --asr_workdir: speak the closed-loop sentences through this neural vocoder "
                        "(python -m experiments.vocoder), not Griffin-Lim")
    p.add_argument("--natural_eval_utterances", type=int, default=None,
                   help="with --asr_workdir: also the closed loop on the first N sentences of the natural "
                        "evaluation set (default: all 219; 0: skip)")
    p.add_argument("--natural_curve_sentences", type=int, default=40,
                   help="with --asr_workdir: after each evaluation, synthesize the first N natural evaluation "
                        "sentences with the current parameters and transcribe them; the CER goes to TensorBoard "
                        "(natural_synthesized_cer) and to the report's natural_cer_curve (0: off)")
    add_distributed_args(p)
    # The vocabulary is the feature cache's, not known before the data loads; any size checks the other fields.
    return parse_checked(p, argv, model_config=lambda a: model_config(a, vocab_size=2))


def model_config(args, vocab_size: int):
    """The preset the flags name, with their `--set` overrides."""
    return apply_overrides(preset(args.preset, vocab_size), args.overrides)


def main(argv=None):
    args = parse_args(argv)
    initialize_distributed(args)
    mesh = mesh_from_flag(args.mesh, args.batch_size)  # before any data loads
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = load_data(args)
    config = model_config(args, len(cache.table))
    model = FastSpeech2(config)
    lock = write_run_config(workdir, {"model": dataclasses.asdict(config), "args": vars(args), "features": cache.config,
                               "stats": cache.stats}, cache.table, primary=is_primary())
    pipeline = PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets, num_epochs=None, seed=args.seed)
    train = make_batch_iterator(cache, "train", pipeline)
    eval_config = dataclasses.replace(pipeline, num_epochs=1, shuffle=False)
    prepare = lambda batch: model_inputs(batch, config)
    first = prepare(next(make_batch_iterator(cache, "train", pipeline, verbose=False)))
    params = init_params(model, {"params": jax.random.PRNGKey(args.seed), "dropout": jax.random.PRNGKey(args.seed + 1)},
                         first, train=False)
    optimizer = OptimizerConfig(learning_rate=args.learning_rate, warmup_steps=min(400, args.steps // 10),
                                total_steps=args.steps)
    tx = make_optimizer(optimizer)
    loss_fn = make_fastspeech2_loss_fn(model, binarization_start=args.steps // 3)
    curve, closed_loop = [], None
    if args.asr_workdir and args.natural_curve_sentences and is_primary():
        closed_loop = natural_closed_loop(model, cache.table, MelConfig(**cache.config["mel"]),
                                          cache.config["tokenizer"], Path(args.asr_workdir),
                                          args.natural_curve_sentences, args.vocoder)
    result = fit(workdir, params, tx, loss_fn, train,
                 trainer_config(args),
                 prepare=prepare, eval_batches=lambda: make_batch_iterator(cache, "validation", eval_config, verbose=False),
                 mesh=mesh, on_eval=eval_summaries(model, cache, eval_config, prepare, args.num_samples,
                                                   closed_loop=closed_loop, curve=curve),
                 learning_rate=learning_rate_schedule(optimizer))
    if not is_primary():  # the primary evaluates and writes the report
        barrier("report written")
        return {}
    report = evaluate(model, result.state.params, cache, eval_config, prepare, workdir, args.num_samples,
                      recordings=embedded_recordings(args))
    report.update(steps=int(result.state.step), wall_seconds=result.wall_seconds,
                  steps_per_second=result.steps_per_second, best_val_loss=result.best_val_loss,
                  stopped_early=result.stopped_early, compilations=result.compilations,
                  bucket_shapes=len(train.shapes), skipped_updates=int(result.state.skipped))
    if args.asr_workdir:
        report["intelligibility"] = intelligibility(workdir, Path(args.asr_workdir), cache,
                                                    cache.indices("test")[: args.intelligibility_sentences],
                                                    args.vocoder)
        if args.natural_eval_utterances != 0:
            natural = natural_eval_feature_cache(args.natural_eval_utterances, progress=not args.no_progress)
            report["intelligibility_natural"] = intelligibility(workdir, Path(args.asr_workdir), natural,
                                                                natural.indices("test"), args.vocoder)
        if curve:
            report["natural_cer_curve"] = curve
    atomic_write_text(workdir / "report.json", strict_json(report, indent=1))
    print(strict_json(report, indent=1))
    barrier("report written")
    if lock is not None:
        lock.release()
    return report


def _vocoder(vocoder_workdir):
    from mmspeech_jax.vocode import Vocoder

    return None if vocoder_workdir is None else Vocoder.from_workdir(vocoder_workdir)


def intelligibility(workdir: Path, asr_workdir: Path, cache, rows, vocoder_workdir=None) -> dict:
    """The closed loop on the sentences of `cache` at `rows`: this TTS -> Griffin-Lim (or the neural vocoder of
    `vocoder_workdir`) -> the ASR, CER/WER, next to the ASR on the true recordings and on the true mels through the
    same vocoder; `cer_ratio`: synthesized over true-recording CER (issue #27's target: at most 1.5)."""
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber

    texts = [cache.texts[int(i)] for i in rows]
    synthesizer = Synthesizer.from_workdir(workdir).use_vocoder(_vocoder(vocoder_workdir))
    result = evaluate_tts(synthesizer, Transcriber.from_workdir(asr_workdir), texts,
                          {cache.texts[int(i)]: cache[int(i)]["mel"] for i in rows})
    truth = result["ground_truth"]
    ratio = result["synthesized"]["cer"] / truth["cer"] if truth and truth["cer"] > 0 else None
    return {"synthesized": result["synthesized"], "ground_truth": truth, "cer_ratio": ratio,
            "ground_truth_vocoded": result["ground_truth_vocoded"],
            "examples": [{k: line.get(k) for k in ("text", "transcript", "ground_truth_transcript",
                                                   "ground_truth_vocoded_transcript")}
                         for line in result["lines"][:3]]}


def natural_closed_loop(model, table, mel_config: MelConfig, tokenizer_kind: str, asr_workdir: Path, count: int,
                        vocoder_workdir=None):
    """params -> the ASR's CER (float) on the first `count` natural evaluation sentences synthesized with those
    parameters (Griffin-Lim or the vocoder of `vocoder_workdir`, then `asr_workdir`'s greedy transcriber): the
    quality-versus-training-time curve of issue #27, cheap enough to run at every evaluation. Sentences the model cannot synthesize yet (an untrained
    duration predictor can ask for more frames than are generated at once) are left out of the rate and counted
    in the second value returned, (cer, failed sentences)."""
    from mmspeech_jax.data.english_text import evaluation_sentences
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber

    texts = list(evaluation_sentences()[:count])
    synthesizer = Synthesizer(model, None, table, mel_config, tokenizer_kind).use_vocoder(_vocoder(vocoder_workdir))
    transcriber = Transcriber.from_workdir(asr_workdir)

    def score(params) -> tuple[float, int]:
        synthesizer.params = params
        result = evaluate_tts(synthesizer, transcriber, texts)
        return result["synthesized"]["cer"], sum("error" in line for line in result["lines"])

    return score


def inference_functions(model):
    """jitted (forward(params, batch) -> (outputs, aux) with the aligner's durations, generate(params, tokens,
    token_mask, max_frames) -> (mel, frame_mask, durations) from the predicted durations)."""
    forward = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))
    generate = jax.jit(lambda p, t, m, n: model.apply({"params": p}, t, m, n, method=FastSpeech2.generate),
                       static_argnums=3)
    return forward, generate


def embedded_recordings(args):
    """utterance id -> its recording (float32 (S,) at the corpus's rate) for the embedded corpus; None for LJSpeech
    (the report's SPTK MCD is then left out)."""
    from mmspeech_jax.data.ljspeech import is_prepared

    if args.data == "ljspeech" or (args.data == "auto" and is_prepared(args.data_dir)):
        return None
    from mmspeech_jax.data import CorpusConfig, generate_corpus

    corpus = generate_corpus(CorpusConfig(num_utterances=args.corpus_size), progress=False)
    by_id = {u.id: u for u in corpus.utterances}
    return lambda uid: corpus.audio(by_id[uid])


def evaluate(model, params, cache, eval_config, prepare, workdir: Path, num_samples: int, recordings=None) -> dict:
    """Validation: mel L1; MCD of generated speech (`mcd_db`: the established SPTK one, Griffin-Lim speech against
    the recording, when `recordings` (id -> audio) is given; `mcd_dtw_db`: the zoo's log-mel one); token F0 RMSE (Hz) and duration error of the predictors;
    aligner boundary error vs ground truth and, without labels, the geometric mean probability of its hard path;
    plots and Griffin-Lim samples."""
    forward, generate = inference_functions(model)
    mel_cfg = MelConfig(**cache.config["mel"])
    l1_sum, l1_count, boundary, plotted, path_logp, path_frames = 0.0, 0, [], 0, 0.0, 0
    mcds, sptk_mcds, f0_sq, f0_n, dur_abs, dur_n = [], [], 0.0, 0, 0.0, 0
    stats = cache.stats
    to_hz = lambda z: np.exp(np.asarray(z) * stats["log_f0_std"] + stats["log_f0_mean"])
    for batch in make_batch_iterator(cache, "validation", eval_config, verbose=False, **WHOLE_SPLIT):
        model_batch = prepare(batch)
        outputs, aux = jax.device_get(forward(params, model_batch))
        mask = batch["frame_mask"][..., None]
        l1_sum += float(np.sum(np.abs(outputs["mel_post"] - batch["mel"]) * mask))
        l1_count += int(mask.sum()) * batch["mel"].shape[-1]
        if "hard_alignment" in aux:
            total, frames = path_log_probability(aux["log_alignment"], aux["hard_alignment"])
            path_logp, path_frames = path_logp + total, path_frames + frames
        if "durations" in batch:
            boundary.append(boundary_error_ms(aux["durations"], batch["durations"], batch["token_lengths"],
                                              mel_cfg.hop_samples, mel_cfg.sample_rate))
        token_mask = batch["token_mask"]
        if aux["pitch"].shape == token_mask.shape:
            f0_sq += float(np.sum(((to_hz(aux["pitch"]) - to_hz(aux["pitch_target"])) ** 2)[token_mask]))
            f0_n += int(token_mask.sum())
        predicted_durations = np.round(np.maximum(np.exp(aux["log_duration"]) - 1, 0))
        dur_abs += float(np.sum(np.abs(predicted_durations - aux["durations"])[token_mask]))
        dur_n += int(token_mask.sum())
        mel_gen, gen_mask, _ = jax.device_get(generate(params, batch["tokens"], batch["token_mask"],
                                                       batch["mel"].shape[1] * 2))
        for r in np.flatnonzero(batch["example_mask"]):
            if len(mcds) < 20:
                t, tg = int(batch["frame_lengths"][r]), max(int(gen_mask[r].sum()), 1)
                mcds.append(mcd_dtw(batch["mel"][r, :t], mel_gen[r, :tg]))
                if recordings is not None:  # the established MCD: Griffin-Lim speech against the recording
                    wave = log_mel_to_waveform(mel_gen[r, : max(tg, 2)], jax.random.PRNGKey(0), mel_cfg)
                    sptk_mcds.append(mcd_sptk(recordings(cache.ids[int(batch["index"][r])]), np.asarray(wave),
                                              mel_cfg.sample_rate))
        if plotted < num_samples:
            for r in np.flatnonzero(batch["example_mask"])[: num_samples - plotted]:
                uid = cache.ids[int(batch["index"][r])]
                fig, wave = sample_views(batch, r, aux, mel_gen, gen_mask, cache, mel_cfg)
                save_figure(fig, workdir / "plots" / f"{uid}.png")
                save_audio(workdir / "samples" / f"{uid}.wav", wave, mel_cfg.sample_rate, overwrite=True)
                plotted += 1
    return {"val_mel_l1": l1_sum / max(l1_count, 1),
            "mcd_dtw_db": float(np.mean(mcds)) if mcds else None,
            "mcd_db": float(np.nanmean(sptk_mcds)) if np.isfinite(sptk_mcds).any() else None,
            "f0_rmse_hz": float(np.sqrt(f0_sq / f0_n)) if f0_n else None,
            "duration_mae_frames": dur_abs / max(dur_n, 1),
            "aligner_boundary_error_ms": float(np.nanmean(boundary)) if boundary else None,
            "aligner_path_probability": float(np.exp(path_logp / path_frames)) if path_frames else None}


if __name__ == "__main__":
    run_command(main)
