"""Fusion layers: NumPy float64 references, padding invariance on both inputs, identity at initialisation, the
bottleneck's information path, jit/vmap and bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.layers.fusion import (
    BottleneckFusion,
    BottleneckFusionConfig,
    ConcatFusion,
    CrossAttentionFusion,
    FiLM,
    GatedCrossAttention,
    pooled_conditions,
)

B, T, D, S, C = 2, 9, 16, 6, 5


def inputs(seed=0, pad_t=0, pad_s=0):
    """x (B, T + pad_t, D) with valid lengths (9, 6); sequence condition (B, S + pad_s, C) with lengths (6, 3); vector
    (B, C). Padded positions hold garbage."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T + pad_t, D)).astype(np.float32)
    mask = np.arange(T + pad_t)[None] < np.array([[9], [6]])
    seq = rng.normal(size=(B, S + pad_s, C)).astype(np.float32)
    seq_mask = np.arange(S + pad_s)[None] < np.array([[6], [3]])
    vec = rng.normal(size=(B, C)).astype(np.float32)
    garbage = np.random.default_rng(seed + 100)
    x[~mask] = garbage.normal(size=x[~mask].shape) * 50
    seq[~seq_mask] = garbage.normal(size=seq[~seq_mask].shape) * 50
    return x, mask, seq, seq_mask, vec


def randomize(params, seed=1):
    """Every leaf random (so zero-initialised projections and gates take part in the comparisons)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [0.3 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


MODULES = {
    "concat": lambda: ConcatFusion("concat"),
    "sum": lambda: ConcatFusion("sum"),
    "film": lambda: FiLM(),
    "cross_attention": lambda: CrossAttentionFusion(heads=2),
    "gated_cross_attention": lambda: GatedCrossAttention(heads=2),
}


def run(module, params, x, mask, seq, seq_mask, vec):
    return module.apply({"params": params}, x, mask, [seq, vec], [seq_mask, None])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_padding_of_either_input_changes_nothing(name):
    module = MODULES[name]()
    x, mask, seq, seq_mask, vec = inputs()
    params = randomize(module.init(jax.random.PRNGKey(0), x, mask, [seq, vec], [seq_mask, None])["params"])
    base = np.asarray(run(module, params, x, mask, seq, seq_mask, vec))
    xp, maskp, seqp, seq_maskp, _ = inputs(pad_t=4, pad_s=5)
    xp[:, :T], seqp[:, :S] = np.where(mask[..., None], x, xp[:, :T]), np.where(seq_mask[..., None], seq, seqp[:, :S])
    padded = np.asarray(run(module, params, xp, maskp, seqp, seq_maskp, vec))
    np.testing.assert_allclose(padded[:, :T][mask], base[mask], rtol=1e-5, atol=1e-5)
    assert np.all(padded[~maskp] == 0) and np.all(base[~mask] == 0)
    # and the valid positions do depend on the condition (the test can fail)
    other = np.asarray(run(module, params, x, mask, seq + 1.0, seq_mask, vec))
    assert np.max(np.abs(other - base)[mask]) > 1e-3


def _pooled64(seq, seq_mask, vec):
    m = seq_mask[..., None].astype(np.float64)
    return np.concatenate([(seq * m).sum(1) / m.sum(1), vec], -1)


def _ln64(x, p):
    x = x.astype(np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * p["scale"] + p["bias"]


def _dense64(x, p):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _cross_attention64(q_in, kv, kv_mask, p, heads):
    b, t, d = q_in.shape
    dh = d // heads
    q = _dense64(q_in, p["query"]).reshape(b, t, heads, dh)
    k, v = np.split(_dense64(kv, p["key_value"]).reshape(b, kv.shape[1], 2, heads, dh), 2, axis=2)
    logits = np.einsum("bqhd,bkhd->bhqk", q, k[:, :, 0]) / np.sqrt(dh)
    logits = np.where(kv_mask[:, None, None, :], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return _dense64(np.einsum("bhqk,bkhd->bqhd", w, v[:, :, 0]).reshape(b, t, d), p["out"])


def _tokens64(p, seq, seq_mask, vec):
    kv = np.concatenate([_dense64(seq, p["cond_proj_0"]), _dense64(vec[:, None], p["cond_proj_1"])], 1)
    return kv, np.concatenate([seq_mask, np.ones((B, 1), bool)], 1)


def reference64(name, p, x, mask, seq, seq_mask, vec):
    """Independent float64 NumPy implementations of each module's documented formula."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), p)
    x64, m = x.astype(np.float64), mask[..., None]
    c = _pooled64(seq, seq_mask, vec)
    if name == "concat":
        out = _dense64(np.concatenate([x64, np.repeat(c[:, None], x.shape[1], 1)], -1), p["proj"])
    elif name == "sum":
        out = x64 + _dense64(c, p["cond_proj"])[:, None]
    elif name == "film":
        gamma, beta = np.split(_dense64(c, p["film"])[:, None], 2, -1)
        out = x64 * (1 + gamma) + beta
    elif name == "cross_attention":
        kv, kv_mask = _tokens64(p["condition"], seq, seq_mask, vec)
        out = x64 + _cross_attention64(_ln64(x64, p["norm"]), kv, kv_mask, p["attention"], 2)
    else:
        kv, kv_mask = _tokens64(p["condition"], seq, seq_mask, vec)
        h = _cross_attention64(_ln64(x64, p["attention_norm"]), kv, kv_mask, p["attention"], 2)
        h1 = (x64 + np.tanh(p["attention_gate"]) * h) * m
        f = _dense64(_ln64(h1, p["ffn_norm"]), p["ffn_in"])
        f = 0.5 * f * (1 + np.tanh(np.sqrt(2 / np.pi) * (f + 0.044715 * f ** 3)))  # jax.nn.gelu (tanh form)
        out = h1 + np.tanh(p["ffn_gate"]) * _dense64(f, p["ffn_out"])
    return out * m


@pytest.mark.parametrize("name", sorted(MODULES))
def test_matches_float64_reference(name):
    module = MODULES[name]()
    x, mask, seq, seq_mask, vec = inputs(seed=3)
    params = randomize(module.init(jax.random.PRNGKey(0), x, mask, [seq, vec], [seq_mask, None])["params"], seed=4)
    got = np.asarray(jax.jit(lambda p: run(module, p, x, mask, seq, seq_mask, vec))(params))
    np.testing.assert_allclose(got, reference64(name, params, x, mask, seq, seq_mask, vec), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("name", ["film", "gated_cross_attention"])
def test_identity_at_initialisation(name):
    module = MODULES[name]()
    x, mask, seq, seq_mask, vec = inputs()
    params = module.init(jax.random.PRNGKey(0), x, mask, [seq, vec], [seq_mask, None])["params"]
    np.testing.assert_array_equal(np.asarray(run(module, params, x, mask, seq, seq_mask, vec)), x * mask[..., None])
    # ... and it is not stuck there: the condition receives gradient through the gates / projections
    loss = lambda p: jnp.sum(run(module, p, x, mask, seq, seq_mask, vec) ** 2)
    grads = jax.grad(loss)(params)
    gate = grads["attention_gate"] if name == "gated_cross_attention" else grads["film"]["kernel"]
    assert float(jnp.max(jnp.abs(gate))) > 0


def test_a_row_without_valid_condition_gets_no_attention():
    module = CrossAttentionFusion(heads=2)
    x, mask, seq, _, _ = inputs()
    empty = np.zeros((B, S), bool)
    params = randomize(module.init(jax.random.PRNGKey(0), x, mask, seq, empty)["params"])
    out = module.apply({"params": params}, x, mask, seq, empty)
    out2 = module.apply({"params": params}, x, mask, seq * 7.0, empty)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out2), rtol=1e-6)  # padding content is invisible
    np.testing.assert_allclose(np.asarray(out), x * mask[..., None], rtol=1e-6, atol=1e-6)


def test_pooled_conditions_is_masked_mean():
    _, _, seq, seq_mask, vec = inputs()
    np.testing.assert_allclose(np.asarray(pooled_conditions([seq, vec], [seq_mask, None])), _pooled64(seq, seq_mask, vec),
                               rtol=1e-5, atol=1e-6)


def test_bad_condition_shapes_raise():
    x, mask, seq, seq_mask, _ = inputs()
    module = FiLM()
    with pytest.raises(ValueError, match="conditioning"):
        module.init(jax.random.PRNGKey(0), x, mask, seq[0, 0], None)
    with pytest.raises(ValueError, match="mask"):
        module.init(jax.random.PRNGKey(0), x, mask, seq, seq_mask[:, :2])


def bottleneck(layers):
    module = BottleneckFusion(BottleneckFusionConfig(dim=D, heads=2, bottlenecks=3, layers=layers))
    x, mask, seq, seq_mask, _ = inputs()
    params = module.init(jax.random.PRNGKey(0), x, mask, seq, seq_mask)["params"]
    return module, params, (x, mask, seq, seq_mask)


def test_bottleneck_streams_exchange_only_through_bottleneck_tokens():
    # one layer: the x stream reads only [x; initial bottleneck tokens], so y cannot reach it yet
    module, params, (x, mask, seq, seq_mask) = bottleneck(1)
    a = module.apply({"params": params}, x, mask, seq, seq_mask)[0]
    b = module.apply({"params": params}, x, mask, seq + 1.0, seq_mask)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # two layers: y reaches x through the averaged bottleneck tokens
    module, params, (x, mask, seq, seq_mask) = bottleneck(2)
    a = module.apply({"params": params}, x, mask, seq, seq_mask)[0]
    b = module.apply({"params": params}, x, mask, seq + 1.0, seq_mask)[0]
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4


def test_bottleneck_bfloat16_and_jit():
    module, params, (x, mask, seq, seq_mask) = bottleneck(2)
    ref = module.apply({"params": params}, x, mask, seq, seq_mask)[0]
    low = BottleneckFusion(module.config, dtype=jnp.bfloat16)
    out = jax.jit(lambda p: low.apply({"params": p}, x, mask, seq, seq_mask))(params)[0]
    assert out.dtype == jnp.bfloat16
    assert float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref)) / jnp.max(jnp.abs(ref))) < 0.05


def test_bottleneck_padding_invariance():
    module, params, (x, mask, seq, seq_mask) = bottleneck(2)
    ax, ay = module.apply({"params": params}, x, mask, seq, seq_mask)
    xp, maskp, seqp, seq_maskp, _ = inputs(pad_t=3, pad_s=4)
    xp[:, :T], seqp[:, :S] = np.where(mask[..., None], x, xp[:, :T]), np.where(seq_mask[..., None], seq, seqp[:, :S])
    bx, by = module.apply({"params": params}, xp, maskp, seqp, seq_maskp)
    np.testing.assert_allclose(np.asarray(bx)[:, :T][mask], np.asarray(ax)[mask], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(by)[:, :S][seq_mask], np.asarray(ay)[seq_mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_vmap_and_bfloat16(name):
    module = MODULES[name]()
    x, mask, seq, seq_mask, vec = inputs()
    params = randomize(module.init(jax.random.PRNGKey(0), x, mask, [seq, vec], [seq_mask, None])["params"])
    # vmap over a leading "ensemble" axis of two input sets equals two separate calls
    x2, mask2, seq2, seq_mask2, vec2 = inputs(seed=5)
    stacked = [np.stack(pair) for pair in ((x, x2), (mask, mask2), (seq, seq2), (seq_mask, seq_mask2), (vec, vec2))]
    batched = jax.vmap(lambda *a: run(module, params, *a))(*stacked)
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(run(module, params, x2, mask2, seq2, seq_mask2, vec2)),
                               rtol=1e-5, atol=1e-5)
    low = type(module)(**{**{f: getattr(module, f) for f in module.__dataclass_fields__ if f not in ("parent", "name")},
                          "dtype": jnp.bfloat16})
    out = low.apply({"params": params}, x, mask, [seq, vec], [seq_mask, None])
    assert out.dtype == jnp.bfloat16
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a: a.dtype == jnp.float32, params))
    ref = np.asarray(run(module, params, x, mask, seq, seq_mask, vec))
    err = np.max(np.abs(np.asarray(out, np.float32) - ref)) / np.max(np.abs(ref))
    assert err < 0.05, err
