"""A GAN vocoder as one trainable pytree: params = {"generator": ..., "discriminator": ...}, one loss function and one
optimizer per part, so the shared trainer (`train/trainer.fit`) trains it like every other model: one jitted step,
exact resume, mesh sharding, bf16 compute, micro-batches.

Batch (fixed-length crops, `data/waveform_crops.py`): "audio" (B, S) float32 with S = n * hop, and "context"
(B, S + n_fft) float32, the same samples with n_fft / 2 of true context on each side (reflect-padded at the
utterance's ends, as the feature cache pads). The generator's input is `log_mel_spectrogram(context, center=False)`,
(B, n + 1, M): exactly the feature cache's frames of those samples, so training sees what inference gets from the
TTS. The generator maps T frames to (T - 1) * hop samples (`generate`), here S. A batch with "log_mel"
(B, n + 1, M) (FastSpeech2's teacher-forced frames of the same samples, `data/teacher_forced.py`) feeds those
instead: the fine-tuning on what the TTS outputs.

One step, one gradient of one scalar (`make_vocoder_loss_fn`):
    L = w_mel * mel_l1 + w_stft * (convergence + log_magnitude)                      [generator; always]
      + w_phase * (phase + group_delay + frequency) + w_complex * complex_l1      [iSTFT generator only; always]
      + [step >= adversarial_start] * (w_adv * adv_G(D_sg(G(x))) + w_fm * fm(D_sg)    [generator]
                                       + adv_D(D(y), D(sg(G(x)))))                     [discriminator]
(the bracket is the phase: `make_vocoder_loss_fn(config, adversarial)`, a Python flag, so each phase compiles its
own step — a `lax.cond` on the step ran the adversarial step 5.7x slower on XLA's CPU backend, 12.6 s against
2.2 s) where sg is stop_gradient: the generator's terms see the discriminator's parameters as constants and the
discriminator's term sees the generated audio as a constant, so the gradient of L is the generator's gradient in
its part and the discriminator's in its part — both taken at the same parameters (a simultaneous update; HiFi-GAN's
code updates the discriminator first). Steps before `adversarial_start` (all of them with None) use the warm-up
loss (`phases`), which never runs the discriminator: the warm-up costs the generator only. The parameters and the
optimizer state hold both parts in either phase, so a warm-up run continues into the adversarial phase by resuming. Evaluation (train=False) reports the
reconstruction terms and uses mel_l1 as its loss (the best checkpoint is the best mel L1).
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax

from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig, log_mel_spectrogram, stft
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.overrides import as_tuples
from mmspeech_jax.losses import vocoder as losses
from mmspeech_jax.losses.ratios import ratio
from mmspeech_jax.models.discriminators import DiscriminatorConfig, Discriminators
from mmspeech_jax.models.hifigan import HiFiGANConfig, HiFiGANGenerator, PRESETS as HIFIGAN_PRESETS
from mmspeech_jax.models.istft_vocoder import (ISTFTVocoder, ISTFTVocoderConfig, PRESETS as ISTFT_PRESETS, polar,
                                                synthesis_phase)
from mmspeech_jax.train.optim import OptimizerConfig, make_optimizer

GENERATORS = ("istft", "hifigan")


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
    """The GAN vocoder: generator kind ("istft" or "hifigan") and both generators' configs (the other one unused),
    the discriminators, the mel features it inverts (must be the TTS's), the adversarial loss ("lsgan" or "hinge"),
    the step at which the adversarial terms start (None: never, a reconstruction-only vocoder), the loss weights and
    the STFT resolutions of the multi-resolution loss. `phase_weight` / `complex_weight` > 0 (iSTFT generator only)
    add APNet's anti-wrapping phase losses / real-imaginary L1 on the head's spectrum against the recording's STFT
    (`losses/vocoder.py`). `context_frames` R > 0: training crops carry R frames of the utterance on each side
    (`data/waveform_crops.py`) that the generator sees and the losses do not score, so the scored frames never see
    the convolutions' zero padding, as inside a whole utterance at inference (0: the generator sees the bare crop).
    Checked when built."""
    generator: str = "istft"
    istft: ISTFTVocoderConfig = ISTFTVocoderConfig(**ISTFT_PRESETS["cpu"])
    hifigan: HiFiGANConfig = HiFiGANConfig(**HIFIGAN_PRESETS["v2"])
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    mel: MelConfig = MelConfig()
    adversarial: str = "lsgan"
    adversarial_start: int | None = 0
    mel_weight: float = 45.0
    stft_weight: float = 15.0
    adversarial_weight: float = 1.0
    feature_weight: float = 2.0
    phase_weight: float = 0.0
    complex_weight: float = 0.0
    stft_resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    context_frames: int = 0

    def __post_init__(self):
        config_checks.choice(self, "generator", GENERATORS)
        config_checks.integer(self, "context_frames", 0)
        config_checks.choice(self, "adversarial", losses.ADVERSARIAL)
        config_checks.integer(self, "adversarial_start", 0, none_ok=True)
        for name in ("mel_weight", "stft_weight", "adversarial_weight", "feature_weight", "phase_weight",
                     "complex_weight"):
            config_checks.number(self, name, 0)
        if (self.phase_weight > 0 or self.complex_weight > 0) and self.generator != "istft":
            raise ConfigError(f"VocoderConfig: phase_weight and complex_weight apply to the istft generator's "
                              f"spectrum head; the {self.generator} generator has none (set them to 0)")
        if (self.phase_weight > 0 or self.complex_weight > 0) and self.istft.phase == "gradient":
            raise ConfigError("VocoderConfig: phase_weight and complex_weight train the iSTFT head's phase; with "
                              "phase 'gradient' it predicts none (set them to 0)")
        generator = self.generator_config
        if generator.n_mels != self.mel.n_mels or self.hop_samples != self.mel.hop_samples:
            raise ConfigError(f"VocoderConfig: the {self.generator} generator takes {generator.n_mels} mels at a hop "
                              f"of {self.hop_samples}, the features have {self.mel.n_mels} at {self.mel.hop_samples}")
        if (self.generator == "istft" and self.istft.magnitude_prior == "pinv"
                and self.istft.prior_mel_config != self.mel):
            raise ConfigError(f"VocoderConfig: the iSTFT head's magnitude prior inverts {self.istft.prior_mel_config}, "
                              f"the features are {self.mel} (set model.istft's n_fft, win_samples and mel_* fields "
                              f"to match)")

    @property
    def generator_config(self):
        """The config of the generator in use."""
        return self.istft if self.generator == "istft" else self.hifigan

    @property
    def hop_samples(self) -> int:
        """Samples per frame of the generator."""
        return self.generator_config.hop_samples

    def to_dict(self) -> dict:
        """A JSON-able dict (config.json); `from_dict` reads it back into the same types."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VocoderConfig":
        """Inverse of `to_dict`."""
        nested = {"istft": ISTFTVocoderConfig.from_dict, "hifigan": HiFiGANConfig.from_dict,
                  "discriminator": DiscriminatorConfig.from_dict, "mel": lambda d: MelConfig(**d)}
        fields = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
                fields[f.name] = nested[f.name](value) if f.name in nested else as_tuples(value)
        return cls(**fields)


def make_generator(config: VocoderConfig):
    """The generator module of `config` (`ISTFTVocoder` or `HiFiGANGenerator`)."""
    if config.generator == "istft":
        return ISTFTVocoder(config.istft)
    return HiFiGANGenerator(config.hifigan)


def generate(config: VocoderConfig, generator_params, log_mel):
    """log_mel (B, T, M) float32 (natural log, the feature cache's) -> audio (B, (T - 1) * hop) float32: the zoo's
    frame convention (frame t centred on sample t * hop), the same length Griffin-Lim gives."""
    audio = make_generator(config).apply({"params": generator_params}, log_mel)
    return audio[:, : (log_mel.shape[1] - 1) * config.hop_samples]


def init_vocoder_params(config: VocoderConfig, rng, frames: int = 8) -> dict:
    """{"generator": params, "discriminator": params} for `config`, compiled (`train/init.init_params`)."""
    from mmspeech_jax.train.init import init_params

    g_key, d_key = jax.random.split(rng)
    log_mel = jnp.zeros((1, frames, config.mel.n_mels), jnp.float32)
    audio = jnp.zeros((1, (frames - 1) * config.hop_samples), jnp.float32)
    return {"generator": init_params(make_generator(config), g_key, log_mel),
            "discriminator": init_params(Discriminators(config.discriminator), d_key, audio)}


def input_log_mel(config: VocoderConfig, context):
    """context (B, S + n_fft) float32 -> the generator's input log-mel (B, S / hop + 1, M) (see the module doc)."""
    return log_mel_spectrogram(context, config.mel, center=False)


def make_vocoder_loss_fn(config: VocoderConfig, adversarial: bool = True):
    """config, phase -> loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts) for `train/step.py`; every
    term is a per-row mean summed over rows and divided by the row count ("rows" in parts["counts"]). `adversarial`
    False: the warm-up phase's loss (reconstruction only; the discriminator is not run and gets no gradient)."""
    discriminators = Discriminators(config.discriminator)
    mel_config = config.mel

    def loss_fn(params, batch, rng, train, step, counts=None):
        del rng  # the vocoders use no dropout
        audio = batch["audio"]
        mel_in = batch["log_mel"] if "log_mel" in batch else input_log_mel(config, batch["context"])
        rows, first = audio.shape[0], config.context_frames * config.hop_samples
        chex.assert_shape(mel_in, (rows, audio.shape[1] // config.hop_samples + 1 + 2 * config.context_frames, None))
        mean = lambda per_row, name="rows": ratio(jnp.sum(per_row), rows, name, counts)
        phase_parts = {}
        if config.phase_weight > 0 or config.complex_weight > 0:
            fake, phase_parts = _istft_with_spectrum_losses(config, params["generator"], mel_in, batch["context"])
            phase_parts = {name: mean(value) for name, value in phase_parts.items()}
        else:
            fake = generate(config, params["generator"], mel_in)
        fake = fake[:, first: first + audio.shape[1]]  # the crop's samples (all of them when context_frames is 0)
        mel = mean(losses.mel_l1(log_mel_spectrogram(audio, mel_config), log_mel_spectrogram(fake, mel_config)))
        convergence, log_magnitude = losses.multi_resolution_stft(audio, fake, config.stft_resolutions,
                                                                  mel_config.sample_rate)
        convergence, log_magnitude = mean(convergence), mean(log_magnitude)
        reconstruction = config.mel_weight * mel + config.stft_weight * (convergence + log_magnitude)
        if phase_parts:
            phase_terms = (phase_parts["phase_instantaneous"] + phase_parts["phase_group_delay"]
                           + phase_parts["phase_frequency"])
            reconstruction = (reconstruction + config.complex_weight * phase_parts["complex_l1"]
                              + config.phase_weight * phase_terms)
        parts = {"mel_l1": mel, "stft_convergence": convergence, "stft_log_magnitude": log_magnitude, **phase_parts,
                 "counts": {"rows": jnp.asarray(rows, jnp.float32)}}
        if not train:
            return mel, parts

        if not adversarial:
            zero = jnp.zeros((), jnp.float32)
            return reconstruction, {**parts, "generator_adversarial": zero, "feature_matching": zero,
                                    "discriminator": zero}
        apply = lambda p, x: discriminators.apply({"params": p}, x)
        real_out = apply(params["discriminator"], audio)
        fake_detached = apply(params["discriminator"], jax.lax.stop_gradient(fake))
        fake_out = apply(jax.lax.stop_gradient(params["discriminator"]), fake)
        real_constant = jax.tree_util.tree_map(jax.lax.stop_gradient, real_out)
        g_adv = mean(losses.generator_adversarial_loss(fake_out, config.adversarial))
        fm = mean(losses.feature_matching(real_constant, fake_out))
        d_loss = mean(losses.discriminator_loss(real_out, fake_detached, config.adversarial))
        loss = reconstruction + config.adversarial_weight * g_adv + config.feature_weight * fm + d_loss
        return loss, {**parts, "generator_adversarial": g_adv, "feature_matching": fm, "discriminator": d_loss}

    return loss_fn


def _istft_with_spectrum_losses(config: VocoderConfig, generator_params, log_mel, context):
    """The iSTFT generator's audio (B, S + 2 R hop), R = `context_frames`, and its spectrum losses
    {"phase_instantaneous", "phase_group_delay", "phase_frequency", "complex_l1"} (each (B,)): the head's spectrum of
    the crop's n + 1 frames (B, n + 1, F; the R context frames on each side left out) against the STFT of the
    recording's frames centred on the same samples (`stft(context, center=False)`, context (B, S + n_fft + 2 R hop))."""
    vocoder = ISTFTVocoder(config.istft)
    magnitude, phase = vocoder.apply({"params": generator_params}, log_mel, method=ISTFTVocoder.magnitude_and_phase)
    synthesis = polar(magnitude, synthesis_phase(config.istft, magnitude, phase))
    audio = vocoder.apply({"params": generator_params}, synthesis, method=ISTFTVocoder.waveform)
    r = config.context_frames
    crop = slice(r, log_mel.shape[1] - r)
    magnitude, phase = magnitude[:, crop], phase[:, crop]
    spectrum = polar(magnitude, phase)  # the head's: what the phase losses compare
    true = stft(context, config.istft.stft_config, center=False)[:, crop]
    chex.assert_equal_shape((phase, true))
    instantaneous, group_delay, frequency = losses.phase_losses(jnp.angle(true), phase)
    return audio[:, : (log_mel.shape[1] - 1) * config.hop_samples], {
        "phase_instantaneous": instantaneous, "phase_group_delay": group_delay, "phase_frequency": frequency,
        "complex_l1": losses.complex_l1(true, spectrum)}


def phases(config: VocoderConfig, steps: int) -> list[tuple[int, bool]]:
    """[(last step, adversarial)] to train `steps` steps: the warm-up up to `adversarial_start` (when it is > 0),
    then the adversarial phase (when `adversarial_start` is not None and < steps)."""
    start = steps if config.adversarial_start is None else min(config.adversarial_start, steps)
    return ([(start, False)] if start > 0 else []) + ([(steps, True)] if start < steps else [])


def make_vocoder_optimizer(generator: OptimizerConfig, discriminator: OptimizerConfig) -> optax.GradientTransformation:
    """One optax transformation over {"generator", "discriminator"}: each part its own AdamW (`train/optim.py`:
    clipping, schedule, decoupled weight decay), its own state, its own learning rate."""
    return optax.multi_transform({"generator": make_optimizer(generator),
                                  "discriminator": make_optimizer(discriminator)},
                                 lambda params: {name: name for name in params})
