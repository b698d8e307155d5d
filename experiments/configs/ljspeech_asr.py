"""The config tree of `python -m experiments.ljspeech_asr` (CTC speech recognition), its presets and its flags'
defaults; `experiments.ssl_finetune` fine-tunes with the same model and evaluation parts.

    tree = config("base")                         # the default: 3 000 steps of batch 16 at 2e-3, +-12 dB, noise
    tree = config("tiny", encoder="transformer", steps=50)
    python -m experiments.ljspeech_asr --set optimizer.warmup_steps=100 --set model.layers=4
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import DataConfig, check_tree
from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.gain_augment import GainAugmentConfig
from mmspeech_jax.audio.noise_augment import NoiseAugmentConfig
from mmspeech_jax.audio.spec_augment import SpecAugmentConfig
from mmspeech_jax.data import PipelineConfig
from mmspeech_jax.models.ctc_asr import CTCASRConfig, preset
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig


@dataclasses.dataclass(frozen=True)
class ASREvaluationConfig:
    """After training: greedy and prefix-beam (`beam_width`) CER/WER on validation and test and on the first
    `natural_eval_utterances` natural sentences (None: all; 0: skip); with `lm` (a text LM workdir), shallow fusion
    with its weight and length bonus chosen on `lm_tune_utterances` validation utterances; PNGs of the first
    `num_samples` test utterances."""
    beam_width: int = 8
    lm: str | None = None
    natural_eval_utterances: int | None = None
    lm_tune_utterances: int = 64
    num_samples: int = 3

    def __post_init__(self):
        config_checks.integers(self, beam_width=1, lm_tune_utterances=1, num_samples=0)
        config_checks.integer(self, "natural_eval_utterances", 0, none_ok=True)


@dataclasses.dataclass(frozen=True)
class LJSpeechASRConfig:
    """Everything one run of experiments.ljspeech_asr uses (`mesh` None: one device). Each part checks itself
    when built; `check` runs the checks across parts."""
    model: CTCASRConfig
    data: DataConfig = DataConfig()
    pipeline: PipelineConfig = PipelineConfig(num_epochs=None)
    optimizer: OptimizerConfig = OptimizerConfig(learning_rate=2e-3, warmup_steps=300, total_steps=3000)
    trainer: TrainerConfig = TrainerConfig(steps=3000, eval_every=200, checkpoint_every=200)
    evaluation: ASREvaluationConfig = ASREvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "LJSpeechASRConfig":
        check_tree(self)
        return self


def model_config(name: str = "base", *, encoder: str = "conformer", spec_augment: bool = True,
                 n_mels: int = MelConfig().n_mels, gain_augment_db: float = 0.0, noise_augment: float = 0.0,
                 **fields) -> CTCASRConfig:
    """The CTC model preset `name` with its encoder kind, SpecAugment on or off, gain augmentation within
    +-`gain_augment_db` dB (0: off), noise augmentation of that share of the utterances (`NoiseAugmentConfig`'s
    other defaults; 0: off), and `fields` replaced."""
    gain = GainAugmentConfig(max_db=gain_augment_db) if gain_augment_db > 0 else None
    noise = NoiseAugmentConfig(probability=noise_augment) if noise_augment > 0 else None
    return preset(name, encoder=encoder, n_mels=n_mels, spec_augment=SpecAugmentConfig() if spec_augment else None,
                  gain_augment=gain, noise_augment=noise, **fields)


def schedule(steps: int, learning_rate: float, warmup_cap: int = 400) -> tuple[OptimizerConfig, TrainerConfig]:
    """(optimizer, trainer) of a `steps`-step run: warm-up min(`warmup_cap`, steps / 10), cosine to the last step."""
    return (OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(warmup_cap, steps // 10), total_steps=steps),
            TrainerConfig(steps=steps, eval_every=200, checkpoint_every=200))


def config(name: str = "base", *, encoder: str = "conformer", spec_augment: bool = True, steps: int = 3000,
           learning_rate: float = 2e-3, batch_size: int = 16, gain_augment_db: float = 12.0,
           noise_augment: float = 0.25) -> LJSpeechASRConfig:
    """The preset `name` for a `steps`-step run, training utterances at random levels within +-`gain_augment_db`
    dB (0: off) and the share `noise_augment` of them over stationary noise (0: off). 3 000 steps: 4.5 % CER on the
    natural evaluation set, 4.7 % under white noise 20 dB down, 6.6 % 10 dB down, in ~36 minutes on 2 cores
    (benchmarks/RESULTS.md, "ASR noise augmentation")."""
    optimizer, trainer = schedule(steps, learning_rate)
    return LJSpeechASRConfig(model=model_config(name, encoder=encoder, spec_augment=spec_augment,
                                                gain_augment_db=gain_augment_db, noise_augment=noise_augment),
                             pipeline=PipelineConfig(batch_size=batch_size, num_epochs=None),
                             optimizer=optimizer, trainer=trainer)
