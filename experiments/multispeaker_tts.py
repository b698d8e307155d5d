"""Multi-speaker TTS with HyperSpeech: train on N voices of the embedded multi-voice corpus, hold voices out, adapt
to each held-out voice from a few utterances four ways and compare.

    python -m experiments.multispeaker_tts                   # 8 voices, 2 held out, base preset
    python -m experiments.multispeaker_tts --preset tiny --corpus_size 48 --num_voices 4 --steps 4 --adapt_steps 2

Strategies per held-out voice (speaker id unknown: the voice is given by a reference recording):
  zero_shot       the multi-speaker model as trained, conditioned on one reference utterance; nothing trains
  full            every parameter fine-tunes on the adaptation utterances
  plain_adapters  backbone and conditioning frozen; fresh bottleneck adapters (one set for the voice) train
  hyper           backbone frozen; the hypernetwork, conditioning encoders and fusion layer train
Each is scored on the voice's other utterances (validation/test first; none of them trained anything): MCD (DTW) against its real recordings, speaker
similarity from an independent speaker classifier (cosine to the voice's real-recording centroid, and how often
the classifier names the voice), and CER/WER through an ASR workdir when `--asr_workdir` is given.

Writes into the workdir: config.json (task "hyperspeech": `mmspeech synthesize --workdir W --speaker 2` or
`--reference a.wav` reads it), symbols.json, checkpoints/, metrics.jsonl, tensorboard/ (losses; after each evaluation
the plot and generated speech, in its voice, of the first --num_samples validation utterances), adapt/<voice>/<strategy>/
(each adaptation run, resumable), plots/embeddings.png (2-D PCA of the reference-encoder embeddings per voice),
samples/<voice>-<strategy>.wav and report.json (the table). Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from pathlib import Path

import jax
import numpy as np

from experiments.flags import add_trainer_args, mesh_from_flag, parse_checked, run_command, trainer_config
from experiments.tts_recipe import eval_summaries
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.audio.io import peak_normalized, save_audio
from mmspeech_jax.data import PipelineConfig, embedded_feature_cache, make_batch_iterator, multispeaker_config
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.evaluate.mcd import mcd_dtw
from mmspeech_jax.evaluate.plots import pyplot, save_figure
from mmspeech_jax.evaluate.speaker_similarity import cosine, train_speaker_classifier
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.fastspeech2 import model_inputs, preset
from mmspeech_jax.models.hyperspeech import FUSIONS, HyperSpeech, HyperSpeechConfig, trainable_mask
from mmspeech_jax.overrides import apply_overrides
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer, merge_pretrained
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from mmspeech_jax.train.trainer import fit
from mmspeech_jax.workdir import atomic_write_text, strict_json, write_run_config

STRATEGIES = ("zero_shot", "full", "plain_adapters", "hyper")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/multispeaker_tts")
    p.add_argument("--preset", default="base", choices=["tiny", "base", "ljspeech"])
    p.add_argument("--corpus_size", type=int, default=multispeaker_config().num_utterances,
                   help="utterances of the multi-voice corpus (default: as many as the single-voice default, ~10 h)")
    p.add_argument("--num_voices", type=int, default=8)
    p.add_argument("--held_out", type=int, default=2, help="the last voices, kept out of multi-speaker training")
    p.add_argument("--fusion", default="film", choices=FUSIONS)
    p.add_argument("--adapter_dim", type=int, default=16)
    add_trainer_args(p, steps=800, learning_rate=1.5e-3, eval_every=200)
    p.set_defaults(batch_size=8)
    p.add_argument("--adapt_utterances", type=int, default=20)
    p.add_argument("--adapt_steps", type=int, default=100)
    p.add_argument("--adapt_learning_rate", type=float, default=5e-4)
    p.add_argument("--eval_utterances", type=int, default=10, help="per held-out voice")
    p.add_argument("--classifier_steps", type=int, default=300)
    p.add_argument("--asr_workdir", default=None, help="a trained ASR workdir: also report CER/WER per strategy")
    p.add_argument("--num_samples", type=int, default=3,
                   help="validation utterances whose plot and speech (in their voice) TensorBoard shows during training")
    # Stand-in sizes (the vocabulary is the cache's): any valid ones check the other fields and the --set overrides.
    args = parse_checked(p, argv, model_config=lambda a: model_config(a, vocab_size=2, num_speakers=1))
    if not 2 <= args.held_out < args.num_voices:
        p.error(f"--held_out must be at least 2 and leave a training voice, got {args.held_out} of "
                f"{args.num_voices}")
    return args



def model_config(args, vocab_size: int, num_speakers: int) -> HyperSpeechConfig:
    """HyperSpeech over the preset the flags name (with their `--set` overrides) for `num_speakers` known voices."""
    backbone = apply_overrides(preset(args.preset, vocab_size), args.overrides)
    return HyperSpeechConfig(backbone, num_speakers=num_speakers, fusion=args.fusion, adapter_dim=args.adapter_dim)


def main(argv=None):
    args = parse_args(argv)
    mesh = mesh_from_flag(args.mesh, args.batch_size)  # the multi-speaker training; before any data loads
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = multispeaker_config(args.num_voices, num_utterances=args.corpus_size)
    print(f"data: embedded multi-voice espeak-ng corpus ({args.corpus_size} utterances, {args.num_voices} voices)")
    cache = embedded_feature_cache(corpus, progress=not args.no_progress)
    voices = [v.id for v in corpus.voices]
    known = args.num_voices - args.held_out
    config = model_config(args, len(cache.table), known)
    lock = write_run_config(workdir, {"task": "hyperspeech", "model": dataclasses.asdict(config), "args": vars(args),
                               "features": cache.config, "stats": cache.stats, "voices": voices,
                               "training_voices": voices[:known]}, cache.table)
    rows = {split: cache.indices(split) for split in ("train", "validation", "test")}
    of_voices = lambda r, ids: r[np.isin(cache.speakers[r], ids)]

    # 1. the multi-speaker model on the training voices
    model = HyperSpeech(config)
    pipeline = PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets, num_epochs=None, seed=args.seed)
    eval_config = dataclasses.replace(pipeline, num_epochs=1, shuffle=False)
    prepare = lambda b: {**model_inputs(b, config.backbone), "speaker": np.where(b["speaker"] < known, b["speaker"], -1)}
    train_rows, val_rows = of_voices(rows["train"], range(known)), of_voices(rows["validation"], range(known))
    batches = make_batch_iterator(cache, "train", pipeline, positions=train_rows)
    first = prepare(next(make_batch_iterator(cache, "train", pipeline, positions=train_rows, verbose=False)))
    params = init_params(model, {"params": jax.random.PRNGKey(args.seed), "dropout": jax.random.PRNGKey(args.seed + 1)},
                         first, train=False)
    optimizer = OptimizerConfig(learning_rate=args.learning_rate, warmup_steps=min(400, args.steps // 10),
                                total_steps=args.steps)
    tx = make_optimizer(optimizer)
    result = fit(workdir, params, tx, make_fastspeech2_loss_fn(model, binarization_start=args.steps // 3), batches,
                 trainer_config(args, patience=None),
                 prepare=prepare,
                 eval_batches=(lambda: make_batch_iterator(cache, "validation", eval_config, positions=val_rows,
                                                           verbose=False)) if val_rows.size else None,
                 mesh=mesh, on_eval=eval_summaries(model, cache, eval_config, prepare,
                                                   args.num_samples if val_rows.size else 0, val_rows,
                                                   functools.partial(speaker_generate, model)),
                 learning_rate=learning_rate_schedule(optimizer))
    # On the host: the adaptation runs (a few utterances of one voice, batches smaller than a mesh) use one device.
    trained = jax.device_get(result.state.params)

    # 2. the judge: a speaker classifier over all voices, trained on real recordings of the training split
    classifier = train_speaker_classifier(make_batch_iterator(cache, "train", pipeline, verbose=False),
                                          args.num_voices, args.classifier_steps, jax.random.PRNGKey(args.seed + 2))
    transcriber = None
    if args.asr_workdir:
        from mmspeech_jax.transcribe import Transcriber

        transcriber = Transcriber.from_workdir(args.asr_workdir)

    # 3. adaptation to each held-out voice
    mel_cfg = MelConfig(**cache.config["mel"])
    table = []
    for speaker in range(known, args.num_voices):
        voice_train = of_voices(rows["train"], [speaker])
        adapt_rows = voice_train[: args.adapt_utterances]
        # held-out voices never trained the model: any of their other utterances can score it (held-out splits first)
        eval_rows = np.concatenate([of_voices(rows["validation"], [speaker]), of_voices(rows["test"], [speaker]),
                                    voice_train[args.adapt_utterances:]])[: args.eval_utterances]
        if adapt_rows.size == 0 or eval_rows.size == 0:
            raise ConfigError(f"voice {voices[speaker]} has no adaptation or evaluation utterances; raise --corpus_size")
        reference = cache[int(adapt_rows[0])]["mel"]
        for strategy in STRATEGIES:
            run_model, run_params, trainable = adapt(args, cache, config, trained, strategy, speaker, adapt_rows,
                                                     workdir / "adapt" / voices[speaker] / strategy, prepare)
            row = score(run_model, run_params, cache, eval_rows, reference, classifier, speaker, transcriber, mel_cfg,
                        workdir / "samples" / f"{voices[speaker]}-{strategy}.wav")
            table.append({"voice": voices[speaker], "strategy": strategy, "trainable_parameters": trainable,
                          "total_parameters": count_parameters(run_params),
                          "steps": 0 if strategy == "zero_shot" else args.adapt_steps, **row})
            print(json.dumps(table[-1]))
    plot_embeddings(model, trained, cache, rows, voices, known, workdir / "plots" / "embeddings.png")
    report = {"rows": table, "summary": summarize(table), "training": {
        "steps": int(result.state.step), "wall_seconds": result.wall_seconds, "best_val_loss": result.best_val_loss,
        "compilations": result.compilations, "training_voices": voices[:known], "held_out_voices": voices[known:],
        "adapt_utterances": args.adapt_utterances, "adapt_steps": args.adapt_steps}}
    atomic_write_text(workdir / "report.json", strict_json(report, indent=1))
    print(strict_json(report["summary"], indent=1))
    lock.release()
    return report


def speaker_generate(model, params, batch, max_frames: int):
    """HyperSpeech.generate conditioned on the batch's speaker ids (the `generate` of `eval_summaries`)."""
    return model.apply({"params": params}, batch["tokens"], batch["token_mask"], max_frames, batch["speaker"],
                       method=HyperSpeech.generate)


def adapt(args, cache, config, trained, strategy, speaker, adapt_rows, run_dir, prepare):
    """(model, params after adaptation, trainable parameter count) for one strategy on one voice."""
    if strategy == "zero_shot":
        return HyperSpeech(config), trained, 0
    run_config = dataclasses.replace(config, plain_adapters=strategy == "plain_adapters")
    model = HyperSpeech(run_config)
    batch_size = min(args.batch_size, adapt_rows.size)
    pipeline = PipelineConfig(batch_size=batch_size, num_buckets=args.num_buckets, num_epochs=None, seed=args.seed)
    batches = make_batch_iterator(cache, "train", pipeline, positions=adapt_rows, verbose=False)
    params = trained
    if strategy == "plain_adapters":
        first = prepare(next(make_batch_iterator(cache, "train", pipeline, positions=adapt_rows, verbose=False)))
        keys = {"params": jax.random.PRNGKey(args.seed + speaker), "dropout": jax.random.PRNGKey(0)}
        fresh = init_params(model, keys, first, train=False)
        params = merge_pretrained(fresh, trained, prefixes=tuple(trained))
    mask = trainable_mask(params, strategy)
    optimizer = OptimizerConfig(learning_rate=args.adapt_learning_rate, warmup_steps=max(args.adapt_steps // 10, 1),
                                total_steps=args.adapt_steps)
    tx = masked_optimizer(make_optimizer(optimizer), mask)
    result = fit(run_dir, params, tx, make_fastspeech2_loss_fn(model, binarization_start=0), batches,
                 trainer_config(args, steps=args.adapt_steps, eval_every=args.adapt_steps + 1,
                                checkpoint_every=args.adapt_steps, keep_checkpoints=1, patience=None),
                 prepare=prepare, learning_rate=learning_rate_schedule(optimizer))
    return model, result.state.params, count_parameters(params, mask)


def padded(arrays: list[np.ndarray], multiple: int):
    """Variable-length arrays (L_i, ...) -> zero-padded (B, L, ...) with L a multiple of `multiple`, and mask (B, L)."""
    length = -(-max(a.shape[0] for a in arrays) // multiple) * multiple
    out = np.zeros((len(arrays), length) + arrays[0].shape[1:], arrays[0].dtype)
    mask = np.zeros((len(arrays), length), bool)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]], mask[i, : a.shape[0]] = a, True
    return out, mask


@functools.partial(jax.jit, static_argnums=(0, 4))
def _generate(model, params, tokens, token_mask, frames, reference, reference_mask):
    return model.apply({"params": params}, tokens, token_mask, frames, None, reference, reference_mask,
                       method=HyperSpeech.generate)


def score(model, params, cache, eval_rows, reference, classifier, speaker, transcriber, mel_cfg, sample_path) -> dict:
    """Generate the voice's evaluation sentences from its reference; MCD, speaker similarity and (optionally) CER."""
    items = [cache[int(r)] for r in eval_rows]
    tokens, token_mask = padded([it["tokens"] for it in items], 32)
    true_mels = [it["mel"] for it in items]
    frames = -(-int(max(m.shape[0] for m in true_mels) * 1.5) // 128) * 128
    ref, ref_mask = padded([reference] * len(items), 128)
    mel, frame_mask, _ = jax.device_get(_generate(model, params, tokens, token_mask, frames, ref, ref_mask))
    generated = [mel[i, : max(int(frame_mask[i].sum()), 2)] for i in range(len(items))]
    gen_pad, gen_mask = padded(generated, 128)
    true_pad, true_mask = padded(true_mels, 128)
    true_embeddings, true_probabilities = classifier(true_pad, true_mask)
    embeddings, probabilities = classifier(gen_pad, gen_mask)
    centroid = true_embeddings.mean(axis=0)
    row = {"mcd_dtw_db": float(np.mean([mcd_dtw(t, g) for t, g in zip(true_mels, generated)])),
           "speaker_cosine": float(np.mean([cosine(e, centroid) for e in embeddings])),
           "speaker_accuracy": float(np.mean(probabilities.argmax(-1) == speaker)),
           "ground_truth_speaker_accuracy": float(np.mean(true_probabilities.argmax(-1) == speaker))}
    waves = [np.asarray(log_mel_to_waveform(g, jax.random.PRNGKey(0), mel_cfg)) for g in generated]
    save_audio(sample_path, peak_normalized(waves[0]), mel_cfg.sample_rate,
               overwrite=True)
    if transcriber is not None:
        from mmspeech_jax.evaluate.asr import error_rates

        hyps = [transcriber.transcribe_features([transcriber.mel_from_audio(w, mel_cfg.sample_rate)])[0] for w in waves]
        rates = error_rates([cache.texts[int(r)] for r in eval_rows], hyps)
        row.update(cer=rates["cer"], wer=rates["wer"])
    return row


def summarize(table: list[dict]) -> dict:
    """Per strategy, the mean over held-out voices of each numeric column."""
    out = {}
    for strategy in STRATEGIES:
        rows = [r for r in table if r["strategy"] == strategy]
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[strategy] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    return out


def plot_embeddings(model, params, cache, rows, voices, known, path, per_voice: int = 20):
    """2-D PCA of the model's reference-encoder embedding of real utterances, one colour per voice; held-out
    voices drawn as crosses."""
    embed = jax.jit(lambda p, m, k: model.apply({"params": p}, None, m, k, method=HyperSpeech.condition)[0])
    pool = np.concatenate([rows["validation"], rows["test"], rows["train"]])
    points, labels = [], []
    for speaker in range(len(voices)):
        chosen = pool[cache.speakers[pool] == speaker][:per_voice]
        if chosen.size:
            mels, masks = padded([cache[int(r)]["mel"] for r in chosen], 128)
            points.append(np.asarray(embed(params, mels, masks)))
            labels += [speaker] * chosen.size
    x = np.concatenate(points)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy, labels = x @ vt[:2].T, np.asarray(labels)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for speaker, voice in enumerate(voices):
        sel = labels == speaker
        held = speaker >= known
        ax.scatter(xy[sel, 0], xy[sel, 1], s=30 if held else 12, marker="x" if held else "o",
                   label=f"{voice}{' (held out)' if held else ''}")
    ax.set_title("reference-encoder embeddings (PCA)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


if __name__ == "__main__":
    run_command(main)
