"""CTC speech recognition (Conformer by default) on the embedded corpus (default) or LJSpeech.

    python -m experiments.ljspeech_asr                          # base preset, embedded corpus, ./workdir/ljspeech_asr
    python -m experiments.ljspeech_asr --preset tiny --steps 50 --workdir /tmp/asr

Rerunning the same command resumes from the last checkpoint. Writes config.json (task "asr"), symbols.json,
checkpoints/, tensorboard/ (losses; after each evaluation the CTC plot and the greedy transcript of the first
--num_samples validation utterances), metrics.jsonl, report.json (CER/WER of greedy and beam decoding on the validation
and test splits and on the natural evaluation set, `natural_*`: hand-written sentences no corpus contains, spoken by
espeak-ng en-us; steps, wall time, steps/s, compilations) and plots/*.png (the first `--num_samples` test
utterances: input log-mel over the CTC posteriors, with the reference and the greedy transcript) into the workdir.
`mmspeech transcribe --workdir W` then reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from experiments.asr_recipe import (add_training_args, evaluate, evaluate_natural, evaluation_config, train,
                                    tune_fusion, with_features, write_workdir_config)
from experiments.configs.ljspeech_asr import LJSpeechASRConfig, config
from experiments.flags import (add_distributed_args, build_mesh, initialize_distributed, load_data, parse_tree,
                               run_command, shared_parts)
from experiments.wiring import fit_summary, write_report
from mmspeech_jax.data import natural_eval_feature_cache
from mmspeech_jax.train.distributed import barrier, is_primary
from mmspeech_jax.transcribe import load_lm_scorer


def parse_args(argv=None):
    """(args, the run's `LJSpeechASRConfig`): the flags, then the tree they fill with `--set` applied over it."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 3 000 steps with gain and noise augmentation: 4.5 % CER on the natural evaluation set clean, 4.7 % under white
    # noise 20 dB down, 6.6 % 10 dB down; ~36 minutes from nothing on 2 cores (RESULTS.md, "ASR noise augmentation")
    add_training_args(p, "workdir/ljspeech_asr", steps=3000)
    p.add_argument("--gain_augment_db", type=float, default=12.0,
                   help="train each utterance at a random level within +-this many dB (audio/gain_augment.py); 0: off")
    p.add_argument("--noise_augment", type=float, default=0.25,
                   help="share of the training utterances heard over stationary noise at 0-30 dB SNR "
                        "(audio/noise_augment.py; default 0.25); 0: off")
    add_distributed_args(p)
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> LJSpeechASRConfig:
    """The tree the flags describe."""
    tree = config(args.preset, encoder=args.encoder, spec_augment=not args.no_spec_augment, steps=args.steps,
                  learning_rate=args.learning_rate, batch_size=args.batch_size, gain_augment_db=args.gain_augment_db,
                  noise_augment=args.noise_augment)
    return dataclasses.replace(tree, **shared_parts(args), evaluation=evaluation_config(args))


def main(argv=None):
    args, tree = parse_args(argv)
    initialize_distributed(args)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # before any data loads
    workdir = Path(args.workdir)
    cache = load_data(tree.data, tree.trainer.progress)
    tree = with_features(tree, cache.n_mels)
    evaluation = tree.evaluation
    lock = write_workdir_config(workdir, tree, cache)
    natural = natural_eval_feature_cache(evaluation.natural_eval_utterances, progress=tree.trainer.progress) \
        if evaluation.natural_eval_utterances != 0 and is_primary() else None
    curve = []
    trained = train(tree, cache, workdir, mesh=mesh, natural=natural, curve=curve)
    model, result, eval_config = trained.model, trained.result, trained.eval_config
    if not is_primary():  # the primary evaluates and writes the report
        barrier("report written")
        return {}
    fusion = None
    if evaluation.lm:
        lm = load_lm_scorer(evaluation.lm)
        fusion = {"lm": lm, **tune_fusion(model, result.state.params, cache, eval_config, lm, evaluation.beam_width,
                                          evaluation.lm_tune_utterances)}
    report = evaluate(model, result.state.params, cache, eval_config, beam_width=evaluation.beam_width,
                      plot_dir=workdir / "plots", num_plots=evaluation.num_samples, fusion=fusion,
                      fusion_splits=("test",))  # validation chose the weights: its fused figure would flatter
    if natural is not None:
        report.update(evaluate_natural(model, result.state.params, cache, eval_config, natural, evaluation.beam_width,
                                       fusion=fusion), natural_cer_curve=curve)
    if fusion:
        report.update({k: v for k, v in fusion.items() if k != "lm"}, lm_workdir=evaluation.lm)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(result.state.params))
    report.update(preset=args.preset, encoder=tree.model.encoder, params=n_params, **fit_summary(result),
                  bucket_shapes=trained.bucket_shapes)
    write_report(workdir, report)
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_examples")}, indent=1))
    barrier("report written")
    if lock is not None:
        lock.release()
    return report


if __name__ == "__main__":
    run_command(main)
