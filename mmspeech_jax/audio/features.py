"""Spectral features in JAX: STFT, magnitude, Slaney log-mel filterbank, frame energy.

All functions are pure, jit-able with the config as a static argument, and batched over any leading axes, so they
run the same on CPU, GPU and TPU. Conventions (those of HiFi-GAN / FastSpeech2 recipes):
  * periodic Hann window of `win_samples`, zero-padded to `n_fft` and centred;
  * `center=True` reflect-pads `n_fft // 2` samples on both sides, so frame t is centred on sample t * hop and a
    signal of S samples has T = 1 + S // hop frames;
  * magnitude (not power) spectrogram; mel = magnitude @ Slaney-normalised filterbank (librosa's htk=False,
    norm="slaney"); log-mel = natural log of max(mel, log_floor);
  * frame energy = L2 norm of the magnitude spectrum of the frame (FastSpeech2's energy).

Shapes: audio (..., S) -> spectrum (..., T, F) with F = n_fft // 2 + 1 -> mel (..., T, M).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError, FeatureError


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Analysis parameters. Defaults are the LJSpeech / FastSpeech2 / HiFi-GAN V1 values."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_samples: int = 256
    win_samples: int = 1024
    n_mels: int = 80
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self):
        config_checks.integers(self, sample_rate=1, n_fft=1, hop_samples=1, win_samples=1, n_mels=1)
        config_checks.number(self, "fmin_hz")
        config_checks.number(self, "fmax_hz")
        config_checks.positive(self, "log_floor")
        if not 0 < self.win_samples <= self.n_fft:
            raise ConfigError(f"MelConfig: need 0 < win_samples <= n_fft, got {self.win_samples} and {self.n_fft}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate / 2:
            raise ConfigError(
                f"MelConfig: need 0 <= fmin_hz < fmax_hz <= sample_rate/2, got {self.fmin_hz}, {self.fmax_hz}"
            )
        if self.log_floor <= 0:
            raise ConfigError(f"MelConfig: log_floor must be positive, got {self.log_floor}")

    @property
    def num_bins(self) -> int:
        """Frequency bins of the one-sided STFT: n_fft // 2 + 1."""
        return self.n_fft // 2 + 1


def num_frames(num_samples: int, hop_samples: int) -> int:
    """Frames of a centred STFT of `num_samples` samples: 1 + S // hop."""
    return 1 + int(num_samples) // int(hop_samples)


def hann_window(config: MelConfig) -> np.ndarray:
    """Periodic Hann window of win_samples, zero-padded to n_fft and centred. (n_fft,) float32."""
    n = np.arange(config.win_samples)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / config.win_samples)
    left = (config.n_fft - config.win_samples) // 2
    padded = np.zeros(config.n_fft)
    padded[left : left + config.win_samples] = window
    return padded.astype(np.float32)


def hz_to_mel_slaney(f_hz):
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz (3 mels / 200 Hz), logarithmic above."""
    f_hz = np.asarray(f_hz, dtype=np.float64)
    min_log_hz, min_log_mel, logstep = 1000.0, 15.0, np.log(6.4) / 27.0
    linear = 3.0 * f_hz / 200.0
    log = min_log_mel + np.log(np.maximum(f_hz, min_log_hz) / min_log_hz) / logstep
    return np.where(f_hz >= min_log_hz, log, linear)


def mel_to_hz_slaney(mels):
    """Slaney-scale mels (any shape, float64) -> Hz: linear below 1 kHz, logarithmic above (librosa's `htk=False`)."""
    mels = np.asarray(mels, dtype=np.float64)
    min_log_hz, min_log_mel, logstep = 1000.0, 15.0, np.log(6.4) / 27.0
    linear = 200.0 * mels / 3.0
    log = min_log_hz * np.exp(logstep * (mels - min_log_mel))
    return np.where(mels >= min_log_mel, log, linear)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_cached(config: MelConfig) -> np.ndarray:
    bin_hz = np.linspace(0.0, config.sample_rate / 2.0, config.num_bins)
    edges_hz = mel_to_hz_slaney(
        np.linspace(hz_to_mel_slaney(config.fmin_hz), hz_to_mel_slaney(config.fmax_hz), config.n_mels + 2)
    )
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (M, F)
    weights *= (2.0 / (upper - lower))  # Slaney area normalisation: each filter integrates to ~1 over Hz
    fb = weights.T.astype(np.float32)  # (F, M)
    fb.setflags(write=False)
    return fb


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, (F, M) float32 (read-only, cached per config)."""
    return _mel_filterbank_cached(config)


def _frame(padded: jax.Array, frame_length: int, hop: int, frames: int) -> jax.Array:
    """(..., L) -> (..., frames, frame_length) by index gathering (static shapes)."""
    idx = np.arange(frames)[:, None] * hop + np.arange(frame_length)[None, :]
    return padded[..., idx]


def center_pad(audio: jax.Array, n_fft: int) -> jax.Array:
    """Reflect-pads n_fft // 2 samples on both sides of the last axis (zeros if the signal is too short to reflect)."""
    pad = n_fft // 2
    widths = [(0, 0)] * (audio.ndim - 1) + [(pad, pad)]
    mode = "reflect" if audio.shape[-1] > pad else "constant"
    return jnp.pad(audio, widths, mode=mode)


@functools.partial(jax.jit, static_argnames=("config", "center"))
def stft(audio: jax.Array, config: MelConfig, center: bool = True) -> jax.Array:
    """Short-time Fourier transform. (..., S) float -> (..., T, F) complex64.

    With center=False the caller has already padded: T = 1 + (S - n_fft) // hop.
    """
    audio = jnp.asarray(audio, jnp.float32)
    padded = center_pad(audio, config.n_fft) if center else audio
    frames = 1 + (padded.shape[-1] - config.n_fft) // config.hop_samples
    if frames < 1:
        raise ConfigError(f"stft: {padded.shape[-1]} samples are fewer than n_fft={config.n_fft}")
    windowed = _frame(padded, config.n_fft, config.hop_samples, frames) * hann_window(config)
    return jnp.fft.rfft(windowed, n=config.n_fft, axis=-1)


def magnitude(spectrum: jax.Array) -> jax.Array:
    """|X|, (..., T, F) float32."""
    return jnp.abs(spectrum)


@functools.partial(jax.jit, static_argnames=("config", "center"))
def mel_spectrogram(audio: jax.Array, config: MelConfig, center: bool = True) -> jax.Array:
    """Linear-amplitude mel spectrogram. (..., S) -> (..., T, M) float32."""
    mag = magnitude(stft(audio, config, center))
    return jnp.matmul(mag, mel_filterbank(config), precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.jit, static_argnames=("config", "center"))
def log_mel_spectrogram(audio: jax.Array, config: MelConfig, center: bool = True) -> jax.Array:
    """Natural-log mel spectrogram, floored at log(log_floor). (..., S) -> (..., T, M) float32."""
    return jnp.log(jnp.maximum(mel_spectrogram(audio, config, center), config.log_floor))


@functools.partial(jax.jit, static_argnames=("config", "center"))
def frame_energy(audio: jax.Array, config: MelConfig, center: bool = True) -> jax.Array:
    """L2 norm of each frame's magnitude spectrum. (..., S) -> (..., T) float32."""
    return jnp.linalg.norm(magnitude(stft(audio, config, center)), axis=-1)


@functools.partial(jax.jit, static_argnames=("config", "center"))
def log_mel_and_energy(audio: jax.Array, config: MelConfig, center: bool = True) -> tuple[jax.Array, jax.Array]:
    """Both features from one STFT. (..., S) -> ((..., T, M), (..., T))."""
    mag = magnitude(stft(audio, config, center))
    mel = jnp.matmul(mag, mel_filterbank(config), precision=jax.lax.Precision.HIGHEST)
    return jnp.log(jnp.maximum(mel, config.log_floor)), jnp.linalg.norm(mag, axis=-1)


def check_log_mel(mel, n_mels: int, name: str = "log-mel", max_frames: int | None = None) -> np.ndarray:
    """`mel` as a float32 (T, n_mels) array with 1 <= T (<= max_frames) and finite values, or a one-line
    `FeatureError` naming it: the check at the public boundary of the models that take log-mels directly."""
    array = np.asarray(mel)
    if array.ndim != 2 or array.shape[1] != n_mels or array.shape[0] < 1:
        raise FeatureError(f"{name}: expected a log-mel of shape (T, {n_mels}) with T >= 1, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise FeatureError(f"{name}: expected real numbers, got dtype {array.dtype}")
    if max_frames is not None and array.shape[0] > max_frames:
        raise FeatureError(f"{name}: {array.shape[0]} frames, more than the {max_frames} accepted")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise FeatureError(f"{name}: holds NaN or infinite values")
    return array
