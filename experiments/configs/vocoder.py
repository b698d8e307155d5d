"""The config tree of `python -m experiments.vocoder` (an iSTFT vocoder or HiFi-GAN), its presets and its flags'
defaults.

    tree = config("istft")                        # the ~1.0 M iSTFT vocoder, 10 000 steps, reconstruction only
    tree = config("hifigan", "v1", adversarial_start=0)
    python -m experiments.vocoder --set model.mel_weight=30 --set discriminator_optimizer.learning_rate=1e-4
"""

from __future__ import annotations

import dataclasses

from experiments.configs.common import DataConfig, check_tree
from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.discriminators import DiscriminatorConfig
from mmspeech_jax.models.hifigan import HiFiGANConfig, PRESETS as HIFIGAN_PRESETS
from mmspeech_jax.models.istft_vocoder import ISTFTVocoderConfig, PRESETS as ISTFT_PRESETS
from mmspeech_jax.models.vocoder import VocoderConfig
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig

# The papers' AdamW betas: Vocos 0.8/0.9, HiFi-GAN 0.8/0.99. Learning rates for the reconstruction-only CPU runs
# (the papers' are tuned for millions of GAN steps): the iSTFT vocoder's 2e-3 is 4x Vocos' 5e-4 (at 1 500 steps it
# lifted copy-synthesis PESQ from 1.91 to 2.20; benchmarks/RESULTS.md, 2026-12-05); HiFi-GAN's 1e-3 is 5x its
# paper's 2e-4 (copy-synthesis PESQ 1.12 -> 1.51 and ASR CER 59 % -> 7.3 % with the batch and steps below; 2e-3 did
# as well at the end and worse on the way, 5e-3 diverged; 2026-12-06). With `--adversarial_start`, the papers'
# rates are the safer start (`--learning_rate`).
BETAS = {"istft": dict(b1=0.8, b2=0.9), "hifigan": dict(b1=0.8, b2=0.99)}
LEARNING_RATE = {"istft": 2e-3, "hifigan": 1e-3}
# The iSTFT generator's real/imaginary-part loss weight (APNet's complex spectrum term, `losses/vocoder.complex_l1`)
# for a head that predicts a phase (the "paper" preset's "ramp"): with the ramp it lifted a 1 500-step run at 5e-4
# from PESQ 1.87 to 1.91 (benchmarks/RESULTS.md, 2026-12-05). The "cpu" preset's phase "gradient" predicts none: 0.
COMPLEX_WEIGHT = {"istft": 10.0, "hifigan": 0.0}
# Default steps and crops a batch: what fits ~30 minutes on 2 CPU cores with reconstruction losses (iSTFT ~0.08 s a
# step of 16 crops, HiFi-GAN V2 ~0.54 s a step of 8; benchmarks/RESULTS.md). HiFi-GAN takes twice the steps of half
# the batch: at 2e-3, validation mel L1 0.476 against 0.506 for 1 500 steps of 16 (2026-12-06).
STEPS = {"istft": 10000, "hifigan": 3000}
BATCH_SIZE = {"istft": 16, "hifigan": 8}
DEFAULT_PRESET = {"istft": "cpu", "hifigan": "v2"}


@dataclasses.dataclass(frozen=True)
class CropsConfig:
    """Training batches: `batch_size` random crops of `segment_frames` frames (x the hop in samples), drawn by
    `seed`."""
    batch_size: int = 16
    segment_frames: int = 32
    seed: int = 0

    def __post_init__(self):
        config_checks.integers(self, batch_size=1, segment_frames=1, seed=0)


@dataclasses.dataclass(frozen=True)
class TeacherForcingConfig:
    """With `tts_workdir`: train on that FastSpeech2's teacher-forced mels of the first `tts_utterances` training
    utterances (the audio stays the recordings'); `init_vocoder`: start from that vocoder workdir's parameters."""
    tts_workdir: str | None = None
    tts_utterances: int = 2000
    init_vocoder: str | None = None

    def __post_init__(self):
        config_checks.integers(self, tts_utterances=1)


@dataclasses.dataclass(frozen=True)
class VocoderEvaluationConfig:
    """After training: copy synthesis of `eval_utterances` validation utterances (vocoder and Griffin-Lim); wavs
    and plots of the first `num_samples`."""
    eval_utterances: int = 60
    num_samples: int = 4

    def __post_init__(self):
        config_checks.integers(self, eval_utterances=1, num_samples=0)


@dataclasses.dataclass(frozen=True)
class VocoderExperimentConfig:
    """Everything one run of experiments.vocoder uses: the GAN vocoder `model`, the generator's `optimizer` and
    the discriminator's, one `trainer` for both phases (`mesh` None: one device). `check` runs the checks across
    parts."""
    model: VocoderConfig
    data: DataConfig = DataConfig()
    pipeline: CropsConfig = CropsConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    discriminator_optimizer: OptimizerConfig = OptimizerConfig()
    trainer: TrainerConfig = TrainerConfig()
    teacher_forcing: TeacherForcingConfig = TeacherForcingConfig()
    evaluation: VocoderEvaluationConfig = VocoderEvaluationConfig()
    mesh: MeshConfig | None = None

    def check(self) -> "VocoderExperimentConfig":
        check_tree(self)
        return self


def model_config(generator: str = "istft", preset: str | None = None, *, adversarial_start: int | None = None,
                 adversarial: str = "lsgan", discriminators: tuple[str, ...] = ("mpd", "mrd"),
                 discriminator_scale: float = 0.25) -> VocoderConfig:
    """The `VocoderConfig` of a generator and its preset (default: iSTFT "cpu", HiFi-GAN "v2"), the adversarial
    phase from `adversarial_start` (None: never) with these discriminators at this width multiplier; the iSTFT
    generator adds the complex spectrum loss (COMPLEX_WEIGHT) when its head predicts a phase."""
    preset = preset or DEFAULT_PRESET[generator]
    presets = ISTFT_PRESETS if generator == "istft" else HIFIGAN_PRESETS
    if preset not in presets:
        raise ConfigError(f"--preset {preset!r}: the {generator} presets are {', '.join(presets)}")
    istft, hifigan = (preset if generator == name else DEFAULT_PRESET[name] for name in ("istft", "hifigan"))
    istft = ISTFTVocoderConfig(**ISTFT_PRESETS[istft])
    complex_weight = 0.0 if istft.phase == "gradient" else COMPLEX_WEIGHT[generator]
    return VocoderConfig(generator=generator, istft=istft,
                         hifigan=HiFiGANConfig(**HIFIGAN_PRESETS[hifigan]), adversarial=adversarial,
                         adversarial_start=adversarial_start, complex_weight=complex_weight,
                         discriminator=DiscriminatorConfig(kinds=tuple(discriminators),
                                                           channel_scale=discriminator_scale))


def optimizer_config(generator: str, steps: int, learning_rate: float) -> OptimizerConfig:
    """AdamW with the paper's betas, decay 0.01, warm-up min(500, steps / 20), cosine over the run (each part of
    the GAN gets one)."""
    return OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(500, steps // 20), total_steps=steps,
                           weight_decay=0.01, eps=1e-8, clip_norm=1000.0, **BETAS[generator])


def config(generator: str = "istft", preset: str | None = None, *, steps: int | None = None,
           learning_rate: float | None = None, batch_size: int | None = None, **model) -> VocoderExperimentConfig:
    """The default run of a generator (steps, learning rate and batch size: STEPS, LEARNING_RATE, BATCH_SIZE),
    `model` passed to `model_config`."""
    steps = STEPS[generator] if steps is None else steps
    batch_size = BATCH_SIZE[generator] if batch_size is None else batch_size
    learning_rate = LEARNING_RATE[generator] if learning_rate is None else learning_rate
    every = max(min(1000, steps // 5), 1)
    optimizer = optimizer_config(generator, steps, learning_rate)
    return VocoderExperimentConfig(model=model_config(generator, preset, **model),
                                   pipeline=CropsConfig(batch_size=batch_size), optimizer=optimizer,
                                   discriminator_optimizer=optimizer,
                                   trainer=TrainerConfig(steps=steps, eval_every=every, checkpoint_every=every))
