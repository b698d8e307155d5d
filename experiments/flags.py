"""The experiments' shared flags: data source (`--data {auto,embedded,ljspeech}`) and the trainer's knobs.

`auto` uses LJSpeech when it is prepared (TFDS) under `--data_dir`, else the embedded espeak-ng corpus (generated
on first use), and prints which one it took.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmspeech_jax.data import CorpusConfig, embedded_feature_cache


# make_batch_iterator arguments for evaluation after training: every row of the split, whichever process asks
# (training reads only this process's rows of each batch).
WHOLE_SPLIT = {"process_index": 0, "process_count": 1}


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="auto", choices=["auto", "embedded", "ljspeech"],
                   help="auto: prepared LJSpeech in --data_dir if found, else the embedded corpus")
    p.add_argument("--data_dir", default="data/tfds", help="TFDS data_dir holding prepared LJSpeech")
    p.add_argument("--corpus_size", type=int, default=13000, help="embedded corpus utterances")


def add_trainer_args(p: argparse.ArgumentParser, *, steps: int, learning_rate: float, eval_every: int = 250) -> None:
    """Flags every training experiment shares (the shared trainer's knobs)."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=learning_rate)
    p.add_argument("--num_buckets", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval_every", type=int, default=eval_every)
    p.add_argument("--checkpoint_every", type=int, default=eval_every)
    p.add_argument("--patience", type=int, default=None, help="evaluations without improvement before stopping")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--compilation_cache", default=None, metavar="DIR",
                   help="JAX persistent compilation cache directory (reruns and resumes skip compiling)")
    p.add_argument("--mesh", default=None, metavar="DATAxFSDP",
                   help="shard training over a device mesh, e.g. 8x1 (data parallel) or 2x4 (FSDP over 4); "
                        "default: one device")
    p.add_argument("--micro_batches", type=int, default=1, metavar="M",
                   help="gradient accumulation: split each batch into M micro-batches (same result as the whole "
                        "batch, 1/M of the activation memory; batch_size must divide by M)")
    p.add_argument("--max_consecutive_skipped", type=int, default=50, metavar="K",
                   help="stop with one line when K steps in a row had a non-finite loss or gradient (each is "
                        "skipped, not applied); 0: never stop")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any field of the experiment's config tree (repeatable; dotted paths, values as "
                        "JSON), e.g. --set optimizer.learning_rate=2e-3 --set model.dropout=0; a key that is not "
                        "one of the tree's parts is the model's: --set dropout=0 is --set model.dropout=0")


def parse_checked(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """`p.parse_args(argv)` with the trainer's and the pipeline's flags validated by their configs, so that a bad
    value (`--eval_every 0`, `--batch_size 6 --micro_batches 4`) stops the command with argparse's one-line error
    and exit status 2 before any data is generated or loaded (`parse_tree` then builds the whole config tree, the
    `--set` overrides included, the same way)."""
    import math

    from mmspeech_jax.data import PipelineConfig
    from mmspeech_jax.errors import ConfigError, NotAWorkdirError, WorkdirBusyError

    args = p.parse_args(argv)
    try:
        trainer_config(args)
        PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets)
        CorpusConfig(num_utterances=getattr(args, "corpus_size", 1))
        mesh_config_from_flag(getattr(args, "mesh", None))
        if getattr(args, "workdir", None):  # a file, or no permission: refused before any data loads
            from mmspeech_jax.workdir_lock import check_workdir_free, check_workdir_path

            check_workdir_path(args.workdir, require_marker=False)
            check_workdir_free(args.workdir)  # a second writer stops here, before any data loads
    except (ConfigError, NotAWorkdirError, WorkdirBusyError) as exc:
        p.error(str(exc))
    if args.batch_size % args.micro_batches:
        p.error(f"--batch_size {args.batch_size} does not split into --micro_batches {args.micro_batches}")
    for name, value in sorted(vars(args).items()):  # the experiments' own stages: --pretrain_learning_rate, ...
        if name.endswith("learning_rate") and not (math.isfinite(value) and value > 0):
            p.error(f"--{name} must be a positive number, got {value}")
        if (name.endswith("_steps") or name == "num_samples") and value is not None and value < 0:
            p.error(f"--{name} must be >= 0, got {value}")
        if name == "beam_width" and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if getattr(args, "data", None) == "ljspeech":
        from mmspeech_jax.data.ljspeech import is_prepared

        if not is_prepared(args.data_dir):
            p.error(f"--data ljspeech: LJSpeech is not prepared under --data_dir {args.data_dir} (prepare it with "
                    f"mmspeech_jax.data.ljspeech.prepare_ljspeech on a machine with internet, or use --data embedded)")
    return args


def parse_tree(p: argparse.ArgumentParser, argv, from_flags, bare_keys: str = "model"):
    """(args, config tree): `parse_checked`, then the experiment's tree built by `from_flags(args)` with the
    `--set` overrides applied over the whole tree (`overrides.apply_tree_overrides`; a key that names none of the
    tree's parts belongs to the `bare_keys` subtree), then its cross-part checks
    (`tree.check()`). A bad value anywhere in the tree stops the command with argparse's one-line error before any data loads."""
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.overrides import apply_tree_overrides

    args = parse_checked(p, argv)
    try:
        tree = apply_tree_overrides(from_flags(args), args.overrides, bare_keys).check()
    except ConfigError as exc:
        p.error(str(exc))
    return args, tree


def data_config(args):
    """`--data`, `--data_dir`, `--corpus_size` -> `DataConfig`."""
    from experiments.configs.common import DataConfig

    return DataConfig(source=args.data, data_dir=args.data_dir, corpus_size=args.corpus_size)


def pipeline_config(args, **fields):
    """`--batch_size`, `--num_buckets`, `--seed` -> the training `PipelineConfig` (endless epochs); `fields`
    replace any."""
    from mmspeech_jax.data import PipelineConfig

    return PipelineConfig(**{**dict(batch_size=args.batch_size, num_buckets=args.num_buckets, seed=args.seed,
                                     num_epochs=None), **fields})


def shared_parts(args) -> dict:
    """The tree parts the shared flags fill: pipeline, trainer, mesh (and data where the experiment has
    `add_data_args`)."""
    parts = dict(pipeline=pipeline_config(args), trainer=trainer_config(args),
                 mesh=mesh_config_from_flag(getattr(args, "mesh", None)))
    if hasattr(args, "data"):
        parts["data"] = data_config(args)
    return parts


def run_command(main, argv=None) -> None:
    """What `python -m experiments.X` runs: `main(argv)`, where a user error found after parsing (a mesh the devices
    cannot form, a corpus that does not hold a voice's utterances, ...: any `MMSpeechError`) prints one line,
    `X: error: ...`, and exits with status 2 like argparse's own errors, instead of a traceback. Bugs still
    raise with their traceback. First, before JAX starts its CPU backend, `host_memory.keep_freed_memory()`."""
    from mmspeech_jax.errors import MMSpeechError
    from mmspeech_jax.host_memory import keep_freed_memory

    keep_freed_memory()
    try:
        main(argv)
    except MMSpeechError as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)  # argparse's prefix
        sys.exit(2)


def add_distributed_args(p: argparse.ArgumentParser) -> None:
    """Multi-host flags: run the same command on every host with its own --process_id (train/distributed.py)."""
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-host: process 0's address; every process runs the same command")
    p.add_argument("--num_processes", type=int, default=1)
    p.add_argument("--process_id", type=int, default=0)


def initialize_distributed(args) -> None:
    """Join the processes the flags name (before any other JAX call); a single process does nothing."""
    from mmspeech_jax.train.distributed import DistributedConfig, initialize

    initialize(DistributedConfig(args.coordinator, args.num_processes, args.process_id))


def trainer_config(args, **fields):
    """The shared trainer's config from the flags `add_trainer_args` defines; `fields` set or replace any."""
    from mmspeech_jax.train.trainer import TrainerConfig

    shared = dict(steps=args.steps, seed=args.seed, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                  patience=args.patience, progress=not args.no_progress, compilation_cache_dir=args.compilation_cache,
                  micro_batches=args.micro_batches, max_consecutive_skipped=args.max_consecutive_skipped or None)
    return TrainerConfig(**{**shared, **fields})


def load_data(data, progress: bool = True):
    """The feature cache a `DataConfig` selects (LJSpeech through TFDS, or the embedded corpus)."""
    if data.source in ("auto", "ljspeech"):
        from mmspeech_jax.data.ljspeech import is_prepared

        if is_prepared(data.data_dir):
            from mmspeech_jax.data.feature_cache import FeatureConfig, build_feature_cache, ljspeech_utterances

            print(f"data: LJSpeech from {data.data_dir}")
            return build_feature_cache(ljspeech_utterances(data.data_dir), Path(data.data_dir) / "mmspeech_features",
                                       FeatureConfig(), progress=progress)
        if data.source == "ljspeech":
            from mmspeech_jax.errors import CorpusNotFoundError

            raise CorpusNotFoundError(f"LJSpeech is not prepared under {data.data_dir}")
    print(f"data: embedded espeak-ng corpus ({data.corpus_size} utterances)")
    return embedded_feature_cache(CorpusConfig(num_utterances=data.corpus_size), progress=progress)


def mesh_config_from_flag(value: str | None):
    """`--mesh DATAxFSDP` -> a `MeshConfig` (None stays None), without touching the devices (parse time)."""
    if not value:
        return None
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.train.sharding import MeshConfig

    try:
        data, fsdp = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--mesh must look like 8x1 or 2x4 (data x fsdp), got {value!r}") from None
    return MeshConfig(data=data, fsdp=fsdp)


def build_mesh(config, batch_size: int | None = None):
    """A tree's `MeshConfig` -> a `jax.sharding.Mesh` over this run's devices (None stays None: one device). Call it
    after `initialize_distributed` and before loading data, so that a mesh the devices cannot form, or a (global)
    `batch_size` that does not split over its devices, stops the run before any data loads."""
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.train.sharding import make_mesh

    if config is None:
        return None
    mesh = make_mesh(config)
    if batch_size is not None and batch_size % mesh.devices.size:
        raise ConfigError(f"--batch_size {batch_size} does not split over the {mesh.devices.size} devices of "
                          f"--mesh {config.data}x{config.fsdp}")
    return mesh
