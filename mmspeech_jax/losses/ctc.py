"""CTC loss on padded batches (Graves et al., 2006) via `optax.ctc_loss`, with True = valid masks.

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

import jax.numpy as jnp
import optax


def ctc_nll(logits, logit_mask, labels, label_mask, blank_id: int = 0):
    """-log p(labels | logits) per utterance (B,); +inf-like large values when the labels cannot fit."""
    return optax.ctc_loss(logits.astype(jnp.float32), 1.0 - logit_mask.astype(jnp.float32), labels,
                          1.0 - label_mask.astype(jnp.float32), blank_id=blank_id)


def ctc_feasible(logit_mask, labels, label_mask):
    """(B,) bool: frames >= labels + adjacent repeats, i.e. at least one CTC alignment exists."""
    repeats = jnp.sum((labels[:, 1:] == labels[:, :-1]) & label_mask[:, 1:] & label_mask[:, :-1], axis=-1)
    return logit_mask.sum(-1) >= label_mask.sum(-1) + repeats


def ctc_total(logits, logit_mask, labels, label_mask, example_mask=None, *, per_token: bool = True,
              blank_id: int = 0):
    """(sum over valid, feasible utterances of NLL (/ label length when per_token), number of those utterances).

    The count depends on the masks only (`losses/ratios.py`)."""
    nll = ctc_nll(logits, logit_mask, labels, label_mask, blank_id)
    if per_token:
        nll = nll / jnp.maximum(label_mask.sum(-1), 1)
    valid = ctc_feasible(logit_mask, labels, label_mask)
    if example_mask is not None:
        valid = valid & example_mask
    return jnp.sum(jnp.where(valid, nll, 0.0)), valid.sum()


def ctc_loss(logits, logit_mask, labels, label_mask, example_mask=None, *, per_token: bool = True,
             blank_id: int = 0):
    """Scalar: mean over valid, feasible utterances of NLL (/ label length when per_token)."""
    total, count = ctc_total(logits, logit_mask, labels, label_mask, example_mask, per_token=per_token,
                             blank_id=blank_id)
    return total / jnp.maximum(count, 1)
