"""CTC loss on padded batches (Graves et al., 2006), with True = valid masks.

Three ways to the same number (`algorithm`, `losses/recurrence.py`): "sequential" is `optax.ctc_loss` (one scan
step per frame); "unrolled" is CTC's recursion as a banded log-semiring scan, 8 frames per loop iteration; "blocked" runs CTC's forward recursion as a banded log-semiring recurrence in about 2 sqrt(T)
steps; "auto" is sequential on the CPU, blocked on accelerators, where a step per frame costs more than the math.

logits (B, T, V), logit_mask (B, T), labels (B, L) int, label_mask (B, L) -> per-utterance negative
log-likelihood (B,). Blank is id 0 (the symbol tables' `<pad>`). `ctc_loss` averages over utterances with
`example_mask` (empty batch rows count zero), normalising each utterance's NLL by its label length when
`per_token=True` (so long and short utterances weigh alike). Padding never changes a result: optax only reads
frames/labels its paddings mark valid.

An utterance whose labels cannot fit its frames (CTC needs one frame per label plus one blank between repeated
labels) has no valid alignment; its NLL would be a huge constant that swamps the batch. `ctc_feasible` finds
those; `ctc_loss` leaves them out of the mean, and model losses report how many there were (`ctc_infeasible`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmspeech_jax.losses.recurrence import NEG, banded_recurrence, resolve, shift_states, with_identity_frames


def ctc_nll(logits, logit_mask, labels, label_mask, blank_id: int = 0, algorithm: str = "auto"):
    """-log p(labels | logits) per utterance (B,); large values (not inf) when the labels cannot fit."""
    logits = logits.astype(jnp.float32)
    algorithm = resolve(algorithm)
    if algorithm == "sequential":
        return optax.ctc_loss(logits, 1.0 - logit_mask.astype(jnp.float32), labels,
                              1.0 - label_mask.astype(jnp.float32), blank_id=blank_id)
    return ctc_nll_recurrence(logits, logit_mask, labels, label_mask, blank_id, algorithm)


def ctc_nll_recurrence(logits, logit_mask, labels, label_mask, blank_id: int = 0, algorithm: str = "blocked",
                       block: int | None = None):
    """`ctc_nll` through `banded_recurrence`: states s = 0..2L (even: blank, odd: label (s - 1) / 2); a state is
    reached from itself, from s - 1, and from s - 2 when s is a label unlike the one two states back."""
    b, _, _ = logits.shape
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    states = jnp.full((b, 2 * labels.shape[1] + 1), blank_id, labels.dtype).at[:, 1::2].set(labels)
    emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(states[:, None, :], (b, logits.shape[1], states.shape[1])),
                               axis=-1)  # (B, T, S)
    s = jnp.arange(states.shape[1])
    skip = (s % 2 == 1) & (s >= 3) & (states != shift_states(states, 2))
    transitions = jnp.stack([jnp.zeros(states.shape), jnp.zeros(states.shape), jnp.where(skip, 0.0, NEG)], axis=-1)
    weights = with_identity_frames(emit[..., None] + transitions[:, None], logit_mask)
    init = jnp.broadcast_to(jnp.where(s == 0, 0.0, NEG), states.shape)
    final = banded_recurrence(weights, init, "log", algorithm, block)  # (B, S) after the last frame
    n = label_mask.sum(-1)
    at = lambda index: jnp.take_along_axis(final, index[:, None], axis=-1)[:, 0]
    return -jnp.logaddexp(at(2 * n), jnp.where(n > 0, at(jnp.maximum(2 * n - 1, 0)), NEG))


def ctc_feasible(logit_mask, labels, label_mask):
    """(B,) bool: frames >= labels + adjacent repeats, i.e. at least one CTC alignment exists."""
    repeats = jnp.sum((labels[:, 1:] == labels[:, :-1]) & label_mask[:, 1:] & label_mask[:, :-1], axis=-1)
    return logit_mask.sum(-1) >= label_mask.sum(-1) + repeats


def ctc_total(logits, logit_mask, labels, label_mask, example_mask=None, *, per_token: bool = True,
              blank_id: int = 0, algorithm: str = "auto"):
    """(sum over valid, feasible utterances of NLL (/ label length when per_token), number of those utterances).

    The count depends on the masks only (`losses/ratios.py`)."""
    nll = ctc_nll(logits, logit_mask, labels, label_mask, blank_id, algorithm)
    if per_token:
        nll = nll / jnp.maximum(label_mask.sum(-1), 1)
    valid = ctc_feasible(logit_mask, labels, label_mask)
    if example_mask is not None:
        valid = valid & example_mask
    return jnp.sum(jnp.where(valid, nll, 0.0)), valid.sum()


def ctc_loss(logits, logit_mask, labels, label_mask, example_mask=None, *, per_token: bool = True,
             blank_id: int = 0, algorithm: str = "auto"):
    """Scalar: mean over valid, feasible utterances of NLL (/ label length when per_token)."""
    total, count = ctc_total(logits, logit_mask, labels, label_mask, example_mask, per_token=per_token,
                             blank_id=blank_id, algorithm=algorithm)
    return total / jnp.maximum(count, 1)
