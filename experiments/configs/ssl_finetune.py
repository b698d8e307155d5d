"""The config tree of `python -m experiments.ssl_finetune`: BEST-RQ pretraining on all training audio, then CTC
fine-tuning on a labelled fraction with each strategy.

    tree = config("base")                        # 600 pretraining steps, 600 fine-tuning steps, 10 % labels
    python -m experiments.ssl_finetune --set finetune.lora_rank=4 --set pretrain_optimizer.learning_rate=1e-3
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import DataConfig, check_tree
from experiments.configs.ljspeech_asr import ASREvaluationConfig, model_config, schedule
from mmspeech_jax import config_checks
from mmspeech_jax.data import PipelineConfig
from mmspeech_jax.models.best_rq import BestRQConfig
from mmspeech_jax.models.ctc_asr import CTCASRConfig
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig

STRATEGY_ROWS = ("scratch", "full", "freeze_bottom", "adapters", "lora")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """The labelled fraction of the training utterances, the strategies (rows) to fine-tune and their sizes:
    `freeze_layers` frozen encoder blocks (freeze_bottom), `adapter_dim` (adapters), `lora_rank` (lora)."""
    label_fraction: float = 0.1
    strategies: tuple[str, ...] = STRATEGY_ROWS
    freeze_layers: int = 2
    adapter_dim: int = 32
    lora_rank: int = 8

    def __post_init__(self):
        config_checks.number(self, "label_fraction", 0, 1, low_open=True)
        config_checks.integers(self, freeze_layers=0, adapter_dim=1, lora_rank=1)
        unknown = sorted(set(self.strategies) - set(STRATEGY_ROWS))
        if unknown or not self.strategies:
            from mmspeech_jax.errors import ConfigError

            raise ConfigError(f"FinetuneConfig.strategies: unknown strategies {unknown}; choose from {STRATEGY_ROWS}")


@dataclasses.dataclass(frozen=True)
class SSLFinetuneConfig:
    """Everything one run of experiments.ssl_finetune uses: the CTC `model` (each strategy adds its adapters or
    LoRA), BEST-RQ's `ssl` settings, pretraining's optimizer and trainer, fine-tuning's (`optimizer`, `trainer`),
    the `finetune` rows and their `evaluation` (`mesh` None: one device)."""
    model: CTCASRConfig
    data: DataConfig = DataConfig()
    pipeline: PipelineConfig = PipelineConfig(num_epochs=None)
    ssl: BestRQConfig = BestRQConfig()
    pretrain_optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=60, total_steps=600)
    pretrain_trainer: TrainerConfig = TrainerConfig(steps=600, eval_every=200, checkpoint_every=200)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=60, total_steps=600)
    trainer: TrainerConfig = TrainerConfig(steps=600, eval_every=200, checkpoint_every=200)
    finetune: FinetuneConfig = FinetuneConfig()
    evaluation: ASREvaluationConfig = ASREvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "SSLFinetuneConfig":
        check_tree(self)
        return self


def config(name: str = "base", *, encoder: str = "conformer", spec_augment: bool = True, pretrain_steps: int = 600,
           pretrain_learning_rate: float = 2e-3, steps: int = 600, learning_rate: float = 2e-3,
           batch_size: int = 16) -> SSLFinetuneConfig:
    """The preset `name`: `pretrain_steps` of BEST-RQ, then `steps` of fine-tuning per strategy."""
    pretrain_optimizer, pretrain_trainer = schedule(pretrain_steps, pretrain_learning_rate)
    optimizer, trainer = schedule(steps, learning_rate)
    return SSLFinetuneConfig(model=model_config(name, encoder=encoder, spec_augment=spec_augment),
                             pipeline=PipelineConfig(batch_size=batch_size, num_epochs=None),
                             pretrain_optimizer=pretrain_optimizer, pretrain_trainer=dataclasses.replace(
                                 pretrain_trainer, patience=None), optimizer=optimizer, trainer=trainer)
