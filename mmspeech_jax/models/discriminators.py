"""The GAN vocoders' discriminators: multi-period (MPD), multi-scale (MSD) and multi-resolution spectrogram (MRD).

Each sub-discriminator maps audio (B, S) float32 to (score, features): score (B, K) float32, one logit per output
position, and features, the list of its hidden activations (the feature-matching loss compares them for real and
generated audio). A `Discriminators` module runs every sub-discriminator of the kinds it is given and returns the
list of their outputs. No mask: the vocoders train on fixed-length crops where every sample is real audio.

References: HiFi-GAN (Kong et al., 2020) §2.2-2.3 (MPD: periods 2, 3, 5, 7, 11, 2-D convolutions over the audio
folded by its period; MSD: raw, x2 and x4 average-pooled audio, grouped strided 1-D convolutions, from MelGAN);
UnivNet (Jang et al., 2021) §2.2 and Vocos (Siuzdak, 2024) §3.3 (MRD: 2-D convolutions over log-free STFT magnitudes
at three resolutions). `channel_scale` multiplies every hidden width (1.0 is the papers'; the CPU default is
smaller, since the discriminators cost far more than a small generator). Differences from the papers' code: no
weight or spectral normalization.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig, stft
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.overrides import as_tuples
from mmspeech_jax.models.hifigan import LRELU_SLOPE

KINDS = ("mpd", "msd", "mrd")


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Which discriminators ("mpd", "msd", "mrd"), MPD periods, MSD scales, MRD resolutions as (n_fft, hop, window),
    the hidden-width multiplier and the compute dtype. Checked when built."""
    kinds: tuple[str, ...] = ("mpd", "mrd")
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    scales: int = 3
    resolutions: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
    channel_scale: float = 1.0
    compute_dtype: str = "float32"

    def __post_init__(self):
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ConfigError(f"DiscriminatorConfig.kinds: choose from {', '.join(KINDS)}, got {self.kinds}")
        config_checks.integers(self, scales=1)
        config_checks.positive(self, "channel_scale")
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))
        if any(p < 1 for p in self.periods) or any(len(r) != 3 or min(r) < 1 for r in self.resolutions):
            raise ConfigError("DiscriminatorConfig: periods must be >= 1, resolutions (n_fft, hop, window) >= 1")

    @classmethod
    def from_dict(cls, data: dict) -> "DiscriminatorConfig":
        """Inverse of `dataclasses.asdict` (config.json: lists back to tuples)."""
        return cls(**{f.name: as_tuples(data[f.name]) for f in dataclasses.fields(cls) if f.name in data})


def _width(channels: int, scale: float) -> int:
    return max(1, int(round(channels * scale)))


class PeriodDiscriminator(nn.Module):
    """audio (B, S) -> (score (B, K), features): the audio folded to (B, ceil(S / p), p) (reflect-padded), then 2-D
    convolutions with (5, 1) kernels striding over time only."""
    period: int
    channel_scale: float = 1.0
    dtype: str = "float32"

    @nn.compact
    def __call__(self, audio):
        batch, length = audio.shape
        pad = (-length) % self.period
        if pad:
            audio = jnp.pad(audio, ((0, 0), (0, pad)), mode="reflect")
        x = audio.reshape(batch, -1, self.period, 1).astype(self.dtype)
        features = []
        for i, (channels, stride) in enumerate(((32, 3), (128, 3), (512, 3), (1024, 3), (1024, 1))):
            x = nn.Conv(_width(channels, self.channel_scale), (5, 1), strides=(stride, 1), padding=((2, 2), (0, 0)),
                        dtype=self.dtype, name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, LRELU_SLOPE)
            features.append(x)
        x = nn.Conv(1, (3, 1), padding=((1, 1), (0, 0)), dtype=self.dtype, name="conv_post")(x)
        features.append(x)
        return x.reshape(batch, -1).astype(jnp.float32), features


class ScaleDiscriminator(nn.Module):
    """audio (B, S) -> (score (B, K), features): MelGAN's grouped, strided 1-D convolutions."""
    channel_scale: float = 1.0
    dtype: str = "float32"

    @nn.compact
    def __call__(self, audio):
        x = audio[..., None].astype(self.dtype)
        features = []
        layers = ((128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16), (1024, 41, 4, 16),
                  (1024, 41, 1, 16), (1024, 5, 1, 1))
        for i, (channels, kernel, stride, groups) in enumerate(layers):
            width = _width(channels, self.channel_scale)
            groups = max(1, min(groups, x.shape[-1], width))
            while x.shape[-1] % groups or width % groups:
                groups -= 1
            x = nn.Conv(width, (kernel,), strides=(stride,), padding="SAME", feature_group_count=groups,
                        dtype=self.dtype, name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, LRELU_SLOPE)
            features.append(x)
        x = nn.Conv(1, (3,), padding="SAME", dtype=self.dtype, name="conv_post")(x)
        features.append(x)
        return x[..., 0].astype(jnp.float32), features


class ResolutionDiscriminator(nn.Module):
    """audio (B, S) -> (score (B, K), features): 2-D convolutions over the STFT magnitude (B, T, F) at one
    resolution, striding over frequency."""
    n_fft: int
    hop: int
    window: int
    channel_scale: float = 1.0
    dtype: str = "float32"

    @nn.compact
    def __call__(self, audio):
        config = MelConfig(n_fft=self.n_fft, hop_samples=self.hop, win_samples=self.window)
        x = jnp.abs(stft(audio, config))[..., None].astype(self.dtype)  # (B, T, F, 1)
        width = _width(32, self.channel_scale)
        features = []
        for i, (kernel, stride) in enumerate((((3, 9), (1, 1)), ((3, 9), (1, 2)), ((3, 9), (1, 2)),
                                              ((3, 9), (1, 2)), ((3, 3), (1, 1)))):
            x = nn.Conv(width, kernel, strides=stride, padding="SAME", dtype=self.dtype, name=f"conv_{i}")(x)
            x = nn.leaky_relu(x, LRELU_SLOPE)
            features.append(x)
        x = nn.Conv(1, (3, 3), padding="SAME", dtype=self.dtype, name="conv_post")(x)
        features.append(x)
        return x.reshape(x.shape[0], -1).astype(jnp.float32), features


class Discriminators(nn.Module):
    """audio (B, S) float32 -> [(score (B, K_i) float32, features_i), ...], one entry per sub-discriminator, in the
    order MPD periods, MSD scales, MRD resolutions (those of `config.kinds`)."""
    config: DiscriminatorConfig

    @nn.compact
    def __call__(self, audio):
        c = self.config
        dtype = jnp.dtype(c.compute_dtype)
        outputs = []
        if "mpd" in c.kinds:
            outputs += [PeriodDiscriminator(p, c.channel_scale, dtype, name=f"mpd_{p}")(audio) for p in c.periods]
        if "msd" in c.kinds:
            x = audio
            for s in range(c.scales):
                if s:  # x2 average pooling (kernel 4, stride 2, as MelGAN), once more per scale
                    x = nn.avg_pool(x[..., None], (4,), strides=(2,), padding=((2, 2),))[..., 0]
                outputs.append(ScaleDiscriminator(c.channel_scale, dtype, name=f"msd_{s}")(x))
        if "mrd" in c.kinds:
            outputs += [ResolutionDiscriminator(n, h, w, c.channel_scale, dtype, name=f"mrd_{n}")(audio)
                        for n, h, w in c.resolutions]
        return outputs
