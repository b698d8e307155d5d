"""BEST-RQ pieces against NumPy references, and the fine-tuning strategies' masks through a real optimizer step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.best_rq import (BestRQ, BestRQConfig, make_best_rq_loss_fn, mask_inputs, quantize,
                                         quantizer_arrays, span_mask, stack_frames)
from mmspeech_jax.models.ctc_asr import CTCASR, preset
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer, merge_pretrained, trainable_mask


def test_quantizer_is_frozen_and_matches_a_numpy_nearest_codeword():
    config = BestRQConfig(codebook_size=64, codebook_dim=8)
    p1, c1 = quantizer_arrays(config, 10, 2)
    p2, c2 = quantizer_arrays(config, 10, 2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(np.linalg.norm(c1, axis=-1), 1.0, rtol=1e-6)
    x = np.random.default_rng(0).normal(size=(2, 9, 10)).astype(np.float32)
    codes = np.asarray(quantize(jnp.asarray(x), 4, jnp.asarray(p1), jnp.asarray(c1)))
    for b in range(2):
        for t in range(4):
            v = x[b, 2 * t: 2 * t + 2].reshape(-1).astype(np.float64) @ p1
            v /= np.linalg.norm(v)
            # nearest unit codeword in Euclidean distance == highest cosine
            assert codes[b, t] == np.argmin(np.linalg.norm(c1 - v, axis=-1))
    stacked = np.asarray(stack_frames(jnp.asarray(x), 5, 2))
    np.testing.assert_array_equal(stacked[:, 4, 10:], 0)  # past the end: zeros


def test_span_mask_and_input_masking():
    config = BestRQConfig(start_probability=0.1, span_frames=5)
    valid = jnp.asarray(np.arange(200)[None] < np.array([[200], [120]]))
    masked = np.asarray(span_mask(jax.random.key(0), valid, config))
    assert not masked[1, 120:].any()
    expected_fraction = 1 - (1 - 0.1) ** 5
    assert abs(masked[0].mean() - expected_fraction) < 0.15
    features = jnp.ones((2, 400, 3))
    frame_mask = jnp.asarray(np.arange(400)[None] < np.array([[400], [240]]))
    out = np.asarray(mask_inputs(features, frame_mask, jnp.asarray(masked), jax.random.key(1), 0.1, 2))
    changed = (out != 1.0).any(-1)
    np.testing.assert_array_equal(changed, np.repeat(masked, 2, axis=1) & np.asarray(frame_mask))


def test_best_rq_loss_starts_near_log_codebook_and_learns():
    config = preset("tiny", spec_augment=None, dropout=0.0, attention_dropout=0.0)
    ssl = BestRQConfig(codebook_size=32, start_probability=0.2, span_frames=3)
    model = BestRQ(config, ssl)
    x = np.random.default_rng(0).normal(size=(4, 64, 80)).astype(np.float32)
    batch = {"features": x, "frame_mask": np.ones((4, 64), bool)}
    params = model.init(jax.random.PRNGKey(0), x, batch["frame_mask"])["params"]
    loss_fn = make_best_rq_loss_fn(model)
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, key):
        (loss, parts), g = jax.value_and_grad(lambda p: loss_fn(p, batch, key, True, 0), has_aux=True)(params)
        updates, opt = tx.update(g, opt)
        return optax.apply_updates(params, updates), opt, loss

    losses = []
    for i in range(60):
        params, opt, loss = step(params, opt, jax.random.key(i % 4))
        losses.append(float(loss))
    assert abs(losses[0] - np.log(32)) < 1.0
    assert np.mean(losses[-5:]) < 0.7 * losses[0]


@pytest.fixture(scope="module")
def ctc_params():
    x = np.zeros((1, 40, 80), np.float32)
    mask = np.ones((1, 40), bool)
    config = preset("tiny", layers=3, adapter_dim=4, lora_rank=2)
    return CTCASR(config).init(jax.random.PRNGKey(0), x, mask)["params"]


def _names(mask):
    return {jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_flatten_with_path(mask)[0] if v}


def test_strategy_masks(ctc_params):
    full = trainable_mask(ctc_params, "full")
    assert count_parameters(ctc_params, full) == count_parameters(ctc_params)
    frozen = _names(trainable_mask(ctc_params, "freeze_bottom", 2))
    assert not any("frontend" in n or "block_0" in n or "block_1" in n for n in frozen)
    assert any("block_2" in n for n in frozen) and any("ctc_head" in n for n in frozen)
    adapters = _names(trainable_mask(ctc_params, "adapters"))
    assert adapters and all("adapter" in n or "ctc_head" in n for n in adapters)
    lora = _names(trainable_mask(ctc_params, "lora"))
    assert lora and all("lora_" in n or "ctc_head" in n for n in lora)
    with pytest.raises(ConfigError):
        trainable_mask(ctc_params, "prompt_tuning")


@pytest.mark.parametrize("strategy", ["freeze_bottom", "adapters", "lora"])
def test_masked_optimizer_moves_only_trainable_leaves(ctc_params, strategy):
    mask = trainable_mask(ctc_params, strategy, 2)
    tx = masked_optimizer(optax.adamw(1e-2, weight_decay=0.1), mask)
    state = tx.init(ctc_params)
    grads = jax.tree_util.tree_map(jnp.ones_like, ctc_params)
    updates, _ = tx.update(grads, state, ctc_params)
    new = optax.apply_updates(ctc_params, updates)
    for (path, old), new_leaf, m in zip(jax.tree_util.tree_flatten_with_path(ctc_params)[0],
                                        jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(mask)):
        moved = not np.array_equal(np.asarray(old), np.asarray(new_leaf))
        assert moved == bool(m), jax.tree_util.keystr(path)


def test_merge_pretrained_copies_by_path_and_checks_shapes(ctc_params):
    x, mask = np.zeros((1, 40, 80), np.float32), np.ones((1, 40), bool)
    pretrained = BestRQ(preset("tiny", layers=3)).init(jax.random.PRNGKey(7), x, mask)["params"]
    merged = merge_pretrained(ctc_params, pretrained)
    np.testing.assert_array_equal(np.asarray(merged["encoder"]["block_0"]["ffn_1"]["in"]["kernel"]),
                                  np.asarray(pretrained["encoder"]["block_0"]["ffn_1"]["in"]["kernel"]))
    np.testing.assert_array_equal(np.asarray(merged["ctc_head"]["kernel"]), np.asarray(ctc_params["ctc_head"]["kernel"]))
    np.testing.assert_array_equal(np.asarray(merged["encoder"]["block_0"]["adapter"]["up"]["kernel"]),
                                  np.asarray(ctc_params["encoder"]["block_0"]["adapter"]["up"]["kernel"]))
    other = BestRQ(preset("tiny", layers=3, dim=16, heads=2)).init(jax.random.PRNGKey(7), x, mask)["params"]
    with pytest.raises(ConfigError, match="shape"):
        merge_pretrained(ctc_params, other)
