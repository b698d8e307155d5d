"""The config tree of `python -m experiments.multispeaker_tts` (HyperSpeech on the multi-voice corpus, then
adaptation to held-out voices), its presets and its flags' defaults.

    tree = config("base")                    # 8 voices, 2 held out, 800 steps; 100 adaptation steps per strategy
    python -m experiments.multispeaker_tts --set adaptation.steps=50 --set model.fusion=\"cross_attention\"
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import check_tree
from experiments.configs.ljspeech_tts import TTSLossConfig
from mmspeech_jax import config_checks
from mmspeech_jax.data import PipelineConfig, multispeaker_config
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.fastspeech2 import preset
from mmspeech_jax.models.hyperspeech import HyperSpeechConfig
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig


@dataclasses.dataclass(frozen=True)
class VoicesConfig:
    """The multi-voice corpus (`corpus_size` utterances over `num_voices` voices); its last `held_out` voices stay
    out of multi-speaker training and are adapted to."""
    corpus_size: int = multispeaker_config().num_utterances
    num_voices: int = 8
    held_out: int = 2

    def __post_init__(self):
        config_checks.integers(self, corpus_size=1, num_voices=3)
        if not (isinstance(self.held_out, int) and 2 <= self.held_out < self.num_voices):
            raise ConfigError(f"VoicesConfig.held_out must be at least 2 and leave a training voice, got "
                              f"{self.held_out} of {self.num_voices}")

    @property
    def known(self) -> int:
        """Voices the multi-speaker model trains on."""
        return self.num_voices - self.held_out


@dataclasses.dataclass(frozen=True)
class AdaptationConfig:
    """Per held-out voice and strategy: `steps` steps at `learning_rate` (warm-up a tenth, cosine) on its first
    `utterances` training utterances."""
    utterances: int = 20
    steps: int = 100
    learning_rate: float = 5e-4

    def __post_init__(self):
        config_checks.integers(self, utterances=1, steps=0)
        config_checks.positive(self, "learning_rate")

    @property
    def optimizer(self) -> OptimizerConfig:
        return OptimizerConfig(learning_rate=self.learning_rate, warmup_steps=max(self.steps // 10, 1),
                               total_steps=self.steps)


@dataclasses.dataclass(frozen=True)
class MultiSpeakerEvaluationConfig:
    """Each strategy is scored on `eval_utterances` utterances per held-out voice, by a speaker classifier trained
    `classifier_steps` steps on real recordings and, with `asr_workdir`, by that ASR's CER; during training
    TensorBoard shows the first `num_samples` validation utterances."""
    eval_utterances: int = 10
    classifier_steps: int = 300
    asr_workdir: str | None = None
    num_samples: int = 3

    def __post_init__(self):
        config_checks.integers(self, eval_utterances=1, classifier_steps=0, num_samples=0)


@dataclasses.dataclass(frozen=True)
class MultiSpeakerTTSConfig:
    """Everything one run of experiments.multispeaker_tts uses (`mesh` None: one device; the mesh serves the
    multi-speaker training, adaptation runs on one device). `check` runs the checks across parts."""
    model: HyperSpeechConfig
    voices: VoicesConfig = VoicesConfig()
    pipeline: PipelineConfig = PipelineConfig(batch_size=8, num_epochs=None)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=1.5e-3, warmup_steps=80, total_steps=800)
    trainer: TrainerConfig = TrainerConfig(steps=800, eval_every=200, checkpoint_every=200)
    loss: TTSLossConfig = TTSLossConfig(binarization_start=266)
    adaptation: AdaptationConfig = AdaptationConfig()
    evaluation: MultiSpeakerEvaluationConfig = MultiSpeakerEvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "MultiSpeakerTTSConfig":
        check_tree(self)
        if self.model.num_speakers != self.voices.known:
            raise ConfigError(f"model.num_speakers ({self.model.num_speakers}) must be the training voices "
                              f"(voices.num_voices - voices.held_out = {self.voices.known})")
        return self


def config(name: str = "base", *, steps: int = 800, learning_rate: float = 1.5e-3, batch_size: int = 8,
           voices: VoicesConfig = VoicesConfig(), fusion: str = "film", adapter_dim: int = 16,
           vocab_size: int = 2) -> MultiSpeakerTTSConfig:
    """HyperSpeech over the FastSpeech2 preset `name` for a `steps`-step run (warm-up min(400, steps / 10),
    binarization from steps / 3)."""
    model = HyperSpeechConfig(preset(name, vocab_size), num_speakers=voices.known, fusion=fusion,
                              adapter_dim=adapter_dim)
    return MultiSpeakerTTSConfig(
        model=model, voices=voices, pipeline=PipelineConfig(batch_size=batch_size, num_epochs=None),
        optimizer=OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(400, steps // 10), total_steps=steps),
        trainer=TrainerConfig(steps=steps, eval_every=200, checkpoint_every=200, patience=None),
        loss=TTSLossConfig(binarization_start=steps // 3))
