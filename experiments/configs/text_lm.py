"""The config tree of `python -m experiments.text_lm` (the character-level Transformer LM), its presets and its
flags' defaults.

    tree = config("base")                        # 600 steps of batch 64 at 2e-3 (~9 min on 2 cores)
    python -m experiments.text_lm --set text.template_sentences=5000 --set model.layers=2
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import check_tree
from mmspeech_jax import config_checks
from mmspeech_jax.models.text_lm import PRESETS, TextLMConfig
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig


@dataclasses.dataclass(frozen=True)
class LMTextConfig:
    """The training text: the natural train-split sentences (the first `max_sentences`; None: all) plus
    `template_sentences` of the generator's templates (numbers, dates, money, times, abbreviations)."""
    template_sentences: int = 20000
    max_sentences: int | None = None

    def __post_init__(self):
        config_checks.integers(self, template_sentences=0)
        config_checks.integer(self, "max_sentences", 1, none_ok=True)


@dataclasses.dataclass(frozen=True)
class TextPipelineConfig:
    """Sentence batches: `batch_size` sentences padded to the smallest of the length rungs that holds them,
    shuffled by `seed`."""
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        config_checks.integers(self, batch_size=1, seed=0)


@dataclasses.dataclass(frozen=True)
class TextLMExperimentConfig:
    """Everything one run of experiments.text_lm uses (`mesh` None: one device). `check` runs the checks across
    parts."""
    model: TextLMConfig
    text: LMTextConfig = LMTextConfig()
    pipeline: TextPipelineConfig = TextPipelineConfig()
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=60, total_steps=600)
    trainer: TrainerConfig = TrainerConfig(steps=600, eval_every=200, checkpoint_every=200)
    mesh: MeshConfig | None = None

    def check(self) -> "TextLMExperimentConfig":
        check_tree(self)
        return self


def config(name: str = "base", *, steps: int = 600, learning_rate: float = 2e-3,
           batch_size: int = 64) -> TextLMExperimentConfig:
    """The preset `name` for a `steps`-step run: warm-up min(200, steps / 10), cosine to the last step."""
    return TextLMExperimentConfig(
        model=TextLMConfig(**PRESETS[name]), pipeline=TextPipelineConfig(batch_size=batch_size),
        optimizer=OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(200, steps // 10), total_steps=steps),
        trainer=TrainerConfig(steps=steps, eval_every=200, checkpoint_every=200))
