"""FastSpeech2's variance adaptor (Ren et al., 2021, §2.3): duration, pitch and energy predictors, the length
regulator, and pitch/energy embeddings.

Shapes: tokens N, frames T (static: the padded bucket size or `max_frames` at inference). Durations are integer
frames per token. The length regulator gathers token vectors by index from cumulative durations: no Python loops,
no data-dependent shapes, so it is jit-safe and never recompiles for a new utterance.

Pitch and energy are z-scored values (see the pipeline's `pitch` and `energy` keys). By default they are
token-level (averaged over each token's frames, `token_average`); `level="frame"` predicts and embeds them per frame
after length regulation. Embeddings are a 1-D convolution of the scalar contour (as FastPitch), which is smooth in
the value, rather than FastSpeech2's 256 quantisation bins.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.dropout import Dropout
from mmspeech_jax.layers.winograd import ALGORITHMS, Conv1D


def length_regulate(x, durations, max_frames: int):
    """Expands token vectors to frames. x (B, N, D), durations (B, N) int -> ((B, T, D), frame_mask (B, T)).

    Frame t of utterance b takes token i with cum[i-1] <= t < cum[i]; frames past the total are zero and masked.
    Totals larger than `max_frames` are truncated (the mask says so).
    """
    durations = jnp.maximum(durations.astype(jnp.int32), 0)
    ends = jnp.cumsum(durations, axis=-1)  # (B, N)
    frames = jnp.arange(max_frames)
    index = jax.vmap(lambda e: jnp.searchsorted(e, frames, side="right"))(ends)  # (B, T)
    frame_mask = frames[None, :] < ends[:, -1:]
    index = jnp.clip(index, 0, x.shape[1] - 1)
    out = jnp.take_along_axis(x, index[..., None], axis=1)
    return out * frame_mask[..., None].astype(x.dtype), frame_mask


def token_average(values, durations, max_frames: int | None = None):
    """Mean of frame values over each token's frames. values (B, T), durations (B, N) -> (B, N); 0 for 0 frames."""
    durations = jnp.maximum(durations.astype(jnp.int32), 0)
    t = values.shape[1] if max_frames is None else max_frames
    ends = jnp.cumsum(durations, axis=-1)
    starts = ends - durations
    frames = jnp.arange(t)
    member = (frames[None, None, :] >= starts[..., None]) & (frames[None, None, :] < ends[..., None])  # (B, N, T)
    total = jnp.einsum("bnt,bt->bn", member.astype(values.dtype), values)
    return total / jnp.maximum(durations, 1).astype(values.dtype)


def token_average_vectors(values, durations, frame_mask):
    """Mean of frame vectors over each token's valid frames. values (B, T, D), durations (B, N) int, frame_mask
    (B, T) bool -> (B, N, D); 0 for a token with no valid frame (none, or all past the end of `values`)."""
    durations = jnp.maximum(durations.astype(jnp.int32), 0)
    ends = jnp.cumsum(durations, axis=-1)
    starts = ends - durations
    frames = jnp.arange(values.shape[1])
    member = ((frames[None, None, :] >= starts[..., None]) & (frames[None, None, :] < ends[..., None])
              & frame_mask[:, None, :]).astype(values.dtype)  # (B, N, T)
    total = jnp.einsum("bnt,btd->bnd", member, values)
    return total / jnp.maximum(member.sum(-1), 1.0)[..., None]


def frames_per_token(log_duration, token_mask, speed: float = 1.0):
    """The duration predictor's output (B, N) float, log(1 + frames) -> durations (B, N) int32: round((exp - 1) /
    speed), at least 0, and 0 at padding (token_mask False)."""
    predicted = jnp.round(jnp.maximum(jnp.exp(log_duration) - 1.0, 0.0) / speed)
    return (predicted * token_mask).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class VariancePredictorConfig:
    """A duration/pitch/energy predictor: hidden width, kernel size and dropout. Checked when built."""
    hidden: int = 256
    kernel_size: int = 3
    dropout: float = 0.5

    def __post_init__(self):
        config_checks.integers(self, hidden=1, kernel_size=1)
        config_checks.fraction(self, "dropout")


class VariancePredictor(nn.Module):
    """Predicts one scalar per position (log-duration, pitch or energy). x (B, N, D), mask (B, N) -> (B, N)."""

    config: VariancePredictorConfig
    dtype: jnp.dtype = jnp.float32
    conv_algorithm: str = "auto"

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        c = self.config
        m = mask[..., None].astype(x.dtype)
        h = x * m
        for i in range(2):
            h = Conv1D(c.hidden, c.kernel_size, self.dtype, self.conv_algorithm, name=f"conv_{i}")(h * m)
            h = nn.LayerNorm(dtype=self.dtype, name=f"norm_{i}")(nn.relu(h))
            h = Dropout(c.dropout, deterministic=not train)(h)
        return nn.Dense(1, dtype=self.dtype, name="out")(h * m)[..., 0].astype(jnp.float32) * mask


class ScalarEmbedding(nn.Module):
    """A contour (B, N) -> (B, N, D) by a kernel-3 convolution (FastPitch-style pitch/energy embedding)."""

    dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, values, mask):
        h = (values * mask)[..., None].astype(self.dtype)
        return nn.Conv(self.dim, (3,), padding="SAME", dtype=self.dtype, name="conv")(h) * mask[..., None]


@dataclasses.dataclass(frozen=True)
class VarianceAdaptorConfig:
    """The variance adaptor: its predictors' config, the level of pitch and energy ("token": averaged per phoneme,
    or "frame") and the predictors' convolution algorithm. Checked when built."""
    predictor: VariancePredictorConfig = VariancePredictorConfig()
    level: str = "token"  # "token" (phoneme-averaged pitch/energy) or "frame"
    conv_algorithm: str = "auto"  # the predictors' convolutions (layers/winograd.py)

    def __post_init__(self):
        config_checks.choice(self, "level", ("token", "frame"))
        config_checks.choice(self, "conv_algorithm", ALGORITHMS)


@dataclasses.dataclass(frozen=True)
class Controls:
    """Inference controls: speed > 1 speaks faster; pitch_shift in z-units; pitch/energy scale multiply the contour."""

    speed: float = 1.0
    pitch_shift: float = 0.0
    pitch_scale: float = 1.0
    energy_scale: float = 1.0

    def __post_init__(self):
        for name in ("speed", "pitch_shift", "pitch_scale", "energy_scale"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ConfigError(f"control {name} must be a finite number, got {value!r}")
        if self.speed <= 0:
            raise ConfigError(f"control speed must be > 0 (1 = natural pace), got {self.speed!r}")
        for name in ("pitch_scale", "energy_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"control {name} must be >= 0, got {getattr(self, name)!r}")


class VarianceAdaptor(nn.Module):
    """h (B, N, D) -> frames (B, T, D) plus predictions. Targets (teacher forcing) are used when given."""

    config: VarianceAdaptorConfig
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        p = self.config.predictor
        algorithm = self.config.conv_algorithm
        self.duration_predictor = VariancePredictor(p, self.dtype, algorithm)
        self.pitch_predictor = VariancePredictor(p, self.dtype, algorithm)
        self.energy_predictor = VariancePredictor(p, self.dtype, algorithm)

    @nn.compact
    def __call__(self, h, token_mask, max_frames: int, *, train: bool, durations=None, pitch=None, energy=None,
                 controls: Controls = Controls()):
        """durations (B, N) int; pitch/energy (B, N) at token level or (B, T) at frame level (targets)."""
        dim = h.shape[-1]
        log_duration = self.duration_predictor(h, token_mask, train=train)
        if durations is None:
            durations = frames_per_token(log_duration, token_mask, controls.speed)
        if self.config.level == "frame":
            h, mask = length_regulate(h, durations, max_frames)
        else:
            mask = token_mask
        pitch_pred = self.pitch_predictor(h, mask, train=train)
        energy_pred = self.energy_predictor(h, mask, train=train)
        pitch_used = pitch if pitch is not None else pitch_pred * controls.pitch_scale + controls.pitch_shift
        energy_used = energy if energy is not None else energy_pred * controls.energy_scale
        h = h + ScalarEmbedding(dim, self.dtype, name="pitch_embedding")(pitch_used, mask)
        h = h + ScalarEmbedding(dim, self.dtype, name="energy_embedding")(energy_used, mask)
        frames, frame_mask = length_regulate(h, durations, max_frames) if self.config.level == "token" else (h, mask)
        aux = {"log_duration": log_duration, "pitch": pitch_pred, "energy": energy_pred, "durations": durations}
        return frames, frame_mask, aux

    def predict_durations(self, h, token_mask, controls: Controls = Controls()):
        """Inference: h (B, N, D), token_mask (B, N) -> durations (B, N) int32 in frames (`frames_per_token`), as
        `__call__` predicts them when it is given none."""
        return frames_per_token(self.duration_predictor(h, token_mask, train=False), token_mask, controls.speed)
