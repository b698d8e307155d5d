"""`train/init.py`: the compiled init gives the op-by-op init's parameters and passes Python keyword arguments as
Python values."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.train.init import init_params


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, mask, train: bool):
        if not isinstance(train, bool):  # a traced flag would make every branch below a tracer error
            raise TypeError(f"train must stay a Python bool, got {type(train).__name__}")
        h = nn.Conv(16, (3,), name="conv")(x) * mask[..., None]
        h = nn.Dropout(0.5, deterministic=not train)(h)
        if train:  # a parameter that only exists when called with train=True
            h = h + self.param("train_only", nn.initializers.normal(1.0), (16,))
        return nn.Dense(4, name="out")(nn.LayerNorm()(h))


@pytest.mark.parametrize("train", [False, True])
def test_compiled_init_equals_the_op_by_op_init(train):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 9, 5)), jnp.float32)
    mask = jnp.asarray(np.arange(9)[None] < np.array([[9], [4]]))
    rngs = {"params": jax.random.PRNGKey(3), "dropout": jax.random.PRNGKey(4)}
    eager = Block().init(rngs, x, mask, train=train)["params"]
    compiled = init_params(Block(), rngs, x, mask, train=train)
    assert jax.tree_util.tree_structure(compiled) == jax.tree_util.tree_structure(eager)
    assert ("train_only" in compiled) == train
    for a, b in zip(jax.tree_util.tree_leaves(compiled), jax.tree_util.tree_leaves(eager)):
        assert a.dtype == b.dtype == jnp.float32 and a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    other = init_params(Block(), {**rngs, "params": jax.random.PRNGKey(5)}, x, mask, train=train)
    assert not np.allclose(np.asarray(other["conv"]["kernel"]), np.asarray(compiled["conv"]["kernel"]))
