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

from experiments.configs.multispeaker_tts import (AdaptationConfig, MultiSpeakerEvaluationConfig, MultiSpeakerTTSConfig,
                                                  VoicesConfig, config)
from experiments.flags import add_trainer_args, build_mesh, parse_tree, run_command, shared_parts, trainer_config
from experiments.tts_recipe import eval_summaries
from experiments.wiring import eval_pipeline, fit_tree, train_on_cache, write_config, write_report
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.audio.io import clip_protected, save_audio
from mmspeech_jax.data import embedded_feature_cache, make_batch_iterator, multispeaker_config
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.evaluate.mcd import mcd_dtw
from mmspeech_jax.evaluate.plots import pyplot, save_figure
from mmspeech_jax.evaluate.speaker_similarity import cosine, train_speaker_classifier
from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
from mmspeech_jax.models.fastspeech2 import model_inputs
from mmspeech_jax.models.hyperspeech import FUSIONS, HyperSpeech, trainable_mask
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer, merge_pretrained
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import make_optimizer
from mmspeech_jax.workdir import strict_json

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
    return parse_tree(p, argv, from_flags, bare_keys="model.backbone")  # --set dropout=0: the FastSpeech2 backbone's


def from_flags(args) -> MultiSpeakerTTSConfig:
    """The tree the flags describe (the vocabulary a stand-in until the data loads)."""
    try:
        voices = VoicesConfig(args.corpus_size, args.num_voices, args.held_out)
    except ConfigError as exc:  # as before the trees: the flag's name
        raise ConfigError(str(exc).replace("VoicesConfig.held_out", "--held_out")) from None
    tree = config(args.preset, steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
                  voices=voices, fusion=args.fusion, adapter_dim=args.adapter_dim)
    parts = shared_parts(args)
    return dataclasses.replace(
        tree, pipeline=parts["pipeline"], trainer=trainer_config(args, patience=None), mesh=parts["mesh"],
        adaptation=AdaptationConfig(args.adapt_utterances, args.adapt_steps, args.adapt_learning_rate),
        evaluation=MultiSpeakerEvaluationConfig(args.eval_utterances, args.classifier_steps, args.asr_workdir,
                                                args.num_samples))


def main(argv=None):
    args, tree = parse_args(argv)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # the multi-speaker training; before any data loads
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    v = tree.voices
    corpus = multispeaker_config(v.num_voices, num_utterances=v.corpus_size)
    print(f"data: embedded multi-voice espeak-ng corpus ({v.corpus_size} utterances, {v.num_voices} voices)")
    cache = embedded_feature_cache(corpus, progress=tree.trainer.progress)
    voices = [voice.id for voice in corpus.voices]
    known = v.known
    tree = dataclasses.replace(tree, model=dataclasses.replace(
        tree.model, backbone=dataclasses.replace(tree.model.backbone, vocab_size=len(cache.table))))
    config, evaluation = tree.model, tree.evaluation
    lock = write_config(workdir, "hyperspeech", tree, cache, cache.table, voices=voices,
                        training_voices=voices[:known])
    rows = {split: cache.indices(split) for split in ("train", "validation", "test")}
    of_voices = lambda r, ids: r[np.isin(cache.speakers[r], ids)]

    # 1. the multi-speaker model on the training voices
    model = HyperSpeech(config)
    pipeline, seed = tree.pipeline, tree.trainer.seed
    eval_config = eval_pipeline(pipeline)
    prepare = lambda b: {**model_inputs(b, config.backbone), "speaker": np.where(b["speaker"] < known, b["speaker"], -1)}
    train_rows, val_rows = of_voices(rows["train"], range(known)), of_voices(rows["validation"], range(known))
    init = lambda first: init_params(model, {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(seed + 1)},
                                     first, train=False)
    result = train_on_cache(workdir, tree, cache, model,
                            make_fastspeech2_loss_fn(model, binarization_start=tree.loss.binarization_start), prepare,
                            init, positions=train_rows, eval_positions=val_rows, evaluate=bool(val_rows.size),
                            mesh=mesh, on_eval=eval_summaries(model, cache, eval_config, prepare,
                                                              evaluation.num_samples if val_rows.size else 0, val_rows,
                                                              functools.partial(speaker_generate, model))).result
    # On the host: the adaptation runs (a few utterances of one voice, batches smaller than a mesh) use one device.
    trained = jax.device_get(result.state.params)

    # 2. the judge: a speaker classifier over all voices, trained on real recordings of the training split
    classifier = train_speaker_classifier(make_batch_iterator(cache, "train", pipeline, verbose=False),
                                          v.num_voices, evaluation.classifier_steps, jax.random.PRNGKey(seed + 2))
    transcriber = None
    if evaluation.asr_workdir:
        from mmspeech_jax.evaluate.intelligibility import as_recorded
        from mmspeech_jax.transcribe import Transcriber

        transcriber = as_recorded(Transcriber.from_workdir(evaluation.asr_workdir))  # the audio as it is

    # 3. adaptation to each held-out voice
    mel_cfg = MelConfig(**cache.config["mel"])
    table = []
    adaptation = tree.adaptation
    for speaker in range(known, v.num_voices):
        voice_train = of_voices(rows["train"], [speaker])
        adapt_rows = voice_train[: adaptation.utterances]
        # held-out voices never trained the model: any of their other utterances can score it (held-out splits first)
        eval_rows = np.concatenate([of_voices(rows["validation"], [speaker]), of_voices(rows["test"], [speaker]),
                                    voice_train[adaptation.utterances:]])[: evaluation.eval_utterances]
        if adapt_rows.size == 0 or eval_rows.size == 0:
            raise ConfigError(f"voice {voices[speaker]} has no adaptation or evaluation utterances; raise --corpus_size")
        reference = cache[int(adapt_rows[0])]["mel"]
        for strategy in STRATEGIES:
            run_model, run_params, trainable = adapt(tree, cache, trained, strategy, speaker, adapt_rows,
                                                     workdir / "adapt" / voices[speaker] / strategy, prepare)
            row = score(run_model, run_params, cache, eval_rows, reference, classifier, speaker, transcriber, mel_cfg,
                        workdir / "samples" / f"{voices[speaker]}-{strategy}.wav")
            table.append({"voice": voices[speaker], "strategy": strategy, "trainable_parameters": trainable,
                          "total_parameters": count_parameters(run_params),
                          "steps": 0 if strategy == "zero_shot" else adaptation.steps, **row})
            print(json.dumps(table[-1]))
    plot_embeddings(model, trained, cache, rows, voices, known, workdir / "plots" / "embeddings.png")
    report = {"rows": table, "summary": summarize(table), "training": {
        "steps": int(result.state.step), "wall_seconds": result.wall_seconds, "best_val_loss": result.best_val_loss,
        "compilations": result.compilations, "training_voices": voices[:known], "held_out_voices": voices[known:],
        "adapt_utterances": adaptation.utterances, "adapt_steps": adaptation.steps}}
    write_report(workdir, report)
    print(strict_json(report["summary"], indent=1))
    lock.release()
    return report


def speaker_generate(model, params, batch, max_frames: int):
    """HyperSpeech.generate conditioned on the batch's speaker ids (the `generate` of `eval_summaries`)."""
    return model.apply({"params": params}, batch["tokens"], batch["token_mask"], max_frames, batch["speaker"],
                       method=HyperSpeech.generate)


def adapt(tree, cache, trained, strategy, speaker, adapt_rows, run_dir, prepare):
    """(model, params after adaptation, trainable parameter count) for one strategy on one voice."""
    if strategy == "zero_shot":
        return HyperSpeech(tree.model), trained, 0
    run_config = dataclasses.replace(tree.model, plain_adapters=strategy == "plain_adapters")
    model = HyperSpeech(run_config)
    pipeline = dataclasses.replace(tree.pipeline, batch_size=min(tree.pipeline.batch_size, adapt_rows.size))
    seed, steps = tree.trainer.seed, tree.adaptation.steps
    batches = make_batch_iterator(cache, "train", pipeline, positions=adapt_rows, verbose=False)
    params = trained
    if strategy == "plain_adapters":
        first = prepare(next(make_batch_iterator(cache, "train", pipeline, positions=adapt_rows, verbose=False)))
        keys = {"params": jax.random.PRNGKey(seed + speaker), "dropout": jax.random.PRNGKey(0)}
        fresh = init_params(model, keys, first, train=False)
        params = merge_pretrained(fresh, trained, prefixes=tuple(trained))
    mask = trainable_mask(params, strategy)
    optimizer = tree.adaptation.optimizer
    tx = masked_optimizer(make_optimizer(optimizer), mask)
    result = fit_tree(run_dir, tree, params, make_fastspeech2_loss_fn(model, binarization_start=0), batches, tx=tx,
                      optimizer=optimizer, trainer=dataclasses.replace(
                          tree.trainer, steps=steps, eval_every=steps + 1, checkpoint_every=max(steps, 1),
                          keep_checkpoints=1, patience=None), prepare=prepare)
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
    save_audio(sample_path, clip_protected(waves[0]), mel_cfg.sample_rate,
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
