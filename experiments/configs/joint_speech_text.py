"""The config tree of `python -m experiments.joint_speech_text` (one model for both directions: joint pretraining
against both single-task baselines, 10 % labels), its presets and its flags' defaults.

    tree = config("base")   # 240 CTC warm-up steps, 560 pretraining steps, 240 fine-tuning steps per row, batch 8
    python -m experiments.joint_speech_text --set model.text_mask_probability=0.2 --set rows.strategy=\"lora\"
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import DataConfig, check_tree
from mmspeech_jax import config_checks
from mmspeech_jax.data import PipelineConfig
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.joint_speech_text import MODES, JointConfig, JointLossConfig, preset
from mmspeech_jax.train.finetune import STRATEGIES
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig

# row: (initial parameters, fine-tuning mode)
ROWS = {"scratch_asr": (None, "asr"), "scratch_tts": (None, "tts"), "bestrq_asr": ("bestrq", "asr"),
        "joint_asr": ("joint", "asr"), "joint_tts": ("joint", "tts"), "joint_asr_tts": ("joint", "asr_tts")}


@dataclasses.dataclass(frozen=True)
class JointRowsConfig:
    """The low-resource setting and the table: labels for `label_fraction` of the training utterances, the first
    `text_sentences` natural train-split sentences as unpaired text, the `rows` to train, and the fine-tuning
    `strategy` of the pretrained rows (with `freeze_layers`, `adapter_dim`, `lora_rank`)."""
    label_fraction: float = 0.1
    text_sentences: int = 30000
    rows: tuple[str, ...] = tuple(ROWS)
    strategy: str = "full"
    freeze_layers: int = 2
    adapter_dim: int = 32
    lora_rank: int = 8

    def __post_init__(self):
        config_checks.number(self, "label_fraction", 0, 1, low_open=True)
        config_checks.integers(self, text_sentences=1, freeze_layers=0, adapter_dim=1, lora_rank=1)
        config_checks.choice(self, "strategy", STRATEGIES)
        unknown = sorted(set(self.rows) - set(ROWS))
        if unknown or not self.rows:
            raise ConfigError(f"JointRowsConfig.rows: unknown rows {unknown}; choose from {tuple(ROWS)}")


@dataclasses.dataclass(frozen=True)
class JointEvaluationConfig:
    """ASR rows: greedy CER on the test split and the first `natural_eval_utterances` natural sentences (None:
    all); TTS rows: mel L1 and, with `judge_asr` (an ASR workdir), its CER on Griffin-Lim speech of the first
    `intelligibility_sentences` test and natural sentences. Every stage's validation passes (the pretraining
    curves, the best checkpoint) read the first `validation_utterances` of the validation split (None: all)."""
    judge_asr: str | None = None
    intelligibility_sentences: int = 40
    natural_eval_utterances: int | None = None
    validation_utterances: int | None = 200

    def __post_init__(self):
        config_checks.integers(self, intelligibility_sentences=1)
        config_checks.integer(self, "natural_eval_utterances", 1, none_ok=True)
        config_checks.integer(self, "validation_utterances", 1, none_ok=True)


@dataclasses.dataclass(frozen=True)
class JointExperimentConfig:
    """Everything one run of experiments.joint_speech_text uses: the model; the CTC warm-up's optimizer and
    trainer (`ctc_warmup_*`: CTC alone on the labelled subset, from fresh parameters, whose result both
    pretrainings start from; both None: no warm-up, the pretrainings start from fresh parameters); the pretraining
    stages' optimizer and trainer (both pretrainings), the joint pretraining's loss weights (`pretrain_weights`;
    CTC weighted 5x did not leave the blank plateau sooner, benchmarks/RESULTS.md: the warm-up does; the
    fine-tuning rows take their mode's weights, `models.joint_speech_text.MODES`, with binarization from a third of
    their steps), the fine-tuning rows' (`optimizer`, `trainer`), the rows and their evaluation (`mesh` None: one
    device). `check` runs the checks across parts."""
    model: JointConfig
    data: DataConfig = DataConfig()
    pipeline: PipelineConfig = PipelineConfig(batch_size=8, num_buckets=2, num_epochs=None)
    ctc_warmup_optimizer: OptimizerConfig | None = OptimizerConfig(learning_rate=2e-3, warmup_steps=80,
                                                                   total_steps=240)
    ctc_warmup_trainer: TrainerConfig | None = TrainerConfig(steps=240, eval_every=240, checkpoint_every=240)
    pretrain_optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=186, total_steps=560)
    pretrain_trainer: TrainerConfig = TrainerConfig(steps=560, eval_every=140, checkpoint_every=140)
    pretrain_weights: JointLossConfig = JointLossConfig(**MODES["pretrain"], binarization_start=186)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=80, total_steps=240)
    trainer: TrainerConfig = TrainerConfig(steps=240, eval_every=240, checkpoint_every=240)
    rows: JointRowsConfig = JointRowsConfig()
    evaluation: JointEvaluationConfig = JointEvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "JointExperimentConfig":
        if (self.ctc_warmup_optimizer is None) != (self.ctc_warmup_trainer is None):
            raise ConfigError("ctc_warmup_optimizer and ctc_warmup_trainer: set both (a CTC warm-up) or neither")
        check_tree(self)
        return self


def schedule(steps: int, learning_rate: float, eval_every: int) -> tuple[OptimizerConfig, TrainerConfig]:
    """(optimizer, trainer) of one stage: a long warm-up, min(200, steps / 3) (at 2e-3 with a 10 % warm-up the CTC
    head stayed at the blank plateau for 200+ steps), cosine to the last step."""
    return (OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(200, steps // 3), total_steps=steps),
            TrainerConfig(steps=steps, eval_every=eval_every, checkpoint_every=eval_every))


def config(name: str = "base", *, ctc_warmup_steps: int = 240, pretrain_steps: int = 560,
           pretrain_learning_rate: float = 2e-3, pretrain_eval_every: int = 140, steps: int = 240,
           learning_rate: float = 2e-3, eval_every: int = 240, batch_size: int = 8,
           vocab_size: int = 2) -> JointExperimentConfig:
    """The preset `name` (the model preset of the same name); the joint pretraining's binarization loss counts
    from a third of its steps. The CTC warm-up (`ctc_warmup_steps`, 0: none) trains like the fine-tuning rows
    (`learning_rate`, warm-up a third): with as many steps, its compiled program is the ASR rows'."""
    warmup = schedule(ctc_warmup_steps, learning_rate, ctc_warmup_steps) if ctc_warmup_steps else (None, None)
    pretrain_optimizer, pretrain_trainer = schedule(pretrain_steps, pretrain_learning_rate, pretrain_eval_every)
    optimizer, trainer = schedule(steps, learning_rate, eval_every)
    weights = JointLossConfig(**MODES["pretrain"], binarization_start=pretrain_steps // 3)
    return JointExperimentConfig(model=preset(name, vocab_size),
                                 pipeline=PipelineConfig(batch_size=batch_size, num_buckets=2, num_epochs=None),
                                 ctc_warmup_optimizer=warmup[0], ctc_warmup_trainer=warmup[1],
                                 pretrain_optimizer=pretrain_optimizer, pretrain_trainer=pretrain_trainer,
                                 pretrain_weights=weights, optimizer=optimizer, trainer=trainer)
