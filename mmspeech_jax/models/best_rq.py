"""BEST-RQ self-supervised pretraining (Chiu et al., 2022): predict a frozen random-projection quantizer's codes of
masked speech.

    features (B, T, M) -> stack s frames per encoder frame (s = subsampling factor) (B, T', sM) -> normalize(x P) vs normalize(codebook)
      -> target code per encoder frame (nearest codeword by cosine), frozen and never trained
    features with masked spans replaced by noise -> frontend -> encoder -> ssl_head -> logits (B, T', V)
    loss = cross-entropy on masked, valid encoder frames only

The quantizer (projection P (4M, d) Xavier-initialised, codebook (V, d) standard normal) is a pure function of its
seed, so it is rebuilt identically anywhere and is not part of the trained params. `BestRQ` has the same
`frontend` / `encoder` submodules as `CTCASR`, so a pretrained encoder loads into the CTC model by path
(`mmspeech_jax.train.finetune.merge_pretrained`).

Masking is done per encoder frame: each frame starts a span of `span_frames` with probability `start_probability`
(defaults mask about a third of the frames in spans of ~0.4 s at the 4x-subsampled rate of 46 ms).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.losses.ratios import ratio
from mmspeech_jax.layers.subsampling import subsampled_length
from mmspeech_jax.models.ctc_asr import CTCASRConfig, frontend_and_encoder



@dataclasses.dataclass(frozen=True)
class BestRQConfig:
    """BEST-RQ pretraining: codebook size and dimension, the frozen quantizer's seed, the probability that a frame
    starts a masked span, the span length in frames and the std of the noise masked frames get. Checked when built."""
    codebook_size: int = 1024
    codebook_dim: int = 16
    quantizer_seed: int = 1234
    start_probability: float = 0.05
    span_frames: int = 8
    noise_std: float = 0.1

    def __post_init__(self):
        config_checks.integers(self, codebook_size=2, codebook_dim=1, quantizer_seed=0, span_frames=1)
        config_checks.number(self, "start_probability", 0, 1, low_open=True, high_open=True)
        config_checks.number(self, "noise_std", 0)


def quantizer_arrays(config: BestRQConfig, n_mels: int, stack: int) -> tuple[np.ndarray, np.ndarray]:
    """Frozen (projection (stack * M, d), codebook (V, d) with unit-norm rows), a pure function of the seed."""
    rng = np.random.default_rng(config.quantizer_seed)
    fan_in, fan_out = stack * n_mels, config.codebook_dim
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    projection = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
    codebook = rng.normal(size=(config.codebook_size, config.codebook_dim))
    codebook /= np.linalg.norm(codebook, axis=-1, keepdims=True)
    return projection, codebook.astype(np.float32)


def stack_frames(features, num_out: int, stack: int):
    """(B, T, M) -> (B, num_out, stack * M): encoder frame t gets input frames stack*t .. stack*t + stack - 1
    (zeros past the end)."""
    b, t, m = features.shape
    need = num_out * stack
    features = jnp.pad(features, ((0, 0), (0, max(need - t, 0)), (0, 0)))[:, :need]
    return features.reshape(b, num_out, stack * m)


def quantize(features, num_out: int, projection, codebook):
    """Target codes (B, T') int32: argmax cosine similarity of the projected stacked frames to the codebook."""
    stack = projection.shape[0] // features.shape[-1]
    projected = stack_frames(features, num_out, stack) @ projection
    projected = projected / jnp.maximum(jnp.linalg.norm(projected, axis=-1, keepdims=True), 1e-6)
    return jnp.argmax(projected @ codebook.T, axis=-1).astype(jnp.int32)


def span_mask(rng, encoder_mask, config: BestRQConfig):
    """(B, T') bool: True on masked encoder frames (valid frames only)."""
    starts = jax.random.bernoulli(rng, config.start_probability, encoder_mask.shape) & encoder_mask
    # A frame is masked when a span started within the previous span_frames frames.
    kernel = jnp.ones((config.span_frames,), jnp.float32)
    covered = jax.vmap(lambda s: jnp.convolve(s.astype(jnp.float32), kernel)[: s.shape[0]])(starts)
    return (covered > 0) & encoder_mask


def mask_inputs(features, frame_mask, masked_encoder_frames, rng, noise_std: float, stack: int):
    """Replace the input frames of masked encoder frames (stack input frames each) with N(0, noise_std^2) noise."""
    t = features.shape[1]
    owner = jnp.minimum(jnp.arange(t) // stack, masked_encoder_frames.shape[1] - 1)
    masked = masked_encoder_frames[:, owner] & frame_mask
    noise = jax.random.normal(rng, features.shape, features.dtype) * noise_std
    return jnp.where(masked[..., None], noise, features)


class BestRQ(nn.Module):
    """Frontend + encoder (as `CTCASR`) + a softmax head over the codebook."""

    config: CTCASRConfig
    ssl: BestRQConfig = BestRQConfig()

    def setup(self):
        self.frontend, self.encoder = frontend_and_encoder(self.config)
        self.ssl_head = nn.Dense(self.ssl.codebook_size, dtype=jnp.float32)  # float32 logits for the cross-entropy

    def __call__(self, features, frame_mask, *, train: bool = False):
        """(B, T, M) (already masked), (B, T) -> code logits (B, T', V) float32, encoder mask (B, T')."""
        h, mask = self.frontend(features, frame_mask)
        h = self.encoder(h, mask, train=train)
        return self.ssl_head(h.astype(jnp.float32)), mask


def masked_prediction_parts(logits_fn, features, frame_mask, rng, ssl: BestRQConfig, factor: int, projection,
                            codebook, counts=None):
    """BEST-RQ's loss on one batch, for any model with a speech encoder: targets from the frozen quantizer, masked
    spans replaced by noise, `logits_fn(masked_features, frame_mask, dropout_key) -> (code logits (B, T', V),
    encoder mask (B, T'))`, cross-entropy on masked valid encoder frames. Returns (loss, parts) as
    `make_best_rq_loss_fn` documents; `counts`: see `losses/ratios.py`."""
    t_out = int(subsampled_length(features.shape[1], factor))
    encoder_mask = jnp.arange(t_out)[None] < subsampled_length(frame_mask.sum(-1), factor)[:, None]
    targets = quantize(features, t_out, projection, codebook)
    k_mask, k_noise, k_dropout = jax.random.split(rng, 3)
    masked = span_mask(k_mask, encoder_mask, ssl)
    logits, mask = logits_fn(mask_inputs(features, frame_mask, masked, k_noise, ssl.noise_std, factor), frame_mask,
                             k_dropout)
    weight = (masked & mask).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    local = {"masked_frames": weight.sum(), "encoder_frames": mask.sum()}
    loss = ratio(jnp.sum(nll * weight), local["masked_frames"], "masked_frames", counts)
    accuracy = ratio(jnp.sum((jnp.argmax(logits, -1) == targets) * weight), local["masked_frames"],
                     "masked_frames", counts)
    return loss, {"ssl_ce": loss, "ssl_accuracy": accuracy,
                  "masked_fraction": ratio(weight.sum(), local["encoder_frames"], "encoder_frames", counts),
                  "counts": local}


def make_best_rq_loss_fn(model: BestRQ):
    """`loss_fn(params, batch, rng, train, step, counts=None)` for the shared trainer; batch needs `features`,
    `frame_mask`; `counts`: see `losses/ratios.py`.

    Parts: `ssl_ce` (cross-entropy on masked frames), `ssl_accuracy` (code accuracy there), `masked_fraction`.
    """
    factor = model.config.subsampling
    projection, codebook = (jnp.asarray(a) for a in quantizer_arrays(model.ssl, model.config.n_mels, factor))

    def loss_fn(params, batch, rng, train, step, counts=None):
        logits_fn = lambda x, m, key: model.apply({"params": params}, x, m, train=train, rngs={"dropout": key})
        return masked_prediction_parts(logits_fn, batch["features"], batch["frame_mask"], rng, model.ssl, factor,
                                       projection, codebook, counts)

    return loss_fn
