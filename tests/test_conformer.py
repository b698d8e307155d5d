"""Conformer pieces: relative-position attention against a direct float64 computation, padding invariance of the
subsampling front and the blocks, zero-initialised adapters/LoRA, SpecAugment."""

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.audio.spec_augment import SpecAugmentConfig, spec_augment
from mmspeech_jax.layers.attention import MultiHeadSelfAttention, relative_shift
from mmspeech_jax.layers.conformer import ConformerBlockConfig, ConformerStack
from mmspeech_jax.layers.positional import sinusoidal_encoding
from mmspeech_jax.layers.subsampling import Conv2dSubsampling, subsampled_length


def test_relative_shift_indexes_offsets():
    one = np.asarray(relative_shift(jnp.ones((2, 1, 1))))  # a single position (a whole batch of 7-10 frames, 4x)
    assert one.shape == (2, 1, 1)
    n = 4
    scores = np.arange(3 * n * (2 * n - 1)).reshape(3, n, 2 * n - 1)
    out = np.asarray(relative_shift(jnp.asarray(scores)))
    for i in range(n):
        for j in range(n):
            np.testing.assert_array_equal(out[:, i, j], scores[:, i, (n - 1) - (i - j)])


def test_relative_attention_matches_direct_formula():
    b, n, d, h = 2, 5, 8, 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, n, d)).astype(np.float32)
    mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    layer = MultiHeadSelfAttention(d, h, relative_positions=True)
    params = layer.init(jax.random.PRNGKey(0), x, mask, train=False)["params"]
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * rng.normal(size=p.shape).astype(np.float32), params)
    got = np.asarray(layer.apply({"params": params}, x, mask, train=False))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    dh = d // h
    qkv = (x @ p["qkv"]["kernel"] + p["qkv"]["bias"]).reshape(b, n, 3, h, dh)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    expected = np.zeros((b, n, d))
    for bi in range(b):
        for i in range(n):
            heads = []
            for hi in range(h):
                logits = np.full(n, -np.inf)
                for j in range(n):
                    if mask[bi, j]:
                        r = sinusoidal_encoding([i - j], d)[0] @ p["pos"]["kernel"]
                        r = r.reshape(h, dh)[hi]
                        logits[j] = ((q[bi, i, hi] + p["pos_bias_u"][hi]) @ k[bi, j, hi]
                                     + (q[bi, i, hi] + p["pos_bias_v"][hi]) @ r) / np.sqrt(dh)
                w = np.exp(logits - logits.max())
                heads.append((w / w.sum()) @ v[bi, :, hi])
            expected[bi, i] = np.concatenate(heads) @ p["out"]["kernel"] + p["out"]["bias"]
    expected *= mask[..., None]
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_subsampling_lengths_and_padding_invariance():
    assert [int(subsampled_length(t)) for t in (6, 7, 8, 11, 100)] == [0, 1, 1, 2, 24]
    layer = Conv2dSubsampling(16, 4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 40, 20)).astype(np.float32)
    params = layer.init(jax.random.PRNGKey(0), x, np.ones((1, 40), bool))
    short, short_mask = layer.apply(params, x, np.ones((1, 40), bool))
    padded = np.concatenate([x, rng.normal(size=(1, 24, 20)).astype(np.float32)], 1)
    long, long_mask = layer.apply(params, padded, np.arange(64)[None] < 40)
    assert int(short_mask.sum()) == int(long_mask.sum()) == int(subsampled_length(40))
    np.testing.assert_allclose(np.asarray(long)[:, : short.shape[1]], np.asarray(short), atol=1e-5)
    assert np.all(np.asarray(long)[:, short.shape[1]:] == 0)


def test_conformer_stack_is_invariant_to_padding():
    config = ConformerBlockConfig(dim=16, heads=2, ffn_dim=32, conv_kernel=5)
    stack = ConformerStack(config, 2)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 9, 16)).astype(np.float32)
    params = stack.init(jax.random.PRNGKey(0), x, np.ones((1, 9), bool), train=False)
    y = np.asarray(stack.apply(params, x, np.ones((1, 9), bool), train=False))
    xp = np.concatenate([x, rng.normal(size=(1, 7, 16)).astype(np.float32)], 1)
    yp = np.asarray(stack.apply(params, xp, np.arange(16)[None] < 9, train=False))
    np.testing.assert_allclose(yp[:, :9], y, atol=1e-5)
    assert np.all(yp[:, 9:] == 0)


def test_fresh_adapters_and_lora_leave_the_function_unchanged():
    x = np.random.default_rng(2).normal(size=(2, 10, 16)).astype(np.float32)
    mask = np.ones((2, 10), bool)
    plain = ConformerStack(ConformerBlockConfig(dim=16, heads=2, ffn_dim=32, conv_kernel=5), 2)
    extra = ConformerStack(ConformerBlockConfig(dim=16, heads=2, ffn_dim=32, conv_kernel=5, adapter_dim=4,
                                                lora_rank=2), 2)
    p_plain = plain.init(jax.random.PRNGKey(0), x, mask, train=False)["params"]
    p_extra = extra.init(jax.random.PRNGKey(1), x, mask, train=False)["params"]
    # The pretrained weights load into the extended model by path; only adapter/LoRA leaves are new.
    flat_plain = dict(jax.tree_util.tree_flatten_with_path(p_plain)[0])
    merged = jax.tree_util.tree_map_with_path(lambda path, v: flat_plain.get(path, v), p_extra)
    new = [jax.tree_util.keystr(k) for k in dict(jax.tree_util.tree_flatten_with_path(p_extra)[0]) if k not in flat_plain]
    assert new and all("adapter" in k or "lora" in k for k in new)
    np.testing.assert_allclose(np.asarray(extra.apply({"params": merged}, x, mask, train=False)),
                               np.asarray(plain.apply({"params": p_plain}, x, mask, train=False)), atol=1e-6)


def test_spec_augment_masks_bands_within_valid_frames_only():
    b, t, m = 4, 100, 40
    x = jnp.ones((b, t, m))
    lengths = np.array([100, 80, 50, 10])
    frame_mask = jnp.asarray(np.arange(t)[None] < lengths[:, None])
    x = x * frame_mask[..., None]
    config = SpecAugmentConfig(freq_masks=2, freq_width=8, time_masks=2, time_width_ratio=0.1)
    y = np.asarray(jax.jit(lambda x, k: spec_augment(x, frame_mask, k, config))(x, jax.random.key(3)))
    masked = (y == 0) & np.asarray(frame_mask)[..., None]
    for i in range(b):
        valid = masked[i, : lengths[i]]
        fully_masked_bins = np.flatnonzero(valid.all(0))
        fully_masked_frames = np.flatnonzero(valid.all(1))
        assert len(fully_masked_bins) <= 2 * 8
        assert len(fully_masked_frames) <= 2 * int(0.1 * lengths[i])
        # Everything masked is explained by a masked bin or a masked frame.
        explained = np.zeros_like(valid)
        explained[:, fully_masked_bins] = True
        explained[fully_masked_frames] = True
        np.testing.assert_array_equal(valid, explained)
    np.testing.assert_array_equal(y[~np.asarray(frame_mask)], 0)
    assert masked.any()
    different = np.asarray(spec_augment(x, frame_mask, jax.random.key(4), config))
    assert not np.array_equal(different, y)


def test_strided_conv2d_matches_xla_convolution():
    from mmspeech_jax.layers.subsampling import StridedConv2d

    x = np.random.default_rng(6).normal(size=(2, 13, 10, 3)).astype(np.float32)
    for strides in ((2, 2), (1, 2)):
        layer = StridedConv2d(5, strides)
        params = layer.init(jax.random.PRNGKey(0), x)
        ours = np.asarray(layer.apply(params, x))
        reference = jax.lax.conv_general_dilated(x, params["params"]["kernel"], strides, "VALID",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(ours, np.asarray(reference) + np.asarray(params["params"]["bias"]), atol=1e-5)
