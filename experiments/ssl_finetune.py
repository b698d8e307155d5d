"""Pretrain -> fine-tune: BEST-RQ on all training audio without labels, then CTC fine-tuning on a labelled fraction
with each strategy, against training from scratch on the same labelled fraction.

    python -m experiments.ssl_finetune                       # base preset, embedded corpus, 10 % labels
    python -m experiments.ssl_finetune --pretrain_steps 20 --finetune_steps 10 --preset tiny --workdir /tmp/ssl

Workdir layout: pretrain/ (BEST-RQ run), scratch/, full/, freeze_bottom/, adapters/, lora/ (each an ASR workdir
that `mmspeech transcribe` reads) and report.json with one row per strategy: trainable parameters, steps, wall
time, test CER/WER (greedy). `--record` appends the table to benchmarks/RESULTS.md. Rerunning resumes every run
from its checkpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

import jax

from experiments.asr_recipe import (add_training_args, evaluate, evaluation_config, train, with_features,
                                    write_workdir_config)
from experiments.configs.ssl_finetune import STRATEGY_ROWS, FinetuneConfig, SSLFinetuneConfig, config
from experiments.flags import build_mesh, load_data, parse_tree, run_command, shared_parts, trainer_config
from experiments.wiring import train_on_cache, write_report
from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.data.labelled_subset import labelled_subset
from mmspeech_jax.models.best_rq import BestRQ, make_best_rq_loss_fn
from mmspeech_jax.models.ctc_asr import CTCASR, normalize_features
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer, merge_pretrained, trainable_mask
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import make_optimizer

def parse_args(argv=None):
    """(args, the run's `SSLFinetuneConfig`): the flags, then the tree they fill with `--set` applied over it."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(p, "workdir/ssl_finetune", steps=600)
    p.add_argument("--pretrain_steps", type=int, default=600)
    p.add_argument("--pretrain_learning_rate", type=float, default=2e-3)
    p.add_argument("--label_fraction", type=float, default=0.1)
    p.add_argument("--strategies", default=",".join(STRATEGY_ROWS), help=f"comma-separated subset of {STRATEGY_ROWS}")
    p.add_argument("--freeze_layers", type=int, default=2, help="freeze_bottom: frozen encoder blocks")
    p.add_argument("--adapter_dim", type=int, default=32)
    p.add_argument("--lora_rank", type=int, default=8)
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> SSLFinetuneConfig:
    """The tree the flags describe."""
    tree = config(args.preset, encoder=args.encoder, spec_augment=not args.no_spec_augment,
                  pretrain_steps=args.pretrain_steps, pretrain_learning_rate=args.pretrain_learning_rate,
                  steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size)
    finetune = FinetuneConfig(label_fraction=args.label_fraction, strategies=tuple(args.strategies.split(",")),
                              freeze_layers=args.freeze_layers, adapter_dim=args.adapter_dim, lora_rank=args.lora_rank)
    return dataclasses.replace(tree, **shared_parts(args), finetune=finetune, evaluation=evaluation_config(args),
                               pretrain_trainer=trainer_config(args, steps=args.pretrain_steps, patience=None))


def pretrain(tree: SSLFinetuneConfig, cache, workdir: Path, mesh=None):
    """BEST-RQ on every training utterance's audio (labels unused). Returns (encoder params, wall seconds, fit
    result)."""
    model = BestRQ(tree.model, tree.ssl)
    prepare = lambda b: {"features": normalize_features(b["mel"], b["frame_mask"], cache.stats),
                         "frame_mask": b["frame_mask"]}
    init = lambda first: init_params(model, {"params": jax.random.PRNGKey(tree.trainer.seed)}, first["features"],
                                     first["frame_mask"])
    started = time.perf_counter()
    trained = train_on_cache(workdir, tree, cache, model, make_best_rq_loss_fn(model), prepare, init,
                             optimizer=tree.pretrain_optimizer, trainer=tree.pretrain_trainer, mesh=mesh)
    return trained.result.state.params, time.perf_counter() - started, trained.result


def finetune(tree: SSLFinetuneConfig, cache, strategy: str, pretrained, labelled, workdir: Path, mesh=None) -> dict:
    rows = tree.finetune
    extra = {"adapters": {"adapter_dim": rows.adapter_dim}, "lora": {"lora_rank": rows.lora_rank}}.get(strategy, {})
    tree = dataclasses.replace(tree, model=dataclasses.replace(tree.model, **extra))
    lock = write_workdir_config(workdir, tree, cache, strategy=strategy, labelled_utterances=int(labelled.size))
    model = CTCASR(tree.model)
    batch = next(make_batch_iterator(cache, "train", PipelineConfig(batch_size=2, num_buckets=1), verbose=False))
    features = normalize_features(batch["mel"], batch["frame_mask"], cache.stats)
    params = init_params(model, {"params": jax.random.PRNGKey(tree.trainer.seed)}, features, batch["frame_mask"])
    if strategy != "scratch":
        params = merge_pretrained(params, pretrained)
    mask = trainable_mask(params, "full" if strategy == "scratch" else strategy, rows.freeze_layers)
    tx = masked_optimizer(make_optimizer(tree.optimizer), mask)
    started = time.perf_counter()
    trained = train(tree, cache, workdir, init_params=params, tx=tx, train_positions=labelled, mesh=mesh)
    wall = time.perf_counter() - started
    result = trained.result
    report = evaluate(trained.model, result.state.params, cache, trained.eval_config, splits=("test",),
                      beam_width=tree.evaluation.beam_width, plot_dir=workdir / "plots",
                      num_plots=tree.evaluation.num_samples)
    if lock is not None:
        lock.release()
    return {"strategy": strategy, "trainable_params": count_parameters(params, mask),
            "total_params": count_parameters(params), "steps": int(result.state.step), "wall_seconds": wall,
            "test_cer": report["test_cer_greedy"], "test_wer": report["test_wer_greedy"],
            "test_cer_beam": report["test_cer_beam"]}


def table(rows, pretrain_row) -> str:
    lines = [f"Pretraining (BEST-RQ, all {pretrain_row['utterances']} training utterances, no labels): "
             f"{pretrain_row['steps']} steps, {pretrain_row['wall_seconds']:.0f} s, final masked-code accuracy "
             f"{pretrain_row['ssl_accuracy']:.3f}.", "",
             "| strategy | trainable params | total params | steps | wall time | test CER | test WER | test CER (beam) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['trainable_params']:,} | {r['total_params']:,} | {r['steps']} | "
                     f"{r['wall_seconds']:.0f} s | {100 * r['test_cer']:.1f} % | {100 * r['test_wer']:.1f} % | "
                     f"{100 * r['test_cer_beam']:.1f} % |")
    return "\n".join(lines)


def main(argv=None):
    args, tree = parse_args(argv)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # pretraining and every fine-tuning run; before data loads
    workdir = Path(args.workdir)
    cache = load_data(tree.data, tree.trainer.progress)
    tree = with_features(tree, cache.n_mels)
    labelled = labelled_subset(cache, tree.finetune.label_fraction, tree.trainer.seed)
    print(f"labelled subset: {labelled.size} of {cache.indices('train').size} training utterances")
    pretrained, pretrain_wall, pre = pretrain(tree, cache, workdir / "pretrain", mesh)
    last = [json.loads(line) for line in (workdir / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    accuracy = next((r["ssl_accuracy"] for r in reversed(last) if r.get("split") == "validation"), float("nan"))
    pretrain_row = {"steps": int(pre.state.step), "wall_seconds": pretrain_wall, "ssl_accuracy": accuracy,
                    "utterances": int(cache.indices("train").size)}
    rows = [finetune(tree, cache, s, pretrained, labelled, workdir / s, mesh) for s in tree.finetune.strategies]
    text = table(rows, pretrain_row)
    report = {"pretrain": pretrain_row, "labelled_utterances": int(labelled.size), "rows": rows, "table": text}
    write_report(workdir, report)
    print(text)
    if args.record:
        from benchmarks.measure import machine, record

        given = sys.argv[1:] if argv is None else argv
        command = "python -m experiments.ssl_finetune " + " ".join(a for a in given if a != "--record")
        entry = (f"### SSL pretrain -> fine-tune (BEST-RQ, {100 * tree.finetune.label_fraction:.0f} % labels) — "
                 f"{datetime.date.today().isoformat()}\n\nCommand: `{command.strip()}`  \nMachine: {machine()}\n\n"
                 f"{text}\n")
        record(entry)
    return report


if __name__ == "__main__":
    run_command(main)
