"""Aligner losses: forward-sum (CTC over the soft alignment) and binarization.

References: Badlani et al. (2022), "One TTS Alignment to Rule Them All", §3.2-3.3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mmspeech_jax.losses.ctc import ctc_nll


def forward_sum_per_utterance(log_alignment, token_mask, frame_mask, blank_logprob: float = -1.0,
                              algorithm: str = "auto"):
    """CTC over the alignment: the token sequence 1..N must be emitted in order (`algorithm`: `losses/ctc.py`).

    Returns ((B,) loss / N per utterance, zero where it has no tokens; the number of utterances with tokens).
    """
    b, t, n = log_alignment.shape
    logits = jnp.concatenate([jnp.full((b, t, 1), blank_logprob), log_alignment], axis=-1)
    keep = jnp.concatenate([jnp.ones((b, 1), bool), token_mask], axis=-1)[:, None, :]  # blank + valid tokens
    logits = jnp.where(keep, logits, -1e9)
    logits = jax.nn.log_softmax(logits, axis=-1)
    labels = jnp.broadcast_to(jnp.arange(1, n + 1), (b, n))
    loss = ctc_nll(logits, frame_mask, labels, token_mask, blank_id=0, algorithm=algorithm)
    per_token = loss / jnp.maximum(token_mask.sum(-1), 1)
    valid = token_mask.any(-1)
    return jnp.where(valid, per_token, 0.0), valid.sum()


def forward_sum_loss(log_alignment, token_mask, frame_mask, blank_logprob: float = -1.0, algorithm: str = "auto"):
    """Mean over utterances with tokens of the forward-sum loss / N."""
    per_utterance, utterances = forward_sum_per_utterance(log_alignment, token_mask, frame_mask, blank_logprob,
                                                          algorithm)
    return jnp.sum(per_utterance) / jnp.maximum(utterances, 1)


def binarization_total(hard, log_alignment):
    """-sum over the hard path of the log soft alignment."""
    return -jnp.sum(hard * log_alignment)


def binarization_loss(hard, log_alignment):
    """-mean over the hard path of log soft alignment (pulls soft towards hard)."""
    return binarization_total(hard, log_alignment) / jnp.maximum(jnp.sum(hard), 1.0)
