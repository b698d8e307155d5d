"""A learned text-to-mel aligner trained jointly with the TTS, so no external aligner is needed.

After "One TTS Alignment to Rule Them All" (Badlani et al., 2022), as used by NeMo FastPitch and ESPnet JETS:
  * text and mel encoders (1-D convs) and a soft alignment: log-softmax over tokens of -||mel_t - text_n||^2 / temperature,
    plus a log beta-binomial prior that favours the diagonal early in training;
  * forward-sum loss (`losses/aligner.py`): CTC of the token sequence 1..N under the per-frame alignment
    distribution (every monotonic path that visits every token, summed);
  * monotonic alignment search (Viterbi, `lax.scan`) for hard durations; a binarization loss pulls the soft
    alignment towards the hard one after warm-up.
The mel encoder sees each utterance's log mel standardized per channel over its valid frames
(`masked_standardize`). On raw log mel (values -11.5..1, the 1e-5 floor in silent bins) the squared distances are
so large that training drove the alignment away from the diagonal: on the embedded corpus the boundary error went
from 59 ms (prior alone) to 237 ms after 300 aligner-only steps, against 14 ms with standardized input
(measured 2026-11-24; `tests/test_aligner.py::test_aligner_learns_boundaries_on_the_corpus` guards it).
Shapes: soft/hard alignments (B, T, N); durations (B, N) summing to each utterance's frame count.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import betaln, gammaln

from mmspeech_jax import config_checks
from mmspeech_jax.layers.winograd import Conv1D
from mmspeech_jax.losses.recurrence import ALGORITHMS as RECURRENCES
from mmspeech_jax.losses.recurrence import NEG, UNROLL, banded_recurrence, resolve, with_identity_frames


@dataclasses.dataclass(frozen=True)
class AlignerConfig:
    """The built-in aligner: projection width, text and mel encoder widths, softmax temperature of the distances,
    the beta-binomial prior's scale, and the recurrence used for MAS and forward-sum. Checked when built."""
    dim: int = 80
    text_hidden: int = 256
    mel_hidden: int = 256
    temperature: float = 0.0005
    prior_scale: float = 1.0  # beta-binomial prior's omega (FastPitch uses 1.0)
    recurrence: str = "auto"  # MAS and forward-sum over frames: "sequential", "blocked" or "auto" (losses/recurrence.py)

    def __post_init__(self):
        config_checks.integers(self, dim=1, text_hidden=1, mel_hidden=1)
        config_checks.positive(self, "temperature", "prior_scale")
        config_checks.choice(self, "recurrence", RECURRENCES)


def beta_binomial_prior(text_length: int, mel_length: int, scale: float = 1.0) -> np.ndarray:
    """(mel_length, text_length) prior P(token n | frame t): BetaBinomial(N-1, a=scale*t, b=scale*(T+1-t))."""
    n = np.arange(text_length, dtype=np.float64)[None, :]
    t = np.arange(1, mel_length + 1, dtype=np.float64)[:, None]
    a, b = scale * t, scale * (mel_length + 1 - t)
    log_pmf = (gammaln(text_length) - gammaln(n + 1) - gammaln(text_length - n)
               + betaln(n + a, text_length - 1 - n + b) - betaln(a, b))
    return np.exp(log_pmf).astype(np.float32)


def batch_log_prior(token_lengths, frame_lengths, max_tokens: int, max_frames: int, scale: float = 1.0) -> np.ndarray:
    """NumPy, per batch (computed in the input pipeline or on host): (B, T, N) log prior, 0 outside the lengths."""
    out = np.zeros((len(token_lengths), max_frames, max_tokens), np.float32)
    for b, (n, t) in enumerate(zip(token_lengths, frame_lengths)):
        if n > 0 and t > 0:
            out[b, :t, :n] = np.log(np.maximum(beta_binomial_prior(int(n), int(t), scale), 1e-8))
    return out


def masked_standardize(x, mask, eps: float = 1e-5):
    """(B, T, C) -> zero mean, unit variance per utterance and channel over the frames where mask (B, T) is True;
    0 at masked frames. Padding does not change the valid frames' values."""
    m = mask[..., None].astype(x.dtype)
    count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1.0)
    mean = jnp.sum(x * m, axis=1, keepdims=True) / count
    var = jnp.sum(((x - mean) * m) ** 2, axis=1, keepdims=True) / count
    return (x - mean) * jax.lax.rsqrt(var + eps) * m


class AlignmentEncoder(nn.Module):
    """Soft alignment. text (B, N, Dt), mel (B, T, M) -> log alignment (B, T, N) (log-softmax over valid tokens)."""

    config: AlignerConfig
    conv_algorithm: str = "auto"  # kernel-3 convolutions (layers/winograd.py)

    @nn.compact
    def __call__(self, text, token_mask, mel, frame_mask, log_prior=None):
        c = self.config
        tm, fm = token_mask[..., None], frame_mask[..., None]
        k = nn.relu(Conv1D(c.text_hidden, 3, algorithm=self.conv_algorithm, name="text_conv_0")(text * tm))
        k = nn.Conv(c.dim, (1,), name="text_conv_1")(k * tm)
        q = nn.relu(Conv1D(c.mel_hidden, 3, algorithm=self.conv_algorithm, name="mel_conv_0")(masked_standardize(mel, frame_mask)))
        q = nn.relu(nn.Conv(c.mel_hidden, (1,), name="mel_conv_1")(q * fm))
        q = nn.Conv(c.dim, (1,), name="mel_conv_2")(q * fm)
        # ||q - k||^2 = ||q||^2 + ||k||^2 - 2 q.k : a matmul instead of a (B, T, N, D) intermediate
        distance = (jnp.sum(q**2, -1)[:, :, None] + jnp.sum(k**2, -1)[:, None, :]
                    - 2.0 * jnp.einsum("btd,bnd->btn", q, k))
        distance = jnp.maximum(distance, 0.0)  # (B, T, N)
        logits = -c.temperature * distance
        logits = jnp.where(token_mask[:, None, :], logits, -1e9)
        log_soft = jax.nn.log_softmax(logits, axis=-1)
        if log_prior is not None:
            log_soft = jax.nn.log_softmax(jnp.where(token_mask[:, None, :], log_soft + log_prior, -1e9), axis=-1)
        return log_soft


def monotonic_alignment_search(log_alignment, token_mask, frame_mask, algorithm: str = "auto"):
    """Viterbi: the monotonic path (every token >= 1 frame, frames in order) of maximum total log-probability.

    log_alignment (B, T, N) -> hard alignment (B, T, N) in {0, 1}. Needs T_b >= N_b for each utterance.
    `algorithm` (`losses/recurrence.py`): "sequential" scans the frames forward, then back-tracks ("unrolled": 8
    frames per loop iteration); "blocked" takes the path as the gradient of the best score, both in about
    2 sqrt(T) steps; "auto": sequential on the CPU.
    The forms add the same log-probabilities in different orders, so of paths whose scores agree to float32 rounding
    they may pick different ones (seen on an untrained tiny model: 2 of 1112 frames, path scores -1219.51975 and
    -1219.51971 in float64, the blocked one the better); each is optimal to float32 precision.
    """
    algorithm = resolve(algorithm)
    if algorithm == "blocked":
        return _viterbi_by_gradient(log_alignment, token_mask, frame_mask)
    unroll = UNROLL if algorithm == "unrolled" else 1
    b, t, n = log_alignment.shape
    neg = -1e9
    values = jnp.where(token_mask[:, None, :] & frame_mask[:, :, None], log_alignment, neg)
    token_index = jnp.arange(n)

    def forward(previous, row):  # previous: best score ending at (t-1, n); row: log-probs of frame t
        stay = previous
        advance = jnp.concatenate([jnp.full((b, 1), neg), previous[:, :-1]], axis=-1)
        came_from_advance = advance > stay
        score = jnp.maximum(stay, advance) + row
        return score, came_from_advance

    first = jnp.where(token_index[None, :] == 0, values[:, 0], neg)
    _, moves = jax.lax.scan(forward, first, jnp.swapaxes(values[:, 1:], 0, 1), unroll=unroll)  # moves (T-1, B, N)
    frame_lengths = frame_mask.sum(-1)
    last_token = token_mask.sum(-1) - 1

    def backward(current, inputs):  # walk from the last valid frame down to frame 1
        step, move = inputs  # move: (B, N) for frame `step`
        active = step < frame_lengths  # frames beyond the length keep the last token (masked out later)
        advanced = jnp.take_along_axis(move, current[:, None], axis=-1)[:, 0]
        previous = jnp.where(active & advanced, current - 1, current)
        return previous, current

    steps = jnp.arange(1, t)[::-1]
    start, path = jax.lax.scan(backward, last_token, (steps, moves[::-1]), unroll=unroll)
    path = jnp.concatenate([start[None], path[::-1]], axis=0)  # (T, B): token of frames 0..T-1
    hard = jax.nn.one_hot(jnp.swapaxes(path, 0, 1), n, dtype=jnp.float32)
    return hard * frame_mask[..., None] * token_mask[:, None, :]


def _viterbi_by_gradient(log_alignment, token_mask, frame_mask):
    """The best path's one-hot (B, T, N) as d(best score)/d(log-probabilities), the score a max-plus recurrence: a
    state (token) is reached from itself or from the token before; frame 0 starts at token 0."""
    values = jnp.where(token_mask[:, None, :] & frame_mask[:, :, None], log_alignment, NEG)
    last_token = jnp.maximum(token_mask.sum(-1) - 1, 0)
    start = jnp.broadcast_to(jnp.where(jnp.arange(values.shape[-1]) == 0, 0.0, NEG), token_mask.shape)

    def best_score(values):
        weights = jnp.stack([values, values.at[:, 0].set(NEG)], axis=-1)  # stay, advance (none into frame 0)
        final = banded_recurrence(with_identity_frames(weights, frame_mask), start, "max", "blocked")
        return jnp.take_along_axis(final, last_token[:, None], axis=-1).sum()

    hard = jax.grad(best_score)(values)
    return hard * frame_mask[..., None] * token_mask[:, None, :]


def durations_from_alignment(hard):
    """(B, T, N) hard alignment -> (B, N) int32 frames per token."""
    return jnp.sum(hard, axis=1).astype(jnp.int32)


def with_alignment_prior(batch: dict, scale: float = 1.0) -> dict:
    """Host side, per batch: adds `log_prior` (B, T, N) for the aligner from the batch's lengths."""
    n, t = batch["tokens"].shape[1], batch["frame_mask"].shape[1]
    return {**batch, "log_prior": batch_log_prior(batch["token_lengths"], batch["frame_lengths"], n, t, scale)}
