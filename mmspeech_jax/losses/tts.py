"""FastSpeech2 losses, all masked by lengths (padding never changes a loss).

Mel: L1 before and after the postnet, mean over valid (frame, bin) elements. Duration: MSE between the predicted
log-duration and log(d + 1). Pitch, energy: MSE over valid positions (tokens or frames). Each is a ratio of a
masked total to a count from the masks (`losses/ratios.py`), so gradient accumulation is exact.
"""

from __future__ import annotations

import jax.numpy as jnp

from mmspeech_jax.losses.ratios import masked_total, ratio


def masked_mean(values, mask):
    """Mean of `values` over positions where `mask` (broadcast over trailing axes of values) is True."""
    total, count = masked_total(values, mask)
    return total / jnp.maximum(count, 1.0)


def masked_l1(prediction, target, mask):
    """(B, T, M), (B, T, M), (B, T) -> scalar."""
    return masked_mean(jnp.abs(prediction - target), mask)


def masked_mse(prediction, target, mask):
    """(B, N), (B, N), (B, N) -> scalar."""
    return masked_mean((prediction - target) ** 2, mask)


def log_duration_target(durations):
    """The duration predictor's target: log(d + 1)."""
    return jnp.log(durations.astype(jnp.float32) + 1.0)


def duration_loss(log_duration, durations, mask):
    """MSE in the log domain: log_duration (B, N) vs log(durations + 1)."""
    return masked_mse(log_duration, log_duration_target(durations), mask)


def fastspeech2_loss(outputs, aux, batch, step, *, binarization_start: int, binarization_weight: float = 1.0,
                     aligner_weight: float = 1.0, counts: dict | None = None, recurrence: str = "auto"):
    """Total FastSpeech2 + aligner loss and its parts. `step` (int32 scalar) switches the binarization loss on from
    `binarization_start` (no default: the experiments use a third of their steps; choose it for your schedule);
    `recurrence`: how the forward-sum runs over frames (`AlignerConfig.recurrence`).

    `counts`: the whole step's counts under gradient accumulation (`losses/ratios.py`); `parts["counts"]` holds
    this batch's own.
    """
    from mmspeech_jax.losses.aligner import binarization_total, forward_sum_per_utterance

    token_mask, frame_mask = batch["token_mask"], batch["frame_mask"]
    variance_mask = token_mask if aux["pitch"].shape == token_mask.shape else frame_mask
    terms = {  # name: ((total, count), count name)
        "mel_l1": (masked_total(jnp.abs(outputs["mel"] - batch["mel"]), frame_mask), "mel_elements"),
        "mel_post_l1": (masked_total(jnp.abs(outputs["mel_post"] - batch["mel"]), frame_mask), "mel_elements"),
        "duration_mse": (masked_total((aux["log_duration"] - log_duration_target(aux["durations"])) ** 2,
                                      token_mask), "tokens"),
        "pitch_mse": (masked_total((aux["pitch"] - aux["pitch_target"]) ** 2, variance_mask), "variance_positions"),
        "energy_mse": (masked_total((aux["energy"] - aux["energy_target"]) ** 2, variance_mask),
                       "variance_positions"),
    }
    if "log_alignment" in aux:
        per_utterance, utterances = forward_sum_per_utterance(aux["log_alignment"], token_mask, frame_mask,
                                                              algorithm=recurrence)
        terms["forward_sum"] = ((jnp.sum(per_utterance), utterances), "aligned_utterances")
        # The hard path covers every valid frame of an utterance with tokens once: its size is known from the masks.
        aligned_frames = jnp.sum(frame_mask & token_mask.any(-1, keepdims=True))
        terms["binarization"] = ((binarization_total(aux["hard_alignment"], aux["log_alignment"]), aligned_frames),
                                 "aligned_frames")
    local = {name: count for (_, count), name in terms.values()}
    parts = {key: ratio(total, count, name, counts) for key, ((total, count), name) in terms.items()}
    total = sum(parts[k] for k in ("mel_l1", "mel_post_l1", "duration_mse", "pitch_mse", "energy_mse"))
    if "log_alignment" in aux:
        on = jnp.asarray(step >= binarization_start, jnp.float32)
        total = total + aligner_weight * parts["forward_sum"] + on * binarization_weight * parts["binarization"]
    return total, {**parts, "counts": local}


def make_fastspeech2_loss_fn(model, *, binarization_start: int, **loss_kwargs):
    """`loss_fn(params, batch, rng, train, step) -> (loss, parts)` for the generic step functions; the forward-sum
    runs as the model's aligner config says (FastSpeech2, or HyperSpeech's backbone). `binarization_start`: the
    step from which the aligner's binarization loss counts (required: the experiments use steps // 3, and a fixed
    default silently mismatched other schedules); `loss_kwargs` go to `fastspeech2_loss`."""
    loss_kwargs["binarization_start"] = binarization_start
    config = getattr(model.config, "backbone", model.config)
    if config.aligner is not None:
        loss_kwargs.setdefault("recurrence", config.aligner.recurrence)

    def loss_fn(params, batch, rng, train, step, counts=None):
        outputs, aux = model.apply({"params": params}, batch, train=train, rngs={"dropout": rng})
        return fastspeech2_loss(outputs, aux, batch, step, counts=counts, **loss_kwargs)

    return loss_fn
