"""HiFi-GAN's generator: log-mel frames -> waveform by transposed-convolution upsampling and multi-receptive-field
fusion (MRF) residual blocks.

log_mel (B, T, M) float32 (natural-log mel, the zoo's features: `audio/features.py`) -> audio (B, T * hop) float32 in
[-1, 1], hop = prod(upsample_rates). Frame t is centred on sample t * hop (the zoo's `center=True` STFT), so of the
T * hop samples the first (T - 1) * hop cover the utterance (`vocoder.waveform_length`); no mask: every frame given
is vocoded (pad frames with the log floor and cut the output).

Reference: Kong, Kim & Bae (2020), "HiFi-GAN: Generative Adversarial Networks for Efficient and High Fidelity Speech
Synthesis", §2.1 and Appendix A (V1 / V2 / V3). Differences from the paper's code: no weight normalization (plain
convolutions; AdamW's decoupled decay keeps the kernels bounded), and "SAME" padding of the transposed convolutions
(the same output length T * rate).
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.overrides import as_tuples

LRELU_SLOPE = 0.1


@dataclasses.dataclass(frozen=True)
class HiFiGANConfig:
    """The generator: mel channels, upsampling rates and kernels (their product is the hop), the first stage's
    channels (halved at each stage), the MRF block kind ("1": two convolutions per dilation, "2": one) with its
    kernel sizes and dilations, and the compute dtype ("float32" or "bfloat16"; parameters stay float32). Checked
    when built."""
    n_mels: int = 80
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernels: tuple[int, ...] = (16, 16, 4, 4)
    initial_channels: int = 512
    resblock: str = "1"
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    compute_dtype: str = "float32"

    def __post_init__(self):
        config_checks.integers(self, n_mels=1, initial_channels=1)
        config_checks.choice(self, "resblock", ("1", "2"))
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))
        if len(self.upsample_rates) != len(self.upsample_kernels) or not self.upsample_rates:
            raise ConfigError("HiFiGANConfig: upsample_rates and upsample_kernels need the same, non-zero length")
        if any(k < r or r < 1 for r, k in zip(self.upsample_rates, self.upsample_kernels)):
            raise ConfigError(f"HiFiGANConfig: each upsample kernel must be >= its rate >= 1, got "
                              f"{self.upsample_rates} and {self.upsample_kernels}")
        if len(self.resblock_kernels) != len(self.resblock_dilations):
            raise ConfigError("HiFiGANConfig: one dilation tuple per resblock kernel")
        if self.initial_channels >> len(self.upsample_rates) < 1:
            raise ConfigError(f"HiFiGANConfig: initial_channels {self.initial_channels} halves below 1 channel")

    @property
    def hop_samples(self) -> int:
        """Samples per frame: the product of the upsampling rates."""
        hop = 1
        for rate in self.upsample_rates:
            hop *= rate
        return hop

    @classmethod
    def from_dict(cls, data: dict) -> "HiFiGANConfig":
        """Inverse of `dataclasses.asdict` (config.json: lists back to tuples)."""
        return cls(**{f.name: as_tuples(data[f.name]) for f in dataclasses.fields(cls) if f.name in data})


PRESETS = {
    "v1": dict(),  # 13.9 M parameters in the paper
    "v2": dict(initial_channels=128),  # 0.93 M
    "v3": dict(upsample_rates=(8, 8, 4), upsample_kernels=(16, 16, 8), initial_channels=256, resblock="2",
               resblock_kernels=(3, 5, 7), resblock_dilations=((1, 2), (2, 6), (3, 12))),  # 1.46 M
}


def _conv(features: int, kernel: int, dilation: int = 1, name: str | None = None, dtype=jnp.float32):
    # HiFi-GAN initialises convolution kernels from N(0, 0.01).
    return nn.Conv(features, (kernel,), kernel_dilation=(dilation,), padding="SAME", dtype=dtype,
                   kernel_init=nn.initializers.normal(0.01), name=name)


class MRFBlock(nn.Module):
    """One residual block of the multi-receptive-field fusion. x (B, L, C) -> (B, L, C).

    kind "1": for each dilation d, x += conv_1(lrelu(conv_d(lrelu(x)))); kind "2": x += conv_d(lrelu(x))."""
    channels: int
    kernel: int
    dilations: tuple[int, ...]
    kind: str = "1"
    dtype: str = "float32"

    @nn.compact
    def __call__(self, x):
        for i, d in enumerate(self.dilations):
            h = _conv(self.channels, self.kernel, d, f"conv_{i}", self.dtype)(nn.leaky_relu(x, LRELU_SLOPE))
            if self.kind == "1":
                h = _conv(self.channels, self.kernel, 1, f"conv_{i}_b", self.dtype)(nn.leaky_relu(h, LRELU_SLOPE))
            x = x + h
        return x


class HiFiGANGenerator(nn.Module):
    """log_mel (B, T, n_mels) float32 -> audio (B, T * hop) float32 in (-1, 1). See the module docstring."""
    config: HiFiGANConfig

    @nn.compact
    def __call__(self, log_mel):
        c = self.config
        chex.assert_rank(log_mel, 3)
        chex.assert_axis_dimension(log_mel, 2, c.n_mels)
        dtype = jnp.dtype(c.compute_dtype)
        x = _conv(c.initial_channels, 7, name="conv_pre", dtype=dtype)(log_mel.astype(dtype))
        for i, (rate, kernel) in enumerate(zip(c.upsample_rates, c.upsample_kernels)):
            channels = c.initial_channels >> (i + 1)
            x = nn.ConvTranspose(channels, (kernel,), strides=(rate,), padding="SAME", dtype=dtype,
                                 kernel_init=nn.initializers.normal(0.01), name=f"up_{i}")(
                nn.leaky_relu(x, LRELU_SLOPE))
            x = sum(MRFBlock(channels, k, d, c.resblock, dtype, name=f"mrf_{i}_{j}")(x)
                    for j, (k, d) in enumerate(zip(c.resblock_kernels, c.resblock_dilations))) / len(c.resblock_kernels)
        # The paper's code uses leaky ReLU's default slope (0.01) before the last convolution.
        x = _conv(1, 7, name="conv_post", dtype=dtype)(nn.leaky_relu(x, 0.01))
        audio = jnp.tanh(x[..., 0].astype(jnp.float32))
        chex.assert_shape(audio, (log_mel.shape[0], log_mel.shape[1] * c.hop_samples))
        return audio
