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

from experiments.flags import load_data, mesh_from_flag, parse_checked, run_command, trainer_config
from experiments.asr_recipe import (add_training_args, default_optimizer, evaluate, model_config, train,
                                    write_workdir_config)
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.data.labelled_subset import labelled_subset
from mmspeech_jax.models.best_rq import BestRQ, BestRQConfig, make_best_rq_loss_fn
from mmspeech_jax.models.ctc_asr import CTCASR, normalize_features
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer, merge_pretrained, trainable_mask
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from mmspeech_jax.train.trainer import fit
from mmspeech_jax.workdir import atomic_write_text, strict_json

STRATEGY_ROWS = ("scratch", "full", "freeze_bottom", "adapters", "lora")


def parse_args(argv=None):
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
    args = parse_checked(p, argv, model_config=lambda a: model_config(a, MelConfig().n_mels))
    unknown = set(args.strategies.split(",")) - set(STRATEGY_ROWS)
    if unknown:
        p.error(f"unknown strategies {sorted(unknown)}; choose from {STRATEGY_ROWS}")
    if not 0.0 < args.label_fraction <= 1.0:
        p.error("--label_fraction must be in (0, 1]")
    return args


def pretrain(args, cache, config, workdir: Path, mesh=None):
    """BEST-RQ on every training utterance's audio (labels unused). Returns (encoder params, wall seconds)."""
    model = BestRQ(config, BestRQConfig())
    pipeline = PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets, num_epochs=None,
                              seed=args.seed)
    prepare = lambda b: {"features": normalize_features(b["mel"], b["frame_mask"], cache.stats),
                         "frame_mask": b["frame_mask"]}
    first = prepare(next(make_batch_iterator(cache, "train", pipeline, verbose=False)))
    params = init_params(model, {"params": jax.random.PRNGKey(args.seed)}, first["features"], first["frame_mask"])
    optimizer = OptimizerConfig(learning_rate=args.pretrain_learning_rate,
                                warmup_steps=min(400, args.pretrain_steps // 10), total_steps=args.pretrain_steps)
    tx = make_optimizer(optimizer)
    eval_config = dataclasses.replace(pipeline, num_epochs=1, shuffle=False)
    started = time.perf_counter()
    result = fit(workdir, params, tx, make_best_rq_loss_fn(model), make_batch_iterator(cache, "train", pipeline),
                 trainer_config(args, steps=args.pretrain_steps, patience=None),
                 prepare=prepare,
                 eval_batches=lambda: make_batch_iterator(cache, "validation", eval_config, verbose=False), mesh=mesh,
                 learning_rate=learning_rate_schedule(optimizer))
    return result.state.params, time.perf_counter() - started, result


def finetune(args, cache, strategy: str, pretrained, labelled, workdir: Path, mesh=None) -> dict:
    extra = {}
    if strategy == "adapters":
        extra["adapter_dim"] = args.adapter_dim
    if strategy == "lora":
        extra["lora_rank"] = args.lora_rank
    config = model_config(args, cache.n_mels, **extra)
    lock = write_workdir_config(workdir, config, args, cache, strategy=strategy,
                                labelled_utterances=int(labelled.size))
    model = CTCASR(config)
    batch = next(make_batch_iterator(cache, "train", PipelineConfig(batch_size=2, num_buckets=1), verbose=False))
    features = normalize_features(batch["mel"], batch["frame_mask"], cache.stats)
    params = init_params(model, {"params": jax.random.PRNGKey(args.seed)}, features, batch["frame_mask"])
    if strategy != "scratch":
        params = merge_pretrained(params, pretrained)
    mask = trainable_mask(params, "full" if strategy == "scratch" else strategy, args.freeze_layers)
    tx = masked_optimizer(make_optimizer(default_optimizer(args)), mask)
    started = time.perf_counter()
    model, result, eval_config, _ = train(args, cache, config, workdir, init_params=params, tx=tx,
                                          train_positions=labelled, mesh=mesh)
    wall = time.perf_counter() - started
    report = evaluate(model, result.state.params, cache, eval_config, splits=("test",), beam_width=args.beam_width,
                      plot_dir=workdir / "plots", num_plots=args.num_samples)
    if lock is not None:
        lock.release()
    return {"strategy": strategy, "trainable_params": count_parameters(params, mask),
            "total_params": count_parameters(params), "steps": int(result.state.step), "wall_seconds": wall,
            "test_cer": report["test_cer_greedy"], "test_wer": report["test_wer_greedy"],
            "test_cer_beam": report["test_cer_beam"]}


def table(rows, args, pretrain_row) -> str:
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
    args = parse_args(argv)
    mesh = mesh_from_flag(args.mesh, args.batch_size)  # pretraining and every fine-tuning run; before data loads
    workdir = Path(args.workdir)
    cache = load_data(args)
    labelled = labelled_subset(cache, args.label_fraction, args.seed)
    print(f"labelled subset: {labelled.size} of {cache.indices('train').size} training utterances")
    config = model_config(args, cache.n_mels)
    pretrained, pretrain_wall, pre = pretrain(args, cache, config, workdir / "pretrain", mesh)
    last = [json.loads(line) for line in (workdir / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    accuracy = next((r["ssl_accuracy"] for r in reversed(last) if r.get("split") == "validation"), float("nan"))
    pretrain_row = {"steps": int(pre.state.step), "wall_seconds": pretrain_wall, "ssl_accuracy": accuracy,
                    "utterances": int(cache.indices("train").size)}
    rows = [finetune(args, cache, s, pretrained, labelled, workdir / s, mesh) for s in args.strategies.split(",")]
    text = table(rows, args, pretrain_row)
    report = {"pretrain": pretrain_row, "labelled_utterances": int(labelled.size), "rows": rows, "table": text}
    atomic_write_text(workdir / "report.json", strict_json(report, indent=1))
    print(text)
    if args.record:
        from benchmarks.measure import machine, record

        given = sys.argv[1:] if argv is None else argv
        command = "python -m experiments.ssl_finetune " + " ".join(a for a in given if a != "--record")
        entry = (f"### SSL pretrain -> fine-tune (BEST-RQ, {100 * args.label_fraction:.0f} % labels) — "
                 f"{datetime.date.today().isoformat()}\n\nCommand: `{command.strip()}`  \nMachine: {machine()}\n\n"
                 f"{text}\n")
        record(entry)
    return report


if __name__ == "__main__":
    run_command(main)
