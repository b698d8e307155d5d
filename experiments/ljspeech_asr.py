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
import json
from pathlib import Path

import jax
import numpy as np

from experiments.asr_recipe import (add_training_args, evaluate, evaluate_natural, model_config, train, tune_fusion,
                                    write_workdir_config)
from experiments.flags import (add_distributed_args, initialize_distributed, load_data, mesh_from_flag, parse_checked,
                               run_command)
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.data import natural_eval_feature_cache
from mmspeech_jax.train.distributed import barrier, is_primary
from mmspeech_jax.transcribe import load_lm_scorer
from mmspeech_jax.workdir import atomic_write_text, strict_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 2 200 steps: 4.8 % CER on the natural evaluation set in ~27 minutes from nothing on 2 cores (RESULTS.md)
    add_training_args(p, "workdir/ljspeech_asr", steps=2200)
    add_distributed_args(p)
    return parse_checked(p, argv, model_config=lambda a: model_config(a, MelConfig().n_mels))


def main(argv=None):
    args = parse_args(argv)
    initialize_distributed(args)
    mesh = mesh_from_flag(args.mesh, args.batch_size)  # before any data loads
    workdir = Path(args.workdir)
    cache = load_data(args)
    config = model_config(args, cache.n_mels)
    lock = write_workdir_config(workdir, config, args, cache)
    natural = natural_eval_feature_cache(args.natural_eval_utterances, progress=not args.no_progress) \
        if args.natural_eval_utterances != 0 and is_primary() else None
    curve = []
    model, result, eval_config, shapes = train(args, cache, config, workdir, mesh=mesh, natural=natural, curve=curve)
    if not is_primary():  # the primary evaluates and writes the report
        barrier("report written")
        return {}
    fusion = None
    if args.lm:
        lm = load_lm_scorer(args.lm)
        fusion = {"lm": lm, **tune_fusion(model, result.state.params, cache, eval_config, lm, args.beam_width,
                                          args.lm_tune_utterances)}
    report = evaluate(model, result.state.params, cache, eval_config, beam_width=args.beam_width,
                      plot_dir=workdir / "plots", num_plots=args.num_samples, fusion=fusion,
                      fusion_splits=("test",))  # validation chose the weights: its fused figure would flatter
    if natural is not None:
        report.update(evaluate_natural(model, result.state.params, cache, eval_config, natural, args.beam_width,
                                       fusion=fusion), natural_cer_curve=curve)
    if fusion:
        report.update({k: v for k, v in fusion.items() if k != "lm"}, lm_workdir=args.lm)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(result.state.params))
    report.update(preset=args.preset, encoder=args.encoder, params=n_params, steps=int(result.state.step),
                  wall_seconds=result.wall_seconds, steps_per_second=result.steps_per_second,
                  best_val_loss=result.best_val_loss, stopped_early=result.stopped_early,
                  compilations=result.compilations, bucket_shapes=shapes, skipped_updates=int(result.state.skipped))
    atomic_write_text(workdir / "report.json", strict_json(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_examples")}, indent=1))
    barrier("report written")
    if lock is not None:
        lock.release()
    return report


if __name__ == "__main__":
    run_command(main)
