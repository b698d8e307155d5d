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
                   help="override a model config field (repeatable; dotted for nested fields, values as JSON), "
                        "e.g. --set dropout=0 --set predictor.dropout=0.1")


def parse_checked(p: argparse.ArgumentParser, argv=None, model_config=None) -> argparse.Namespace:
    """`p.parse_args(argv)` with the trainer's and the pipeline's flags validated by their configs, so that a bad
    value (`--eval_every 0`, `--batch_size 6 --micro_batches 4`) stops the command with argparse's one-line error
    and exit status 2 before any data is generated or loaded. `model_config(args)`, when given, builds the
    experiment's model config from the flags (its `--set` overrides included) with stand-in data sizes, so a bad
    override (`--set heads=0`, `--set dropout=1.5`) stops it the same way."""
    import math

    from mmspeech_jax.data import PipelineConfig
    from mmspeech_jax.errors import ConfigError, NotAWorkdirError, WorkdirBusyError

    args = p.parse_args(argv)
    try:
        trainer_config(args)
        PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets)
        CorpusConfig(num_utterances=getattr(args, "corpus_size", 1))
        if model_config is not None:
            model_config(args)
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
        if (name.endswith("_steps") or name == "num_samples") and value < 0:
            p.error(f"--{name} must be >= 0, got {value}")
        if name == "beam_width" and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if getattr(args, "data", None) == "ljspeech":
        from mmspeech_jax.data.ljspeech import is_prepared

        if not is_prepared(args.data_dir):
            p.error(f"--data ljspeech: LJSpeech is not prepared under --data_dir {args.data_dir} (prepare it with "
                    f"mmspeech_jax.data.ljspeech.prepare_ljspeech on a machine with internet, or use --data embedded)")
    return args


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


def load_data(args):
    """The feature cache the flags select (`args.data`, `args.data_dir`, `args.corpus_size`, `args.no_progress`)."""
    if args.data in ("auto", "ljspeech"):
        from mmspeech_jax.data.ljspeech import is_prepared

        if is_prepared(args.data_dir):
            from mmspeech_jax.data.feature_cache import FeatureConfig, build_feature_cache, ljspeech_utterances

            print(f"data: LJSpeech from {args.data_dir}")
            return build_feature_cache(ljspeech_utterances(args.data_dir), Path(args.data_dir) / "mmspeech_features",
                                       FeatureConfig(), progress=not args.no_progress)
        if args.data == "ljspeech":
            from mmspeech_jax.errors import CorpusNotFoundError

            raise CorpusNotFoundError(f"LJSpeech is not prepared under {args.data_dir}")
    print(f"data: embedded espeak-ng corpus ({args.corpus_size} utterances)")
    return embedded_feature_cache(CorpusConfig(num_utterances=args.corpus_size), progress=not args.no_progress)


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


def mesh_from_flag(value: str | None, batch_size: int | None = None):
    """`--mesh DATAxFSDP` -> a `jax.sharding.Mesh` over this run's devices (None stays None: one device). Call it
    after `initialize_distributed` and before loading data, so that a mesh the devices cannot form, or a (global)
    `batch_size` that does not split over its devices, stops the run before any data loads."""
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.train.sharding import make_mesh

    config = mesh_config_from_flag(value)
    if config is None:
        return None
    mesh = make_mesh(config)
    if batch_size is not None and batch_size % mesh.devices.size:
        raise ConfigError(f"--batch_size {batch_size} does not split over the {mesh.devices.size} devices of "
                          f"--mesh {value}")
    return mesh
