"""The config tree of `python -m experiments.ljspeech_tts` (FastSpeech2 with its own aligner), its presets and its
flags.

    tree = config("base")                         # the default run: 2 400 steps of batch 8 at 1.5e-3
    tree = config("tiny", steps=200)
    python -m experiments.ljspeech_tts --set optimizer.learning_rate=2e-3 --set model.dropout=0.1
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import DataConfig, check_tree
from mmspeech_jax import config_checks
from mmspeech_jax.data import PipelineConfig
from mmspeech_jax.models.fastspeech2 import FastSpeech2Config, preset
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig

PRESETS = ("tiny", "base", "ljspeech")


@dataclasses.dataclass(frozen=True)
class TTSLossConfig:
    """The loss's schedule: the aligner's binarization loss counts from `binarization_start` (the presets: a third
    of the steps)."""
    binarization_start: int = 800

    def __post_init__(self):
        config_checks.integers(self, binarization_start=0)


@dataclasses.dataclass(frozen=True)
class TTSEvaluationConfig:
    """After training: plots and speech of the first `num_samples` validation utterances; with `asr_workdir`, the
    closed loop (this TTS -> Griffin-Lim or `vocoder` -> that ASR) on `intelligibility_sentences` test sentences
    and on the first `natural_eval_utterances` natural sentences (None: all; 0: skip), and during training on
    the first `natural_curve_sentences` (0: off)."""
    num_samples: int = 3
    asr_workdir: str | None = None
    intelligibility_sentences: int = 20
    vocoder: str | None = None
    natural_eval_utterances: int | None = None
    natural_curve_sentences: int = 40

    def __post_init__(self):
        config_checks.integers(self, num_samples=0, intelligibility_sentences=0, natural_curve_sentences=0)
        config_checks.integer(self, "natural_eval_utterances", 0, none_ok=True)


@dataclasses.dataclass(frozen=True)
class LJSpeechTTSConfig:
    """Everything one run of experiments.ljspeech_tts uses. `model.vocab_size` is the data's (set when it loads);
    `mesh` None: one device. Each part checks itself when built; `check` runs the checks across parts (after all
    `--set` overrides, which may change two parts that must agree)."""
    model: FastSpeech2Config
    data: DataConfig = DataConfig()
    pipeline: PipelineConfig = PipelineConfig(batch_size=8, num_epochs=None)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=1.5e-3, warmup_steps=240, total_steps=2400)
    trainer: TrainerConfig = TrainerConfig(steps=2400, eval_every=200, checkpoint_every=200)
    loss: TTSLossConfig = TTSLossConfig(binarization_start=800)
    evaluation: TTSEvaluationConfig = TTSEvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "LJSpeechTTSConfig":
        check_tree(self)
        return self


def config(name: str = "base", *, steps: int = 2400, learning_rate: float = 1.5e-3, batch_size: int = 8,
           vocab_size: int = 2) -> LJSpeechTTSConfig:
    """The preset `name` (the model preset of the same name) for a `steps`-step run: warm-up min(400, steps / 10),
    cosine decay to the last step, binarization from steps / 3. 2 400 steps fit the 30-minute budget on 2 cores
    (benchmarks/RESULTS.md)."""
    return LJSpeechTTSConfig(
        model=preset(name, vocab_size),
        pipeline=PipelineConfig(batch_size=batch_size, num_epochs=None),
        optimizer=OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(400, steps // 10), total_steps=steps),
        trainer=TrainerConfig(steps=steps, eval_every=200, checkpoint_every=200),
        loss=TTSLossConfig(binarization_start=steps // 3))
