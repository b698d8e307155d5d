"""The shared optimizer: config checks, the learning-rate schedules against their formulas, and one AdamW step
(clipping, decoupled weight decay, decay mask) against a float64 NumPy reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer


@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0.0), ("learning_rate", -1e-3), ("learning_rate", float("nan")), ("learning_rate", float("inf")),
    ("eps", 0.0), ("clip_norm", 0.0), ("clip_norm", float("nan")), ("weight_decay", -1e-4),
    ("b1", 1.0), ("b2", -0.1), ("b2", float("nan")), ("warmup_steps", -1), ("total_steps", -5),
    ("total_steps", 2.5), ("learning_rate", "1e-3"),
    ("schedule", "linear"),
])
def test_bad_fields_raise_one_line_config_errors_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"OptimizerConfig.{field}") as info:
        OptimizerConfig(**{field: value})
    assert "\n" not in str(info.value)


def test_edge_values_that_make_sense_are_accepted():
    OptimizerConfig(total_steps=0, warmup_steps=0)  # nothing to train: a resumed run evaluated again
    OptimizerConfig(weight_decay=0.0, b1=0.0, b2=0.0, learning_rate=np.float32(1e-3), total_steps=np.int64(10))


def _cosine_reference(step, lr, warmup, total):
    """Linear warm-up from lr / warmup to lr over `warmup` steps, then a cosine from lr to 1 % of lr at `total`."""
    warmup_ = max(warmup, 1)
    if step < warmup_:
        first = lr / warmup_
        return first + (lr - first) * step / warmup_
    span = max(total, warmup_ + 1) - warmup_
    t = min(step - warmup_, span)
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / span)))


@pytest.mark.parametrize("warmup, total", [(10, 100), (0, 50), (40, 40), (5, 0), (0, 0), (0, 1)])
def test_cosine_schedule_matches_its_formula(warmup, total):
    config = OptimizerConfig(learning_rate=2e-3, warmup_steps=warmup, total_steps=total)
    schedule = learning_rate_schedule(config)
    for step in [0, 1, 3, warmup - 1, warmup, warmup + 1, total // 2, total - 1, total, total + 30]:
        if step < 0:
            continue
        np.testing.assert_allclose(float(schedule(step)), _cosine_reference(step, 2e-3, warmup, total),
                                   rtol=1e-5, err_msg=f"step {step}")


def test_noam_schedule_matches_its_formula():
    config = OptimizerConfig(learning_rate=1e-3, warmup_steps=16, schedule="noam")
    schedule = learning_rate_schedule(config)
    for step in [0, 1, 7, 15, 16, 17, 100, 5000]:
        expected = 1e-3 * min((step + 1) / 16, math.sqrt(16 / (step + 1)))
        np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5, err_msg=f"step {step}")


def test_one_adamw_step_matches_a_numpy_reference_with_clipping_and_decoupled_decay():
    config = OptimizerConfig(learning_rate=3e-2, warmup_steps=0, total_steps=10, weight_decay=0.1, clip_norm=0.5,
                             b1=0.8, b2=0.95, eps=1e-6)
    rng = np.random.default_rng(0)
    params = {"dense": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))},
              "norm": {"scale": rng.normal(size=(4,))}}
    grads = [jax.tree.map(lambda p: rng.normal(size=p.shape) * 2.0, params) for _ in range(2)]
    tx = make_optimizer(config)
    p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    state = tx.init(p32)
    for g in grads:
        updates, state = tx.update(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), g), state, p32)
        p32 = jax.tree.map(lambda p, u: p + u, p32, updates)

    # float64 reference: clip by global norm, Adam moments with bias correction, then decay on kernels only.
    ref = jax.tree.map(np.array, params)
    m = jax.tree.map(np.zeros_like, params)
    v = jax.tree.map(np.zeros_like, params)
    for t, g in enumerate(grads, start=1):
        norm = math.sqrt(sum(float(np.sum(x ** 2)) for x in jax.tree.leaves(g)))
        scale = min(1.0, config.clip_norm / norm)
        lr = _cosine_reference(t - 1, config.learning_rate, 0, config.total_steps)
        for group, name in [("dense", "kernel"), ("dense", "bias"), ("norm", "scale")]:
            gi = g[group][name] * scale
            m[group][name] = config.b1 * m[group][name] + (1 - config.b1) * gi
            v[group][name] = config.b2 * v[group][name] + (1 - config.b2) * gi ** 2
            m_hat = m[group][name] / (1 - config.b1 ** t)
            v_hat = v[group][name] / (1 - config.b2 ** t)
            step = m_hat / (np.sqrt(v_hat) + config.eps)
            if name == "kernel":
                step = step + config.weight_decay * ref[group][name]
            ref[group][name] = ref[group][name] - lr * step
    for group, name in [("dense", "kernel"), ("dense", "bias"), ("norm", "scale")]:
        np.testing.assert_allclose(np.asarray(p32[group][name]), ref[group][name], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{group}/{name}")


def test_one_gradient_accumulation_knob():
    """Accumulation is TrainerConfig.micro_batches only (issue #30): the optimizer config has no second knob."""
    import dataclasses

    from mmspeech_jax.train.trainer import TrainerConfig

    assert not [f.name for f in dataclasses.fields(OptimizerConfig) if "accum" in f.name or "micro" in f.name]
    assert "micro_batches" in {f.name for f in dataclasses.fields(TrainerConfig)}
    with pytest.raises(TypeError):
        OptimizerConfig(accumulation_steps=2)
