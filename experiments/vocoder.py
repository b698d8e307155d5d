"""Neural vocoders on the embedded corpus (or LJSpeech): an iSTFT vocoder (Vocos-style) or HiFi-GAN, trained by the
shared trainer on random waveform crops, scored by copy synthesis against Griffin-Lim.

    python -m experiments.vocoder                                  # iSTFT "cpu" preset, reconstruction losses only
    python -m experiments.vocoder --generator hifigan --preset v2 --workdir workdir/hifigan
    python -m experiments.vocoder --preset paper --adversarial_start 0 --discriminator_scale 1   # the paper's GAN
    python -m experiments.vocoder --steps 20 --workdir /tmp/voc --eval_utterances 4              # a smoke run

Default (CPU-sized): the ~0.95 M-parameter iSTFT vocoder whose head predicts the magnitude as a correction of the
mel's pseudo-inverse and takes the phase from that magnitude's gradient (`audio/phase_gradient.py`), mel L1 +
multi-resolution STFT losses (no adversarial phase: on 2 CPU cores one adversarial step costs ~2.2 s against
~0.08 s, benchmarks/RESULTS.md), batch 16 crops of 32 frames, 10 000 steps at 2e-3;
`--generator hifigan`: HiFi-GAN V2, mel L1 + multi-resolution STFT, batch 8 crops, 3 000 steps at 1e-3.
`--adversarial_start K` adds the GAN phase from step K (multi-period + multi-resolution discriminators;
`--discriminators mpd,msd` for HiFi-GAN's pair). Rerunning the same command resumes (either phase).

`--tts_workdir TTS --init_vocoder V` fine-tunes the vocoder V on FastSpeech2's teacher-forced mels of the training
utterances (`data/teacher_forced.py`, made once into WORKDIR/teacher_forced), as ESPnet and NeMo recipes do.

Writes config.json (task "vocoder"), checkpoints/, tensorboard/ (losses; validation audio and spectrograms),
metrics.jsonl, samples/ (vocoded and Griffin-Lim wavs of validation utterances), plots/ (true vs vocoded mel PNGs)
and report.json: copy synthesis of `--eval_utterances` validation utterances (PESQ-WB, STOI, MCD, log-mel L1,
real-time factor) for the vocoder and for Griffin-Lim on the same utterances. `mmspeech synthesize --vocoder WORKDIR` then
speaks through it, and `mmspeech vocode` turns a mel or a wav into audio with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from experiments.configs.vocoder import (DEFAULT_PRESET, LEARNING_RATE, STEPS, CropsConfig, TeacherForcingConfig,
                                         VocoderEvaluationConfig, VocoderExperimentConfig, config)
from experiments.flags import (add_data_args, add_trainer_args, build_mesh, data_config, mesh_config_from_flag,
                               parse_tree, run_command, trainer_config)
from experiments.wiring import fit_summary, fit_tree, write_config, write_report
from mmspeech_jax.models.vocoder import VocoderConfig, init_vocoder_params, make_vocoder_loss_fn, make_vocoder_optimizer, phases

def parse_args(argv=None):
    """(args, the run's `VocoderExperimentConfig`): the flags, then the tree they fill with `--set` over it."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/vocoder")
    add_data_args(p)
    p.add_argument("--generator", default="istft", choices=["istft", "hifigan"], help="the generator to train")
    p.add_argument("--preset", default=None,
                   help="istft: cpu (default) or paper; hifigan: v1, v2 (default) or v3")
    p.add_argument("--adversarial_start", default="never", metavar="STEP|never",
                   help="step at which the adversarial phase begins (0: from the start); never: reconstruction only")
    p.add_argument("--adversarial", default="lsgan", choices=["lsgan", "hinge"], help="adversarial loss")
    p.add_argument("--discriminators", default="mpd,mrd", help="comma-separated: mpd, msd, mrd")
    p.add_argument("--discriminator_scale", type=float, default=0.25,
                   help="discriminator width multiplier (1: the papers'; default 0.25 for CPU runs)")
    p.add_argument("--segment_frames", type=int, default=32, help="crop length in frames (32 x 256 = 8192 samples)")
    p.add_argument("--eval_utterances", type=int, default=60,
                   help="validation utterances scored by copy synthesis at the end (vocoder and Griffin-Lim)")
    p.add_argument("--num_samples", type=int, default=4, help="validation wavs and plots written at the end")
    p.add_argument("--tts_workdir", default=None, metavar="TTS_WORKDIR",
                   help="train on this FastSpeech2's teacher-forced mels of the training utterances (the audio stays "
                        "the recordings'): a vocoder fitted to what the TTS outputs (embedded corpus)")
    p.add_argument("--tts_utterances", type=int, default=2000,
                   help="with --tts_workdir: training utterances whose teacher-forced mels are made and used")
    p.add_argument("--init_vocoder", default=None, metavar="VOCODER_WORKDIR",
                   help="start from this vocoder workdir's newest parameters (same generator config), e.g. to "
                        "fine-tune it with --tts_workdir")
    add_trainer_args(p, steps=STEPS["istft"], learning_rate=LEARNING_RATE["istft"], eval_every=1000)
    default = config(p.parse_known_args(argv)[0].generator)  # the flags' defaults are the chosen generator's run
    p.set_defaults(steps=default.trainer.steps, learning_rate=default.optimizer.learning_rate,
                   batch_size=default.pipeline.batch_size, eval_every=default.trainer.eval_every,
                   checkpoint_every=default.trainer.checkpoint_every)
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> VocoderExperimentConfig:
    """The tree the flags describe."""
    from mmspeech_jax.errors import ConfigError

    start = args.adversarial_start
    if start != "never" and not start.isdigit():
        raise ConfigError(f"--adversarial_start must be a step (>= 0) or 'never', got {start!r}")
    tree = config(args.generator, args.preset, steps=args.steps, learning_rate=args.learning_rate,
                  batch_size=args.batch_size, adversarial_start=None if start == "never" else int(start),
                  adversarial=args.adversarial, discriminators=tuple(args.discriminators.split(",")),
                  discriminator_scale=args.discriminator_scale)
    return dataclasses.replace(
        tree, data=data_config(args), trainer=trainer_config(args), mesh=mesh_config_from_flag(args.mesh),
        pipeline=CropsConfig(args.batch_size, args.segment_frames, args.seed),
        teacher_forcing=TeacherForcingConfig(args.tts_workdir, args.tts_utterances, args.init_vocoder),
        evaluation=VocoderEvaluationConfig(args.eval_utterances, args.num_samples))


def crop_sources(tree: VocoderExperimentConfig):
    """(train, validation, the embedded corpus or None for LJSpeech) for the tree's data."""
    from mmspeech_jax.data import CorpusConfig
    from mmspeech_jax.data.waveform_crops import corpus_crop_source, loaded_crop_source

    data = tree.data
    if data.source in ("auto", "ljspeech"):
        from mmspeech_jax.data.ljspeech import is_prepared

        if is_prepared(data.data_dir):
            from mmspeech_jax.data.feature_cache import ljspeech_utterances

            print(f"data: LJSpeech from {data.data_dir}")
            utterances = ljspeech_utterances(data.data_dir)
            rate = tree.model.mel.sample_rate
            return (loaded_crop_source(utterances.split("train"), rate),
                    loaded_crop_source(utterances.split("validation"), rate), None)
    from mmspeech_jax.data.synthetic_corpus import generate_corpus

    print(f"data: embedded espeak-ng corpus ({data.corpus_size} utterances)")
    corpus = generate_corpus(CorpusConfig(num_utterances=data.corpus_size), progress=tree.trainer.progress)
    return corpus_crop_source(corpus, "train"), corpus_crop_source(corpus, "validation"), corpus


def teacher_forced_source(tree: VocoderExperimentConfig, corpus, workdir: Path):
    """(train `CropSource` of the first `teacher_forcing.tts_utterances` training utterances, utterance ->
    teacher-forced mel)."""
    from mmspeech_jax.data import CorpusConfig, embedded_feature_cache
    from mmspeech_jax.data.teacher_forced import build_teacher_forced_mels
    from mmspeech_jax.data.waveform_crops import corpus_crop_source
    from mmspeech_jax.errors import ConfigError

    if corpus is None:
        raise ConfigError("--tts_workdir needs the embedded corpus (--data embedded)")
    forcing, progress = tree.teacher_forcing, tree.trainer.progress
    cache = embedded_feature_cache(CorpusConfig(num_utterances=tree.data.corpus_size), progress=progress)
    rows = cache.indices("train")[: forcing.tts_utterances]
    mels = build_teacher_forced_mels(forcing.tts_workdir, cache, rows, workdir / "teacher_forced", progress=progress)
    print(f"teacher-forced mels: {len(rows)} training utterances from {forcing.tts_workdir} (step "
          f"{mels.source['step']})")
    return corpus_crop_source(corpus, "train", [cache.ids[int(r)] for r in rows]), lambda i: mels[rows[i]]


def initial_params(tree: VocoderExperimentConfig):
    """Fresh parameters, or `teacher_forcing.init_vocoder`'s newest ones (its generator config must be this
    run's)."""
    config, init_vocoder = tree.model, tree.teacher_forcing.init_vocoder
    if not init_vocoder:
        return init_vocoder_params(config, jax.random.PRNGKey(tree.trainer.seed))
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    record = read_workdir_config(init_vocoder)
    other = VocoderConfig.from_dict(record.get("model", {})) if record.get("task") == "vocoder" else None
    if other is None or other.generator_config != config.generator_config or other.discriminator != config.discriminator:
        raise ConfigError(f"--init_vocoder {init_vocoder} is not a vocoder with this run's generator and "
                          f"discriminators")
    params, step = restore_params(Path(init_vocoder))
    print(f"initialized from {init_vocoder} (step {step})")
    return params


def main(argv=None):
    from mmspeech_jax.data.waveform_crops import WaveformCrops

    args, tree = parse_args(argv)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # before any data loads
    workdir = Path(args.workdir)
    config, crop = tree.model, tree.pipeline
    lock = write_config(workdir, "vocoder", tree)
    train_source, val_source, corpus = crop_sources(tree)
    mels = None
    if tree.teacher_forcing.tts_workdir:
        train_source, mels = teacher_forced_source(tree, corpus, workdir)
    mel = config.mel
    crops = lambda source, seed, mels=None: WaveformCrops(source, crop.batch_size, crop.segment_frames,
                                                          mel.hop_samples, mel.n_fft, seed, mels,
                                                          config.context_frames)
    train_batches, val_crops = crops(train_source, crop.seed, mels), crops(val_source, crop.seed)
    val_batches = val_crops.fixed_batches(max_rows=4 * crop.batch_size)
    print(f"crops: {len(train_source.lengths) - train_batches.skipped} training utterances "
          f"({train_batches.skipped} shorter than a crop left out), {len(val_batches)} validation batches")
    params = initial_params(tree)
    tx = make_vocoder_optimizer(tree.optimizer, tree.discriminator_optimizer)
    evaluation = tree.evaluation
    on_eval = eval_summaries(config, val_source, min(2, evaluation.num_samples))
    result = None
    for last_step, adversarial in phases(config, tree.trainer.steps):
        print(f"phase: {'adversarial' if adversarial else 'reconstruction (warm-up)'} up to step {last_step}")
        result = fit_tree(workdir, tree, params, make_vocoder_loss_fn(config, adversarial), train_batches, tx=tx,
                          trainer=dataclasses.replace(tree.trainer, steps=last_step),
                          eval_batches=lambda: iter(val_batches), on_eval=on_eval, mesh=mesh)
    report = evaluate(config, result.state.params["generator"], val_source, workdir, evaluation.eval_utterances,
                      evaluation.num_samples)
    report.update({**fit_summary(result), "generator": config.generator,
                   "preset": args.preset or DEFAULT_PRESET[config.generator],
                   "generator_params": _count(result.state.params["generator"]),
                   "discriminator_params": _count(result.state.params["discriminator"]),
                   "adversarial_start": config.adversarial_start})
    write_report(workdir, report)
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=1))
    lock.release()
    return report


def _count(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


def _utterance(source, i: int) -> np.ndarray:
    return np.asarray(source.read(i, 0, int(source.lengths[i])), np.float32)


def mel_figure(true_mel, vocoded_mel, title: str):
    """True vs vocoded log-mel (T, M) -> a matplotlib figure."""
    from mmspeech_jax.evaluate.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.8))
    for ax, mel_, name in zip(axes, (true_mel, vocoded_mel), ("true log-mel", "log-mel of the vocoded audio")):
        ax.imshow(np.asarray(mel_).T, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"{name}  {title}", fontsize=9, loc="left")
    return fig


def eval_summaries(config: VocoderConfig, source, count: int):
    """The trainer's `on_eval` hook: the first `count` validation utterances vocoded (TensorBoard audio, and the true
    vs vocoded log-mel as an image)."""
    from mmspeech_jax.audio.features import log_mel_spectrogram
    from mmspeech_jax.audio.io import clip_protected
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
    from mmspeech_jax.train.summaries import Audio, Image, figure_pixels
    from mmspeech_jax.vocode import Vocoder

    recordings = [_utterance(source, i) for i in range(min(count, len(source.lengths)))]
    mels = [padded_log_mel_and_energy(r, config.mel)[0] for r in recordings]

    def on_eval(params, step):
        vocoder = Vocoder(config, params["generator"])
        summaries = {}
        for k, (mel_, audio) in enumerate(zip(mels, vocoder.batch(mels))):
            vocoded = np.asarray(log_mel_spectrogram(audio, config.mel))
            summaries[f"utterance_{k}/vocoded"] = Audio(clip_protected(audio), config.mel.sample_rate)
            summaries[f"utterance_{k}/mel"] = Image(figure_pixels(mel_figure(mel_, vocoded, f"step {step}")))
        return summaries

    return on_eval


def evaluate(config: VocoderConfig, generator_params, source, workdir: Path, utterances: int,
             num_samples: int) -> dict:
    """Copy synthesis of the first `utterances` validation utterances by the vocoder and by Griffin-Lim (60
    iterations, the CLI's default): `evaluate/vocoder_quality.copy_synthesis` for each; wavs and plots of the first
    `num_samples`."""
    from mmspeech_jax.audio.features import log_mel_spectrogram
    from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
    from mmspeech_jax.audio.io import clip_protected, save_audio
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
    from mmspeech_jax.evaluate.plots import save_figure
    from mmspeech_jax.evaluate.vocoder_quality import copy_synthesis
    from mmspeech_jax.vocode import Vocoder

    vocoder = Vocoder(config, generator_params)
    recordings = [_utterance(source, i) for i in range(min(utterances, len(source.lengths)))]
    griffin_lim = lambda m: np.asarray(log_mel_to_waveform(m, jax.random.PRNGKey(0), config.mel))
    report = {"vocoder": copy_synthesis(vocoder, recordings, config.mel),
              "griffin_lim": copy_synthesis(griffin_lim, recordings, config.mel)}
    for k, recording in enumerate(recordings[:num_samples]):
        mel_ = padded_log_mel_and_energy(recording, config.mel)[0]
        audio = vocoder(mel_)
        save_audio(workdir / "samples" / f"val_{k}_vocoder.wav", clip_protected(audio), config.mel.sample_rate,
                   overwrite=True)
        save_audio(workdir / "samples" / f"val_{k}_griffin_lim.wav", clip_protected(griffin_lim(mel_)),
                   config.mel.sample_rate, overwrite=True)
        save_figure(mel_figure(mel_, np.asarray(log_mel_spectrogram(audio, config.mel)), f"validation {k}"),
                    workdir / "plots" / f"val_{k}.png")
    summary = {f"{name}_{key}": report[name][key] for name in report
               for key in ("pesq_wb", "stoi", "mcd_db", "log_mel_l1", "real_time_factor")}
    return {**summary, "copy_synthesis": report}


if __name__ == "__main__":
    run_command(main)
