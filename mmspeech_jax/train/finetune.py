"""Fine-tuning strategies for a pretrained encoder, all through Optax masks (no manual gradient surgery).

    full            every parameter trains
    freeze_bottom   the frontend and the bottom k encoder blocks are frozen; the rest trains
    adapters        only bottleneck adapters (+ the new CTC head) train
    lora            only LoRA factors on the attention projections (+ the new CTC head) train

`trainable_mask(params, strategy, k)` labels each leaf; `masked_optimizer` wraps an optimizer with
`optax.multi_transform` so frozen leaves get zero updates and no optimizer state. `merge_pretrained` copies a
pretrained tree's leaves into freshly initialised params by path (new leaves such as adapters, LoRA factors and the
CTC head keep their initial values).
"""

from __future__ import annotations

import re

import jax
import numpy as np
import optax

from mmspeech_jax.errors import ConfigError

STRATEGIES = ("full", "freeze_bottom", "adapters", "lora")


def _path_names(path) -> list[str]:
    return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def trainable_mask(params, strategy: str, freeze_layers: int = 0):
    """Pytree of bools like `params`: True where the leaf trains under `strategy`. The pretrained speech encoder is
    the top-level `frontend` and `encoder`; every other top-level part (the CTC head; a joint model's text side and
    heads) is a head: it trains under every strategy. `freeze_bottom` freezes the frontend and encoder blocks
    0 .. freeze_layers - 1."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown fine-tuning strategy {strategy!r}; choose one of {STRATEGIES}")

    def trainable(path, _):
        names = _path_names(path)
        head = names[0] not in ("frontend", "encoder")
        if strategy == "full" or head:
            return True
        if strategy == "freeze_bottom":
            if names[0] == "frontend":
                return False
            block = next((int(m.group(1)) for n in names if (m := re.fullmatch(r"block_(\d+)", n))), None)
            return block is None or block >= freeze_layers
        if strategy == "adapters":
            return "adapter" in names
        return names[-1] in ("lora_a", "lora_b")

    return jax.tree_util.tree_map_with_path(trainable, params)


def masked_optimizer(tx: optax.GradientTransformation, mask) -> optax.GradientTransformation:
    """`tx` on leaves where mask is True, zero updates (and no state) elsewhere."""
    labels = jax.tree_util.tree_map(lambda m: "train" if m else "freeze", mask)
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)


def count_parameters(params, mask=None) -> int:
    """Parameters (elements) in `params`, or only in the leaves where the boolean pytree `mask` is True."""
    leaves = jax.tree_util.tree_leaves(params)
    flags = [True] * len(leaves) if mask is None else jax.tree_util.tree_leaves(mask)
    return int(sum(int(np.prod(leaf.shape)) for leaf, flag in zip(leaves, flags) if flag))


def merge_pretrained(fresh, pretrained, prefixes=("frontend", "encoder")):
    """`fresh` with every leaf under `prefixes` whose path exists in `pretrained` replaced by the pretrained value.
    Raises `ConfigError` when a shared path has a different shape (a pretrained model of another size)."""
    flat = {tuple(_path_names(p)): v for p, v in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
    copied = []

    def take(path, value):
        names = tuple(_path_names(path))
        if names[0] not in prefixes or names not in flat:
            return value
        source = flat[names]
        if tuple(source.shape) != tuple(value.shape):
            raise ConfigError(f"pretrained {'/'.join(names)} has shape {tuple(source.shape)}, the model expects "
                              f"{tuple(value.shape)}")
        copied.append(names)
        return np.asarray(source, dtype=value.dtype)

    merged = jax.tree_util.tree_map_with_path(take, fresh)
    if not copied:
        raise ConfigError("no pretrained parameter matches the model (different architecture?)")
    return merged
