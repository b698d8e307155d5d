"""FastSpeech2 losses, all masked by lengths (padding never changes a loss).

Mel: L1 before and after the postnet, mean over valid (frame, bin) elements. Duration: MSE between the predicted
log-duration and log(d + 1). Pitch, energy: MSE over valid positions (tokens or frames).
"""

from __future__ import annotations

import jax.numpy as jnp


def masked_mean(values, mask):
    """Mean of `values` over positions where `mask` (broadcast over trailing axes of values) is True."""
    mask = mask.astype(values.dtype)
    while mask.ndim < values.ndim:
        mask = mask[..., None]
    count = jnp.sum(jnp.broadcast_to(mask, values.shape))
    return jnp.sum(values * mask) / jnp.maximum(count, 1.0)


def masked_l1(prediction, target, mask):
    """(B, T, M), (B, T, M), (B, T) -> scalar."""
    return masked_mean(jnp.abs(prediction - target), mask)


def masked_mse(prediction, target, mask):
    """(B, N), (B, N), (B, N) -> scalar."""
    return masked_mean((prediction - target) ** 2, mask)


def duration_loss(log_duration, durations, mask):
    """MSE in the log domain: log_duration (B, N) vs log(durations + 1)."""
    return masked_mse(log_duration, jnp.log(durations.astype(jnp.float32) + 1.0), mask)
