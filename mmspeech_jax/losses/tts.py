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


def fastspeech2_loss(outputs, aux, batch, step, *, binarization_start: int = 1000, binarization_weight: float = 1.0,
                     aligner_weight: float = 1.0):
    """Total FastSpeech2 + aligner loss and its parts. `step` (int32 scalar) switches the binarization loss on."""
    from mmspeech_jax.losses.aligner import binarization_loss, forward_sum_loss

    token_mask, frame_mask = batch["token_mask"], batch["frame_mask"]
    variance_mask = token_mask if aux["pitch"].shape == token_mask.shape else frame_mask
    parts = {
        "mel_l1": masked_l1(outputs["mel"], batch["mel"], frame_mask),
        "mel_post_l1": masked_l1(outputs["mel_post"], batch["mel"], frame_mask),
        "duration_mse": duration_loss(aux["log_duration"], aux["durations"], token_mask),
        "pitch_mse": masked_mse(aux["pitch"], aux["pitch_target"], variance_mask),
        "energy_mse": masked_mse(aux["energy"], aux["energy_target"], variance_mask),
    }
    total = sum(parts.values())
    if "log_alignment" in aux:
        parts["forward_sum"] = forward_sum_loss(aux["log_alignment"], token_mask, frame_mask)
        on = (step >= binarization_start).astype(jnp.float32)
        parts["binarization"] = binarization_loss(aux["hard_alignment"], aux["log_alignment"])
        total = total + aligner_weight * parts["forward_sum"] + on * binarization_weight * parts["binarization"]
    return total, parts


def make_fastspeech2_loss_fn(model, **loss_kwargs):
    """`loss_fn(params, batch, rng, train, step) -> (loss, parts)` for the generic step functions."""

    def loss_fn(params, batch, rng, train, step):
        outputs, aux = model.apply({"params": params}, batch, train=train, rngs={"dropout": rng})
        return fastspeech2_loss(outputs, aux, batch, step, **loss_kwargs)

    return loss_fn
