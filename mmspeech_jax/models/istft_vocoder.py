"""An iSTFT vocoder in the style of Vocos: a ConvNeXt backbone at frame rate predicts each frame's STFT magnitude and
phase, and an inverse STFT makes the waveform (no upsampling layers, so it runs at the cost of a frame-rate model).

log_mel (B, T, M) float32 -> complex spectrum (B, T, n_fft // 2 + 1) -> audio (B, (T - 1) * hop) float32.

The spectrum follows the zoo's STFT conventions (`audio/features.py`: periodic Hann window, frame t centred on sample
t * hop), and the inverse is `audio/griffin_lim.istft` (windowed overlap-add divided by the summed squared window),
so a perfect head would reproduce `features.stft(audio)` and the audio exactly. Magnitude = exp(x) clipped at 100,
or with `magnitude_prior` "pinv" exp(x) times the mel's least-squares inverse (FreeV: the head corrects
`griffin_lim.mel_to_linear` of the input, floored at the mel's log floor, instead of starting from nothing);
the phase is a predicted angle p (Vocos: "angle") or the angle of a predicted vector, atan2(y, x) (APNet's parallel
phase estimation: "vector"), used as cos and sin; `PHASES` says how it becomes the STFT phase. With `phase`
"gradient" (the `cpu` preset) the head predicts no phase: the phase is integrated from the predicted magnitude's
gradient (`audio/phase_gradient.py`), which carries no gradient, so only the magnitude is learned.

Reference: Siuzdak (2024), "Vocos: Closing the gap between time-domain and Fourier-based neural vocoders for
high-quality audio synthesis", §3; ConvNeXt blocks: Liu et al. (2022), "A ConvNet for the 2020s".
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.griffin_lim import istft, mel_to_linear
from mmspeech_jax.audio.peak_phase import peak_locked_phase
from mmspeech_jax.audio.phase_gradient import phase_gradient_phase
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.depthwise import DepthwiseConv1D


@dataclasses.dataclass(frozen=True)
class ISTFTVocoderConfig:
    """The iSTFT vocoder: mel channels, backbone width, ConvNeXt MLP width and depth, depthwise kernel, the STFT it
    predicts (n_fft, hop, window; the sample rate only names it), the compute dtype ("float32" or "bfloat16";
    parameters and the inverse STFT stay float32), how the head's phase becomes the STFT phase (`PHASES`) and what
    the head outputs for it (`PHASE_OUTPUTS`), below which frequency the waveform takes its phase from the
    magnitude's spectral peaks instead of the head (`peak_phase_hz`, 0 = nowhere: `synthesis_phase`), and whether
    the magnitude is relative to the mel's pseudo-inverse (`magnitude_prior` "pinv", with the input mel's band edges
    and log floor in `mel_fmin_hz`, `mel_fmax_hz`, `mel_log_floor`: `prior_mel_config`; "none": absolute); configs
    written before these choices existed read "absolute", "angle", 0 and "none". Checked when built."""
    n_mels: int = 80
    dim: int = 512
    intermediate: int = 1536
    layers: int = 8
    kernel: int = 7
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_samples: int = 256
    win_samples: int = 1024
    compute_dtype: str = "float32"
    phase: str = "absolute"
    phase_output: str = "angle"
    peak_phase_hz: float = 0.0
    magnitude_prior: str = "none"
    mel_fmin_hz: float = 0.0
    mel_fmax_hz: float = 8000.0
    mel_log_floor: float = 1e-5

    def __post_init__(self):
        config_checks.integers(self, n_mels=1, dim=1, intermediate=1, layers=1, kernel=1, sample_rate=1, n_fft=2,
                               hop_samples=1, win_samples=1)
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))
        config_checks.choice(self, "phase", PHASES)
        config_checks.choice(self, "phase_output", PHASE_OUTPUTS)
        config_checks.number(self, "peak_phase_hz", 0.0, self.sample_rate / 2)
        if self.phase == "gradient" and (self.phase_output != "angle" or self.peak_phase_hz > 0):
            raise ConfigError(f"ISTFTVocoderConfig: phase 'gradient' takes every bin's phase from the magnitude, so "
                              f"phase_output {self.phase_output!r} and peak_phase_hz {self.peak_phase_hz} do not apply "
                              f"(use 'angle' and 0)")
        config_checks.choice(self, "magnitude_prior", MAGNITUDE_PRIORS)
        config_checks.number(self, "mel_fmin_hz", 0.0)
        config_checks.number(self, "mel_fmax_hz", 0.0, low_open=True)
        config_checks.positive(self, "mel_log_floor")
        self.stft_config  # checks n_fft, hop and window together
        if self.magnitude_prior == "pinv":
            self.prior_mel_config  # checks the mel's band edges and floor

    @property
    def stft_config(self) -> MelConfig:
        """The STFT of the head as a `MelConfig` (its mel fields unused)."""
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_samples=self.hop_samples,
                         win_samples=self.win_samples, fmax_hz=self.sample_rate / 2)

    @property
    def prior_mel_config(self) -> MelConfig:
        """The mel features whose pseudo-inverse `magnitude_prior` "pinv" starts from (the head's STFT, `n_mels`
        bands from `mel_fmin_hz` to `mel_fmax_hz`, natural log floored at `mel_log_floor`)."""
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_samples=self.hop_samples,
                         win_samples=self.win_samples, n_mels=self.n_mels, fmin_hz=self.mel_fmin_hz,
                         fmax_hz=self.mel_fmax_hz, log_floor=self.mel_log_floor)

    @classmethod
    def from_dict(cls, data: dict) -> "ISTFTVocoderConfig":
        """Inverse of `dataclasses.asdict` (config.json); unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


# The head's phase output p (B, T, F) -> the STFT phase of frame t:
#   "absolute": p[t] (Vocos);
#   "ramp":     p[t] + centre_frequency_ramp[t] (p: the phase relative to a partial at the bin's centre);
#   "gradient": no p (the head predicts the magnitude only): `audio/phase_gradient.phase_gradient_phase` of the
#               magnitude. The `cpu` preset's: with the pinv prior it beats Griffin-Lim on PESQ and STOI after
#               1 500 steps where "ramp" stays 0.25 PESQ behind after 10 000 (benchmarks/RESULTS.md, 2026-12-06).
# (Summing p over time as well, so that p is each frame's advance beyond the bin centre's, trained worse:
# benchmarks/RESULTS.md, 2026-12-05.)
PHASES = ("absolute", "ramp", "gradient")
# What the head outputs for each bin's angle:
#   "angle":  one number p, the angle itself (Vocos);
#   "vector": two numbers (x, y), the angle atan2(y, x) (APNet's parallel phase estimation, Ai & Ling 2023 §3.2:
#             no wrap to cross). Ahead of "angle" at two 1 500-step seeds and at one 10 000-step run (PESQ 2.71
#             against 2.69), within the seed spread, at 150x real time against 170x: the presets keep "angle"
#             until more seeds decide (docs/vocoders.md; benchmarks/RESULTS.md, 2026-12-06).
PHASE_OUTPUTS = ("angle", "vector")
# What the head's magnitude is relative to: "none" (Vocos: exp of the output) or "pinv" (exp of the output times
# the input mel's least-squares inverse, Lv et al. 2024, "FreeV: free lunch for vocoders through pseudo inversed mel
# filter", §3).
MAGNITUDE_PRIORS = ("none", "pinv")

PRESETS = {
    # ~0.95 M parameters, the default CPU run: the phase from the magnitude's gradient, the magnitude relative to
    # the mel's pseudo-inverse (without the prior, phase "gradient" trained to PESQ 2.03 at 1 500 steps; with it 2.97)
    "cpu": dict(dim=160, intermediate=480, layers=5, phase="gradient", magnitude_prior="pinv"),
    "paper": dict(phase="ramp"),  # Vocos' mel-conditioned model: ~13.5 M
}


def centre_frequency_ramp(frames: int, n_fft: int, hop: int, first: int = 0):
    """(frames, n_fft // 2 + 1) float32, row i for frame t = first + i: 2 pi k hop t / n_fft mod 2 pi, the phase a
    sinusoid at bin k's centre frequency gains from frame 0 to frame t (exact: reduced modulo n_fft in integers,
    with no overflow).

    Why: identical input frames give a frame-rate convolution identical output frames, but a steady partial's STFT
    phase advances by omega * hop every frame. With the ramp added, the head predicts the phase relative to a
    partial at its bin's centre, which is constant for a steady one (the time-invariant STFT phase convention)."""
    shift = (first * hop + np.arange(frames, dtype=np.int64) * hop) % n_fft  # t * hop mod n_fft, a constant
    k = np.arange(n_fft // 2 + 1, dtype=np.int64)
    return jnp.asarray((shift[:, None] * k[None, :]) % n_fft, jnp.float32) * (2.0 * jnp.pi / n_fft)


class ConvNeXtBlock(nn.Module):
    """x (B, T, D) -> (B, T, D): depthwise conv, LayerNorm, pointwise MLP (GELU), layer scale, residual."""
    dim: int
    intermediate: int
    kernel: int
    layer_scale: float
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x):
        h = DepthwiseConv1D(self.kernel, self.dtype, name="depthwise")(x)  # nn.Conv's grouped layout, shifted sums
        h = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(h)
        h = nn.Dense(self.intermediate, dtype=self.dtype, name="pointwise_in")(h)
        h = nn.Dense(self.dim, dtype=self.dtype, name="pointwise_out")(nn.gelu(h))
        gamma = self.param("layer_scale", nn.initializers.constant(self.layer_scale), (self.dim,))
        return x + h * gamma.astype(h.dtype)


class ISTFTVocoder(nn.Module):
    """log_mel (B, T, n_mels) float32 -> audio (B, (T - 1) * hop) float32; `spectrum` gives the complex64 head output
    (B, T, n_fft // 2 + 1). See the module docstring."""
    config: ISTFTVocoderConfig

    @nn.compact
    def magnitude_and_phase(self, log_mel):
        """log_mel (B, T, n_mels) -> (magnitude, phase), each (B, T, n_fft // 2 + 1) float32: the head's STFT
        magnitude (exp of its output, plus the log of the mel's pseudo-inverse with `magnitude_prior` "pinv", clipped
        at 100) and its angle in radians, any unwrapping (`PHASES`; frame 0 of the ramp = log_mel's first frame; what a
        phase loss compares, `losses/vocoder.phase_losses`). With `phase` "gradient" the angle is the magnitude's
        `phase_gradient_phase`, which carries no gradient."""
        c = self.config
        chex.assert_rank(log_mel, 3)
        chex.assert_axis_dimension(log_mel, 2, c.n_mels)
        dtype = jnp.dtype(c.compute_dtype)
        x = nn.Conv(c.dim, (c.kernel,), padding="SAME", dtype=dtype, name="embed")(log_mel.astype(dtype))
        x = nn.LayerNorm(epsilon=1e-6, dtype=dtype, name="embed_norm")(x)
        for i in range(c.layers):
            x = ConvNeXtBlock(c.dim, c.intermediate, c.kernel, 1.0 / c.layers, dtype, name=f"block_{i}")(x)
        x = nn.LayerNorm(epsilon=1e-6, dtype=dtype, name="final_norm")(x)
        bins = c.n_fft // 2 + 1
        outputs = 1 if c.phase == "gradient" else 2 if c.phase_output == "angle" else 3
        out = nn.Dense(outputs * bins, dtype=dtype, name="head")(x).astype(jnp.float32)
        log_magnitude = out[..., :bins]
        if c.magnitude_prior == "pinv":
            prior = mel_to_linear(jnp.exp(log_mel.astype(jnp.float32)), c.prior_mel_config)
            log_magnitude = log_magnitude + jnp.log(jnp.maximum(prior, c.mel_log_floor))
        magnitude = jnp.minimum(jnp.exp(log_magnitude), 1e2)
        if c.phase == "gradient":
            return magnitude, phase_gradient_phase(magnitude, c.n_fft, c.hop_samples, c.win_samples)
        phase = out[..., bins:] if c.phase_output == "angle" else jnp.arctan2(out[..., 2 * bins:],
                                                                              out[..., bins:2 * bins])
        if c.phase == "ramp":
            phase = phase + centre_frequency_ramp(log_mel.shape[1], c.n_fft, c.hop_samples)
        return magnitude, phase

    def spectrum(self, log_mel):
        """log_mel (B, T, n_mels) -> the complex STFT the waveform inverts (B, T, n_fft // 2 + 1) complex64: the
        head's magnitude with `synthesis_phase`."""
        magnitude, phase = self.magnitude_and_phase(log_mel)
        return polar(magnitude, synthesis_phase(self.config, magnitude, phase))

    def waveform(self, spectrum):
        """The head's spectrum (B, T, n_fft // 2 + 1) complex64 -> audio (B, (T - 1) * hop) float32 (the inverse
        STFT)."""
        audio = istft(spectrum, self.config.stft_config)
        chex.assert_shape(audio, (spectrum.shape[0], (spectrum.shape[1] - 1) * self.config.hop_samples))
        return audio

    def __call__(self, log_mel):
        return self.waveform(self.spectrum(log_mel))


def synthesis_phase(config: ISTFTVocoderConfig, magnitude, phase):
    """The head's magnitude and phase (B, T, F) float32 -> the phase the waveform uses (B, T, F) float32: in bins whose
    centre frequency is below `config.peak_phase_hz`, the phase that follows the magnitude's spectral peaks
    (`audio/peak_phase.py`, no gradient; frame 0 = the input's first frame), elsewhere the head's. With
    `peak_phase_hz` 0 it is the head's phase.

    Why: a time-invariant head makes only partials at bin centres coherent (`centre_frequency_ramp`), and the phase
    of the lowest harmonics is where the iSTFT vocoder loses most to Griffin-Lim (benchmarks/vocoder_phase.py)."""
    if config.peak_phase_hz <= 0:
        return phase
    below = np.arange(magnitude.shape[-1]) * (config.sample_rate / config.n_fft) < config.peak_phase_hz
    return jnp.where(below, peak_locked_phase(magnitude, config.n_fft, config.hop_samples), phase)


def polar(magnitude, phase):
    """magnitude, phase (..., F) float32 -> magnitude * exp(i phase) (..., F) complex64 (cos and sin of the angle, as
    Vocos does: no atan2)."""
    return (magnitude * jnp.cos(phase) + 1j * magnitude * jnp.sin(phase)).astype(jnp.complex64)
