"""Checks on a host batch before a model's `model_inputs` uses it (one built in a notebook, by another pipeline or
an external aligner): every key present, shapes that agree with each other, lengths equal to their masks' sums.
A problem raises `FeatureError` with one line naming the key, or the row, and what was expected.

    arrays = batch_arrays(batch, {"mel": "BTM", "frame_mask": "BT", "frame_lengths": "B"}, "ASR", sizes={"M": 80})
    lengths_match_masks(arrays, {"frame_lengths": "frame_mask"}, "ASR")

A layout spells each key's axes with one letter per axis; a letter is one size across the batch (B rows, T frames,
...), fixed where `sizes` gives it.
"""

from __future__ import annotations

import numpy as np

from mmspeech_jax.errors import FeatureError


def batch_arrays(batch: dict, layout: dict[str, str], model: str, sizes: dict[str, int] | None = None,
                 hint: str = "") -> dict[str, np.ndarray]:
    """The keys of `layout` as NumPy arrays, checked: present (else `model batch lacks ...` and `hint`) and each
    of the shape its letters give, every letter one size."""
    missing = [k for k in layout if k not in batch]
    if missing:
        raise FeatureError(f"{model} batch lacks {', '.join(missing)}{hint}")
    arrays = {k: np.asarray(batch[k]) for k in layout}
    bound = dict(sizes or {})
    for key, axes in layout.items():
        shape = arrays[key].shape
        ok = len(shape) == len(axes) and all(bound.setdefault(a, s) == s for a, s in zip(axes, shape))
        if not ok:
            expected = ", ".join(f"{a}={bound[a]}" if a in bound else a for a in axes)
            raise FeatureError(f"{model} batch {key!r} has shape {shape}, expected ({expected})")
    return arrays


def lengths_match_masks(arrays: dict[str, np.ndarray], pairs: dict[str, str], model: str) -> None:
    """Each lengths array (B,) equals its mask's (B, L) per-row sum; else the first row that differs is named."""
    for lengths, mask in pairs.items():
        wrong = np.flatnonzero(arrays[lengths] != arrays[mask].sum(axis=1))
        if wrong.size:
            r = int(wrong[0])
            raise FeatureError(f"{model} batch row {r}: {lengths} {int(arrays[lengths][r])} but {mask} has "
                               f"{int(arrays[mask][r].sum())} valid positions")


def token_shapes(tokens, token_mask, model: str) -> None:
    """tokens and token_mask must both be (B, N), static shapes (works on tracers under jit): else `FeatureError`
    in one line, instead of an `IndexError` deep inside the embedding (a single sentence passed as 1-D ids)."""
    shape, mask_shape = tuple(np.shape(tokens)), tuple(np.shape(token_mask))
    if len(shape) != 2:
        hint = " (one sentence: add a batch axis, tokens[None])" if len(shape) == 1 else ""
        raise FeatureError(f"{model}: tokens must be (B, N) integer ids, got shape {shape}{hint}")
    if mask_shape != shape:
        raise FeatureError(f"{model}: token_mask must have the tokens' shape {shape}, got {mask_shape}")
