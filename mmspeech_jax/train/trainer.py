"""One training loop for every model: jit per bucket shape, checkpoints, logging, evaluation, early stopping.

`fit` owns the loop; a model brings `loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts)`, its initial
params and a `prepare(batch)` host function (e.g. the aligner's prior). Restarting the same command resumes from the
last complete checkpoint — state, PRNG key and data position — and ends bit-identical to an uninterrupted run.

Logs in the workdir: `metrics.jsonl` (one JSON object per logged step or evaluation) and TensorBoard event files
(`tensorboard/`: the scalars, and whatever images, audio and text the model's `on_eval` hook returns). A tqdm progress bar shows the loss and steps/s.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable

import jax
import numpy as np
import optax
from jax.experimental.compilation_cache import compilation_cache
from tqdm.auto import tqdm

from mmspeech_jax import config_checks
from mmspeech_jax.errors import TrainingDivergedError, WorkdirMismatchError
from mmspeech_jax.train.checkpoint import Checkpointer
from mmspeech_jax.train.distributed import host_copy, is_primary
from mmspeech_jax.train.optim import schedule_count
from mmspeech_jax.train.sharding import make_sharded_steps, shard_batch, state_shardings
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.summaries import write_summaries
from mmspeech_jax.train.evaluation import evaluate_split
from mmspeech_jax.train.step import make_eval_counts, make_eval_step, make_train_step
from mmspeech_jax.workdir import strict_json


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """`fit`'s schedule: steps, seed, logging, evaluation and checkpoint intervals, checkpoints kept, early-stopping
    patience, progress bar, the persistent compilation cache, micro-batches and the divergence stop. Checked when
    built."""
    steps: int = 1000
    seed: int = 0
    # Steps between train lines in metrics.jsonl (and TensorBoard): each line holds every term's mean over the steps
    # since the previous line that computed it (interleaved streams: each stream's terms over its own steps), and
    # `skipped` its running count.
    log_every: int = 10
    eval_every: int = 200
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    patience: int | None = None  # evaluations without improvement before stopping; None: never stop early
    progress: bool = True
    # JAX's persistent compilation cache (process-wide): a rerun, a resume or another run with the same shapes loads
    # compiled steps from here instead of compiling again. None: leave JAX's setting as it is.
    compilation_cache_dir: str | None = None
    # Gradient accumulation: each batch is split into this many micro-batches (exact; see train/step.py).
    micro_batches: int = 1
    # A step whose loss or gradient is not finite is skipped (train/step.py); this many in a row stop the run with
    # TrainingDivergedError instead of "training" on for hours without an update. None: never stop.
    max_consecutive_skipped: int | None = 50

    def __post_init__(self):
        """Checked before any data loads or step compiles (a zero interval used to fail at the first log step)."""
        config_checks.integer(self, "seed")
        config_checks.integers(self, steps=0, log_every=1, eval_every=1, checkpoint_every=1,
                               keep_checkpoints=1, micro_batches=1)
        config_checks.integer(self, "patience", 0, none_ok=True)
        config_checks.integer(self, "max_consecutive_skipped", 1, none_ok=True)
        config_checks.flag(self, "progress")


@dataclasses.dataclass
class FitResult:
    """`wall_seconds` and `compilations` add up every run that trained this workdir (resumes included, as far as
    their checkpoints go); `run_wall_seconds` and `steps_per_second` are this call's."""

    state: TrainState
    best_val_loss: float
    stopped_early: bool
    steps_per_second: float
    wall_seconds: float
    compilations: int
    run_wall_seconds: float = 0.0


def _scalars(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items() if np.ndim(v) == 0}


def _window_means(window: dict[str, list[float]]) -> dict[str, float]:
    """A train line from each term's values since the last one: the mean (NaN if any step's was), except the running
    count `skipped`, whose last value is the count."""
    return {k: v[-1] if k == "skipped" else float(np.mean(v)) for k, v in window.items()}


def use_compilation_cache(path) -> None:
    """Send this process's compilations, however short, to JAX's persistent cache in `path` from now on.

    JAX opens its cache once per process, at the first compilation with a directory set; a cache already opened on
    another directory (JAX_COMPILATION_CACHE_DIR, an earlier run in this process) is closed so that `path` is used."""
    path = str(Path(path).absolute())
    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        compilation_cache.reset_cache()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def fit(workdir, params, tx: optax.GradientTransformation, loss_fn, train_batches, config: TrainerConfig,
        prepare: Callable[[dict], dict] = lambda b: b,
        eval_batches: Callable[[], Iterable[dict]] | None = None, mesh=None,
        on_eval: Callable[[dict, int], dict] | None = None,
        learning_rate: Callable | None = None) -> FitResult:
    """`mesh` (a `jax.sharding.Mesh` from `train/sharding.make_mesh`): shard state and batches over it; a
    checkpoint written on any mesh (or one device) restores onto this one. None: one device, plain `jax.jit`.

    `on_eval(params, step)`: called after every evaluation with a host (NumPy) copy of the parameters; the
    `train/summaries.py` values it returns (images, audio, text by tag) go to TensorBoard under `validation/`.

    `learning_rate`: the optimizer's schedule (`optim.learning_rate_schedule`); each logged step then records
    `learning_rate`, the rate of the next update (the schedule at the optimizer's update count, which skipped steps
    do not advance).

    Several processes (`train/distributed.py`): every process calls `fit` with its share of each batch; only the
    primary writes metrics and TensorBoard logs; the returned state is then a full host copy on every process."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if config.compilation_cache_dir:
        use_compilation_cache(config.compilation_cache_dir)
    checkpointer = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    state = TrainState.create(params, tx)
    if mesh is not None:
        sharding = state_shardings(state, mesh)
        state = jax.device_put(state, sharding)  # restore below follows these shardings
        train_step, eval_step, eval_counts = make_sharded_steps(loss_fn, tx, sharding, mesh, config.micro_batches)
        put = lambda batch: shard_batch(batch, mesh)
    else:
        train_step = jax.jit(make_train_step(loss_fn, tx, config.micro_batches), donate_argnums=0)
        eval_step, eval_counts = jax.jit(make_eval_step(loss_fn)), jax.jit(make_eval_counts(loss_fn))
        put = lambda batch: batch
    # rbg keys: dropout masks are ~40 % cheaper to draw than with threefry on CPU (benchmarks/RESULTS.md)
    make_key = lambda: jax.random.key(config.seed, impl="rbg")
    if mesh is not None:  # a global (replicated) array, made under jit: every process checkpoints the same key
        from jax.sharding import NamedSharding, PartitionSpec

        make_key = jax.jit(make_key, out_shardings=NamedSharding(mesh, PartitionSpec()))
    rng = make_key()
    book = {"best_val_loss": float("inf"), "evals_without_improvement": 0}
    try:
        diverged = diverged_marker(workdir)
        restored = None
        if diverged.is_file() and checkpointer.best.latest_step() is not None:
            # The last run diverged: its newest periodic checkpoint may hold diverged (if finite) parameters.
            restored = checkpointer.restore(state, rng, best=True)
            print(f"the last run diverged ({diverged.read_text().strip()}); resuming from the best checkpoint, "
                  f"step {int(restored[0].step)}")
        if restored is None:
            restored = checkpointer.restore(state, rng)
    except (ValueError, KeyError, TypeError) as exc:  # Orbax: another tree or other shapes than this run's state
        checkpointer.close()
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise WorkdirMismatchError(f"the checkpoints in {workdir / 'checkpoints'} do not fit this model and "
                                   f"optimizer ({detail[:240]}); use a new workdir (nothing was changed)") from exc
    if restored is not None:
        state, rng, data = restored
        train_batches.set_state(data["iterator"])
        book = data["book"]
        print(f"resuming from step {int(state.step)} ({workdir / 'checkpoints'})")
    from tensorboardX import SummaryWriter

    primary = is_primary()
    if primary:
        drop_logged_after(workdir / "metrics.jsonl", int(state.step))
    # purge_step: TensorBoard hides what an interrupted run logged after the step this one resumes from
    writer = SummaryWriter(str(workdir / "tensorboard"), purge_step=int(state.step) + 1 if restored else None) \
        if primary else _NoLog()
    log = open(workdir / "metrics.jsonl", "a") if primary else _NoLog()
    start_step, started = int(state.step), time.perf_counter()
    # Totals of the runs before this one, as of the checkpoint it resumed from (kept in the checkpoint's book).
    prior = {"wall_seconds": float(book.get("wall_seconds", 0.0)), "compilations": int(book.get("compilations", 0))}

    def saved_book():
        return {**book, "wall_seconds": prior["wall_seconds"] + time.perf_counter() - started,
                "compilations": prior["compilations"] + train_step._cache_size()}

    stopped_early = False
    skipped, consecutive, noticed = int(state.skipped), 0, False
    window: dict[str, list[float]] = {}  # each term's values since the last train line
    bar = tqdm(total=config.steps, initial=start_step, desc="training", unit="step",
               disable=not (config.progress and primary))
    try:
        while int(state.step) < config.steps and not book.get("stopped", False):
            state, metrics = train_step(state, put(prepare(next(train_batches))), rng)
            jax.block_until_ready(metrics["loss"])  # one step at a time: no queued multi-device deadlocks on CPU
            step = int(state.step)
            scalars = _scalars(metrics)  # one host copy a step: the window, the skip count, a divergence line
            for key, value in scalars.items():
                window.setdefault(key, []).append(value)
            bar.update(1)
            now_skipped = int(scalars["skipped"])
            consecutive = consecutive + 1 if now_skipped > skipped else 0
            if consecutive == 1 and not noticed and primary:  # once per run; metrics.jsonl counts every one
                tqdm.write(f"step {step}: non-finite loss or gradient, update skipped (counted as `skipped`)")
                noticed = True
            skipped = now_skipped
            if config.max_consecutive_skipped is not None and consecutive >= config.max_consecutive_skipped:
                log.write(strict_json({"step": step, "split": "train", **scalars}) + "\n")
                if primary:  # the inference tools and the next resume read the best checkpoint instead
                    from mmspeech_jax.workdir import atomic_write_text

                    atomic_write_text(diverged_marker(workdir), strict_json(
                        {"first_skipped_step": step - consecutive + 1, "stopped_at_step": step}) + "\n")
                raise TrainingDivergedError(
                    f"steps {step - consecutive + 1}-{step}: {consecutive} consecutive steps had a non-finite loss or "
                    f"gradient and were skipped, so the parameters are still those after step {step - consecutive} "
                    f"(checkpoints in {workdir / 'checkpoints'} are kept); lower the learning rate, check the data "
                    f"or compute in float32")
            if step % config.log_every == 0 or step == config.steps:
                scalars, window = _window_means(window), {}
                if learning_rate is not None and (count := schedule_count(state.opt_state)) is not None:
                    scalars["learning_rate"] = float(learning_rate(int(count)))
                rate = (step - start_step) / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(loss=f"{scalars['loss']:.3f}", steps_per_s=f"{rate:.2f}")
                log.write(strict_json({"step": step, "split": "train", **scalars, "steps_per_second": rate}) + "\n")
                log.flush()
                for key, value in scalars.items():
                    writer.add_scalar(f"train/{key}", value, step)
            if eval_batches is not None and (step % config.eval_every == 0 or step == config.steps):
                val, _ = evaluate_split(eval_step, eval_counts, state,
                                        lambda: (put(prepare(batch)) for batch in eval_batches()), rng)
                log.write(strict_json({"step": step, "split": "validation", **val}) + "\n")
                log.flush()
                for key, value in val.items():
                    writer.add_scalar(f"validation/{key}", value, step)
                if on_eval is not None:
                    host_params = host_copy(state.params)  # every process takes part in the gather
                    if primary:
                        write_summaries(writer, step, on_eval(host_params, step))
                        writer.flush()
                if val.get("loss", float("inf")) < book["best_val_loss"]:
                    book = {"best_val_loss": val["loss"], "evals_without_improvement": 0}
                    checkpointer.save_best(step, state, rng, {"iterator": train_batches.get_state(),
                                                              "book": saved_book()}, val["loss"])
                else:
                    book = {**book, "evals_without_improvement": book["evals_without_improvement"] + 1}
                if config.patience is not None and book["evals_without_improvement"] > config.patience:
                    stopped_early = True
                    book = {**book, "stopped": True}  # a restart of the same command stays stopped
            # A skipped step never rotates out a checkpoint taken before it (a diverging run would otherwise replace
            # the healthy checkpoints with its own); the next finite step saves again.
            if (step % config.checkpoint_every == 0 or step == config.steps or stopped_early) and consecutive == 0:
                checkpointer.save(step, state, rng, {"iterator": train_batches.get_state(), "book": saved_book()})
                if primary and diverged_marker(workdir).is_file():
                    checkpointer.wait()
                    diverged_marker(workdir).unlink()  # a healthy checkpoint is the newest again
            if stopped_early:
                print(f"early stopping at step {step}: no validation improvement in {config.patience + 1} evaluations")
                break
    finally:
        bar.close()
        checkpointer.close()
        writer.close()
        log.close()
    wall = time.perf_counter() - started
    if jax.process_count() > 1:
        state = host_copy(state)
    return FitResult(state, book["best_val_loss"], stopped_early or book.get("stopped", False),
                     (int(state.step) - start_step) / max(wall, 1e-9), prior["wall_seconds"] + wall,
                     prior["compilations"] + train_step._cache_size(), wall)


def diverged_marker(workdir) -> Path:
    """`checkpoints/DIVERGED.json`: written when a run stops for divergence (first skipped step, stop step); while
    it exists, resuming and the inference tools read the best checkpoint, not the newest periodic one."""
    return Path(workdir) / "checkpoints" / "DIVERGED.json"


def drop_logged_after(path: Path, step: int) -> None:
    """Removes the lines of `metrics.jsonl` logged after `step` (an interrupted run's steps past its last
    checkpoint, which the resumed run logs again), atomically (temporary file, then rename)."""
    if not path.is_file():
        return
    import json

    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(json, line) <= step]
    if len(kept) != len(lines):
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(kept))
        partial.replace(path)


def _logged_step(json, line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return float("inf")  # a torn last line (killed mid-write): dropped


class _NoLog:
    """Stands in for the metrics file and the TensorBoard writer on non-primary processes."""

    def write(self, *_):
        pass

    flush = close = add_scalar = add_image = add_audio = add_text = write
