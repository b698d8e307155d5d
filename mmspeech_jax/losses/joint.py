"""The joint speech–text model's own pretraining terms (`models/joint_speech_text.py`), as (total, count) pairs
(`losses/ratios.py`), so gradient accumulation stays exact.

Masked-token prediction (unpaired text): cross-entropy of the symbol at each masked token, from logits pooled over
that token's frames of the shared encoder; mean over masked, valid tokens.

Modality matching (paired data, after Maestro, Chen et al., 2022): mean squared difference between the shared
encoder's output for a recording and for its text upsampled by the aligner's durations, averaged over the width
D and over the frames valid in both (the joint model passes the recording's side through `stop_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_token_total(logits, targets, masked):
    """logits (B, N, V) float, targets (B, N) int, masked (B, N) bool (True = masked and valid) ->
    (sum of -log p(target) over masked tokens, number of masked tokens)."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weight = masked.astype(jnp.float32)
    return jnp.sum(nll * weight), jnp.sum(weight)


def masked_token_correct(logits, targets, masked):
    """Number of masked tokens whose argmax is the target (an additive count, for the accuracy ratio)."""
    return jnp.sum((jnp.argmax(logits, axis=-1) == targets) & masked)


def matching_total(speech_hidden, text_hidden, mask):
    """speech_hidden, text_hidden (B, T, D), mask (B, T) bool (True where both are valid) -> (sum over valid
    frames of mean_d (speech - text)^2, number of valid frames)."""
    diff = speech_hidden.astype(jnp.float32) - text_hidden.astype(jnp.float32)
    per_frame = jnp.mean(diff**2, axis=-1)
    weight = mask.astype(jnp.float32)
    return jnp.sum(per_frame * weight), jnp.sum(weight)
