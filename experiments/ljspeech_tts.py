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
from experiments.configs.common import with_vocabulary
from experiments.configs.ljspeech_tts import PRESETS, LJSpeechTTSConfig, TTSEvaluationConfig, config
from experiments.flags import (WHOLE_SPLIT, add_data_args, add_distributed_args, add_trainer_args, build_mesh,
                               initialize_distributed, load_data, parse_tree, run_command, shared_parts)
from experiments.wiring import eval_pipeline, fit_summary, train_on_cache, write_config, write_report
from mmspeech_jax.data import make_batch_iterator, natural_eval_feature_cache
from mmspeech_jax.evaluate.alignment import boundary_error_ms, path_log_probability
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.evaluate.mcd import mcd_dtw, mcd_sptk
from mmspeech_jax.evaluate.plots import save_figure
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.fastspeech2 import FastSpeech2, model_inputs
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.distributed import barrier, is_primary
from mmspeech_jax.workdir import strict_json
from experiments.tts_recipe import eval_summaries, sample_views


def parse_args(argv=None):
    """(args, the run's `LJSpeechTTSConfig`): the flags, then the tree they fill with `--set` applied over it."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/ljspeech_tts")
    p.add_argument("--preset", default="base", choices=PRESETS)
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
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> LJSpeechTTSConfig:
    """The tree the flags describe (the vocabulary a stand-in until the data loads)."""
    tree = config(args.preset, steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size)
    evaluation = TTSEvaluationConfig(
        num_samples=args.num_samples, asr_workdir=args.asr_workdir,
        intelligibility_sentences=args.intelligibility_sentences, vocoder=args.vocoder,
        natural_eval_utterances=args.natural_eval_utterances, natural_curve_sentences=args.natural_curve_sentences)
    return dataclasses.replace(tree, **shared_parts(args), evaluation=evaluation)


def main(argv=None):
    args, tree = parse_args(argv)
    initialize_distributed(args)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # before any data loads
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = load_data(tree.data, tree.trainer.progress)
    tree = with_vocabulary(tree, len(cache.table))
    config, evaluation = tree.model, tree.evaluation
    model = FastSpeech2(config)
    lock = write_config(workdir, "tts", tree, cache, cache.table, primary=is_primary())
    prepare = lambda batch: model_inputs(batch, config)
    seed = tree.trainer.seed
    init = lambda first: init_params(model, {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
                                     first, train=False)
    loss_fn = make_fastspeech2_loss_fn(model, binarization_start=tree.loss.binarization_start)
    curve, closed_loop = [], None
    if evaluation.asr_workdir and evaluation.natural_curve_sentences and is_primary():
        closed_loop = natural_closed_loop(model, cache.table, MelConfig(**cache.config["mel"]),
                                          cache.config["tokenizer"], Path(evaluation.asr_workdir),
                                          evaluation.natural_curve_sentences, evaluation.vocoder)
    eval_config = eval_pipeline(tree.pipeline)
    trained = train_on_cache(workdir, tree, cache, model, loss_fn, prepare, init, mesh=mesh,
                             on_eval=eval_summaries(model, cache, eval_config, prepare, evaluation.num_samples,
                                                    closed_loop=closed_loop, curve=curve))
    result = trained.result
    if not is_primary():  # the primary evaluates and writes the report
        barrier("report written")
        return {}
    report = evaluate(model, result.state.params, cache, eval_config, prepare, workdir, evaluation.num_samples,
                      recordings=embedded_recordings(tree.data))
    report.update(**fit_summary(result), bucket_shapes=trained.bucket_shapes)
    if evaluation.asr_workdir:
        asr = Path(evaluation.asr_workdir)
        report["intelligibility"] = intelligibility(workdir, asr, cache,
                                                    cache.indices("test")[: evaluation.intelligibility_sentences],
                                                    evaluation.vocoder)
        if evaluation.natural_eval_utterances != 0:
            natural = natural_eval_feature_cache(evaluation.natural_eval_utterances, progress=tree.trainer.progress)
            report["intelligibility_natural"] = intelligibility(workdir, asr, natural, natural.indices("test"),
                                                                evaluation.vocoder)
        if curve:
            report["natural_cer_curve"] = curve
    write_report(workdir, report)
    print(strict_json(report, indent=1))
    barrier("report written")
    if lock is not None:
        lock.release()
    return report


def _vocoder(vocoder_workdir):
    from mmspeech_jax.vocode import Vocoder

    return None if vocoder_workdir is None else Vocoder.from_workdir(vocoder_workdir)


def intelligibility(workdir: Path, asr_workdir: Path, cache, rows, vocoder_workdir=None,
                    compute_dtype: str = "float32") -> dict:
    """The closed loop on the sentences of `cache` at `rows`: this TTS -> Griffin-Lim (or the neural vocoder of
    `vocoder_workdir`) -> the ASR, CER/WER, next to the ASR on the true recordings and on the true mels through the
    same vocoder; `cer_ratio`: synthesized over true-recording CER (issue #27's target: at most 1.5). Both models
    compute in `compute_dtype`."""
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber

    texts = [cache.texts[int(i)] for i in rows]
    synthesizer = Synthesizer.from_workdir(workdir).with_compute_dtype(compute_dtype).use_vocoder(
        _vocoder(vocoder_workdir))
    result = evaluate_tts(synthesizer, Transcriber.from_workdir(asr_workdir).with_compute_dtype(compute_dtype), texts,
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


def embedded_recordings(data):
    """utterance id -> its recording (float32 (S,) at the corpus's rate) for the embedded corpus of a `DataConfig`;
    None for LJSpeech (the report's SPTK MCD is then left out)."""
    from mmspeech_jax.data.ljspeech import is_prepared

    if data.source == "ljspeech" or (data.source == "auto" and is_prepared(data.data_dir)):
        return None
    from mmspeech_jax.data import CorpusConfig, generate_corpus

    corpus = generate_corpus(CorpusConfig(num_utterances=data.corpus_size), progress=False)
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
