"""Optax set-up shared by every model: AdamW with decoupled weight decay, decay mask, schedules, clipping.

Weight decay (Loshchilov & Hutter, 2019) applies to weight matrices and conv kernels only: biases, LayerNorm
scales/offsets and embedding tables are exempt (`decay_mask`). Learning rate: linear warm-up then cosine decay
(or Noam's inverse square root). Gradients are clipped by global norm.
"""

from __future__ import annotations

import dataclasses

import jax
import optax

from mmspeech_jax import config_checks


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW: peak learning rate, warm-up and total steps, schedule ("cosine" or "noam"), decoupled weight decay
    (not on biases, norms or embeddings), betas, epsilon and global-norm clipping. Checked when built. Gradient
    accumulation has one knob, `TrainerConfig.micro_batches` (exact over masked counts, train/step.py), not here."""
    learning_rate: float = 1e-3
    warmup_steps: int = 400
    total_steps: int = 10000
    schedule: str = "cosine"  # "cosine" or "noam"
    weight_decay: float = 1e-6
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-9
    clip_norm: float = 1.0

    def __post_init__(self):
        """Each field checked on its own, with a one-line message naming it (NaN and inf included)."""
        config_checks.choice(self, "schedule", ("cosine", "noam"))
        # total_steps 0: nothing is trained (a resumed run evaluated again); the schedule is then the warm-up's.
        config_checks.integers(self, warmup_steps=0, total_steps=0)
        config_checks.positive(self, "learning_rate", "eps", "clip_norm")
        config_checks.number(self, "weight_decay", 0)
        config_checks.fraction(self, "b1", "b2")


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule:
    """The schedule of `config`: step (int) -> learning rate. Cosine: linear warm-up from lr / warmup to lr, then
    cosine decay to 1 % of lr at total_steps; noam: lr * min((step + 1) / warmup, sqrt(warmup / (step + 1)))."""
    warmup = max(config.warmup_steps, 1)
    if config.schedule == "noam":
        return lambda step: config.learning_rate * jax.numpy.minimum(
            (step + 1) / warmup, jax.numpy.sqrt(warmup / (step + 1.0)))
    first = config.learning_rate / warmup  # step 0 already learns (a 0 start wastes a step)
    return optax.warmup_cosine_decay_schedule(first, config.learning_rate, warmup, max(config.total_steps, warmup + 1),
                                              0.01 * config.learning_rate)


def decay_mask(params):
    """True for leaves that get weight decay: 'kernel' leaves (Dense/Conv weights); not biases, norms, embeddings."""
    return jax.tree_util.tree_map_with_path(lambda path, _: getattr(path[-1], "key", None) == "kernel", params)


def schedule_count(opt_state):
    """The number of updates a learning-rate schedule in `opt_state` has seen (optax's `ScaleByScheduleState`; the
    first one found), or None when the optimizer has no schedule. Skipped steps keep it (train/step.py)."""
    is_schedule = lambda node: isinstance(node, optax.ScaleByScheduleState)
    found = [node.count for node in jax.tree_util.tree_leaves(opt_state, is_leaf=is_schedule) if is_schedule(node)]
    return found[0] if found else None


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """The optax transformation of `config`: global-norm clipping, then AdamW with the schedule and the decay mask
    (one update per call: accumulation is the train step's `micro_batches`)."""
    tx = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(learning_rate_schedule(config), config.b1, config.b2, config.eps,
                    weight_decay=config.weight_decay, mask=decay_mask),
    )
    return tx
