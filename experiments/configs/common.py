"""The parts every experiment's config tree shares: where the data comes from (`DataConfig`), and the checks that
tie the tree's parts together (`check_tree`).

An experiment's tree (`experiments/configs/<experiment>.py`) is a frozen dataclass whose fields are the configs the
library already has — the model's, `PipelineConfig` (batching), `OptimizerConfig`, `TrainerConfig`, `MeshConfig` —
plus the experiment's own evaluation config. `config.json` holds the tree (`config_tree.to_dict`) and reads back
into the same types (`config_tree.from_record`).
"""

from __future__ import annotations

import dataclasses

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError

SOURCES = ("auto", "embedded", "ljspeech")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training data: `source` "auto" (prepared LJSpeech under `data_dir` if found, else the embedded corpus),
    "embedded" (the espeak-ng corpus of `corpus_size` utterances, generated on first use) or "ljspeech" (TFDS
    `data_dir`). Checked when built."""
    source: str = "auto"
    data_dir: str = "data/tfds"
    corpus_size: int = 13000

    def __post_init__(self):
        config_checks.choice(self, "source", SOURCES)
        config_checks.integers(self, corpus_size=1)


def check_schedule(optimizer, trainer, name: str = "") -> None:
    """The learning-rate schedule must end with the run: `optimizer.total_steps == trainer.steps` (`name`
    prefixes the fields in the message, e.g. "pretrain_")."""
    if optimizer.total_steps != trainer.steps:
        raise ConfigError(f"{name}optimizer.total_steps ({optimizer.total_steps}) differs from {name}trainer.steps "
                          f"({trainer.steps}): the schedule would not end with the run; set both (--steps does)")


def check_tree(tree) -> None:
    """The cross-part checks of a tree with `pipeline`, `optimizer` and `trainer` fields: every schedule ends with
    its run (`X_optimizer` with `X_trainer` when the tree has one, else with `trainer`: `pretrain_optimizer`,
    `discriminator_optimizer`; a None optimizer is an optional stage left out), and the batch splits into the
    trainer's micro-batches."""
    for field in dataclasses.fields(tree):
        if field.name.endswith("optimizer") and getattr(tree, field.name) is not None:
            prefix = field.name[: -len("optimizer")]
            check_schedule(getattr(tree, field.name), getattr(tree, prefix + "trainer", tree.trainer), prefix)
    batch = tree.pipeline.batch_size
    if batch % tree.trainer.micro_batches:
        raise ConfigError(f"pipeline.batch_size {batch} does not split into trainer.micro_batches "
                          f"{tree.trainer.micro_batches}")


def with_vocabulary(tree, vocab_size: int):
    """`tree` with its model's `vocab_size` set (known once the data's symbol table is)."""
    return dataclasses.replace(tree, model=dataclasses.replace(tree.model, vocab_size=vocab_size))
