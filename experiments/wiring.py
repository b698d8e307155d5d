"""The wiring every training experiment shares, from its config tree: feature cache -> batches -> initial parameters
-> the shared trainer -> config.json and report.json.

    tree = config("tiny", steps=200)                       # experiments/configs/ljspeech_tts.py
    cache = load_data(tree.data)
    lock = write_config(workdir, "tts", tree, cache, cache.table)
    trained = train_on_cache(workdir, tree, cache, model, loss_fn, prepare, init=lambda batch: ...)
    result = fit_tree(workdir, tree, params, loss_fn, sentence_batches)   # batches from elsewhere
    write_report(workdir, {**evaluate(...), **fit_summary(trained)})

The experiments differ only in their model, loss, evaluation and stages; what reads the tree (which batches, which
optimizer and schedule, which trainer settings, which mesh) is here once. Not an experiment itself (no `main`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from mmspeech_jax.config_tree import to_dict
from mmspeech_jax.data import PipelineConfig, make_batch_iterator
from mmspeech_jax.train.optim import learning_rate_schedule, make_optimizer
from mmspeech_jax.train.trainer import FitResult, fit
from mmspeech_jax.workdir import atomic_write_text, strict_json, write_run_config


@dataclasses.dataclass
class Trained:
    """What `train_on_cache` returns: the model, the trainer's `FitResult`, the evaluation batching (one pass in
    order, the tree's batch size and buckets) and the number of training bucket shapes."""
    model: Any
    result: FitResult
    eval_config: PipelineConfig
    bucket_shapes: int


def eval_pipeline(pipeline: PipelineConfig) -> PipelineConfig:
    """The evaluation batching of a training `pipeline`: one pass, in order."""
    return dataclasses.replace(pipeline, num_epochs=1, shuffle=False)


def run_record(task: str, tree, cache=None, **extra) -> dict:
    """A run's config.json record: its task, the whole tree (`config_tree.to_dict`; read back with
    `config_tree.from_record`), the feature cache's config and statistics when there is one, and `extra` keys."""
    record = {"task": task, **to_dict(tree)}
    if cache is not None:
        record.update(features=cache.config, stats=cache.stats)
    return {**record, **extra}


def write_config(workdir, task: str, tree, cache=None, table=None, *, primary: bool = True, **extra):
    """Claims the workdir and writes `run_record(...)` as config.json (and `table` as symbols.json) through
    `workdir.write_run_config`, which refuses a workdir holding another model's checkpoints. Returns the held
    lock (None off the primary)."""
    return write_run_config(workdir, run_record(task, tree, cache, **extra), table, primary=primary)


def fit_tree(workdir, tree, params, loss_fn, batches, *, tx=None, optimizer=None, trainer=None, prepare=None,
             eval_batches=None, on_eval=None, mesh=None) -> FitResult:
    """The shared trainer as the tree says, on any batches (feature-cache buckets, sentences, waveform crops,
    interleaved streams): AdamW and its schedule from `optimizer` (default `tree.optimizer`; `tx` replaces the
    transformation — a fine-tuning strategy's masked one, the GAN's pair — and the logs keep that schedule),
    `trainer` (default `tree.trainer`), sharded over `mesh`."""
    optimizer = optimizer or tree.optimizer
    extra = {} if prepare is None else {"prepare": prepare}  # fit's default: batches as they come
    return fit(Path(workdir), params, tx or make_optimizer(optimizer), loss_fn, batches, trainer or tree.trainer,
               eval_batches=eval_batches, mesh=mesh, on_eval=on_eval, learning_rate=learning_rate_schedule(optimizer),
               **extra)


def train_on_cache(workdir, tree, cache, model, loss_fn, prepare: Callable, init: Callable | None = None, *,
                   params=None, tx=None, optimizer=None, trainer=None, positions=None, eval_positions=None,
                   on_eval=None, mesh=None, evaluate: bool = True) -> Trained:
    """Trains `model` on the cache's "train" split (rows `positions`, default all) through `fit_tree`, with
    batches from `tree.pipeline`. The starting `params` are given, or made by `init(first prepared training
    batch)`. Validation reads the "validation" split (rows `eval_positions`) unless `evaluate` is False."""
    pipeline = tree.pipeline
    batches = make_batch_iterator(cache, "train", pipeline, positions=positions)
    eval_config = eval_pipeline(pipeline)
    if params is None:
        params = init(prepare(next(make_batch_iterator(cache, "train", pipeline, positions=positions,
                                                       verbose=False))))
    eval_batches = (lambda: make_batch_iterator(cache, "validation", eval_config, positions=eval_positions,
                                                verbose=False)) if evaluate else None
    result = fit_tree(workdir, tree, params, loss_fn, batches, tx=tx, optimizer=optimizer, trainer=trainer,
                      prepare=prepare, eval_batches=eval_batches, on_eval=on_eval, mesh=mesh)
    return Trained(model, result, eval_config, len(batches.shapes))


def fit_summary(result: FitResult) -> dict:
    """The report's training figures of a `FitResult`: steps, wall time (every run of the workdir), steps/s,
    best validation loss, early stop, compilations, skipped (non-finite) updates."""
    return {"steps": int(result.state.step), "wall_seconds": result.wall_seconds,
            "steps_per_second": result.steps_per_second, "best_val_loss": result.best_val_loss,
            "stopped_early": result.stopped_early, "compilations": result.compilations,
            "skipped_updates": int(result.state.skipped)}


def write_report(workdir, report: dict) -> None:
    """report.json, written atomically (strict JSON: NaN becomes null)."""
    atomic_write_text(Path(workdir) / "report.json", strict_json(report, indent=1))
