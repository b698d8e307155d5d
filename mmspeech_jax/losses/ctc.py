"""CTC loss on padded batches (Graves et al., 2006) via `optax.ctc_loss`, with True = valid masks.

logits (B, T, V), logit_mask (B, T), labels (B, L) int, label_mask (B, L) -> per-utterance negative
log-likelihood (B,). Blank is id 0 (the symbol tables' `<pad>`). `ctc_loss` averages over utterances with
`example_mask` (empty batch rows count zero), normalising each utterance's NLL by its label length when
`per_token=True` (so long and short utterances weigh alike). Padding never changes a result: optax only reads
frames/labels its paddings mark valid.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax


def ctc_nll(logits, logit_mask, labels, label_mask, blank_id: int = 0):
    """-log p(labels | logits) per utterance (B,); +inf-like large values when the labels cannot fit."""
    return optax.ctc_loss(logits.astype(jnp.float32), 1.0 - logit_mask.astype(jnp.float32), labels,
                          1.0 - label_mask.astype(jnp.float32), blank_id=blank_id)


def ctc_loss(logits, logit_mask, labels, label_mask, example_mask=None, *, per_token: bool = True,
             blank_id: int = 0):
    """Scalar: mean over valid utterances of NLL (/ label length when per_token)."""
    nll = ctc_nll(logits, logit_mask, labels, label_mask, blank_id)
    if per_token:
        nll = nll / jnp.maximum(label_mask.sum(-1), 1)
    weight = jnp.ones_like(nll) if example_mask is None else example_mask.astype(nll.dtype)
    return jnp.sum(nll * weight) / jnp.maximum(weight.sum(), 1.0)
