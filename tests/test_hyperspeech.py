"""HyperSpeech, adapters, the hypernetwork and the conditioning encoders."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.adapter import adapter_forward
from mmspeech_jax.layers.conditioning import ReferenceEncoder, SpeakerEmbedding, combine_conditions
from mmspeech_jax.models.aligner import with_alignment_prior
from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset
from mmspeech_jax.models.hyperspeech import HyperSpeech, HyperSpeechConfig, trainable_mask
from mmspeech_jax.train.finetune import count_parameters, masked_optimizer
from mmspeech_jax.train.init import init_params

B, N, T, M = 2, 7, 24, 80


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    batch = {"tokens": rng.integers(1, 30, (B, N)).astype(np.int32),
             "token_mask": np.arange(N)[None] < np.array([[7], [5]]),
             "mel": rng.normal(size=(B, T, M)).astype(np.float32),
             "frame_mask": np.arange(T)[None] < np.array([[24], [15]]),
             "pitch": rng.normal(size=(B, T)).astype(np.float32),
             "energy": rng.normal(size=(B, T)).astype(np.float32),
             "speaker": np.array([0, 2], np.int32)}
    batch["token_lengths"], batch["frame_lengths"] = batch["token_mask"].sum(1), batch["frame_mask"].sum(1)
    return with_alignment_prior(batch, 1.0)


def config(**kw):
    return HyperSpeechConfig(preset("tiny", 40), condition_dim=16, num_speakers=4, adapter_dim=4, hyper_hidden=16, **kw)


def init(model, batch, seed=0):
    rngs = {"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(1)}
    return init_params(model, rngs, batch, train=False)


@pytest.mark.parametrize("fusion", [pytest.param("film", marks=pytest.mark.slow), "gated_cross_attention"])  # film: `make test-slow`
def test_fresh_hyperspeech_equals_its_pretrained_backbone(fusion):
    """Compiled (op by op this took ~90-175 s on 2 cores); XLA fuses the two graphs differently, so "equal" is a
    few float32 ulps of the output's scale (~4.5): measured 3e-6, allowed 1e-5, where a wrong identity gives O(1)."""
    batch = make_batch()
    backbone = FastSpeech2(preset("tiny", 40))
    pretrained = init(backbone, batch, seed=7)  # stands for a trained FastSpeech2
    model = HyperSpeech(config(fusion=fusion, plain_adapters=True))
    params = {**init(model, batch), "backbone": pretrained}
    apply = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False)[0]["mel_post"])
    ours = apply(params, batch)
    theirs = jax.jit(lambda p, b: backbone.apply({"params": p}, b, train=False)[0]["mel_post"])(pretrained, batch)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=0, atol=1e-5)
    gen = jax.jit(lambda p, b: model.apply({"params": p}, b["tokens"], b["token_mask"], 40, speaker=b["speaker"],
                                           method=HyperSpeech.generate))(params, batch)
    ref = jax.jit(lambda p, b: backbone.apply({"params": p}, b["tokens"], b["token_mask"], 40,
                                              method=FastSpeech2.generate))(pretrained, batch)
    for g, r in zip(jax.tree_util.tree_leaves(gen), jax.tree_util.tree_leaves(ref)):  # mel, frame mask, durations
        np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(r, np.float64), rtol=0, atol=1e-5)
    # once the hypernetwork's up head is non-zero, the speaker changes the output (the equality above can fail)
    up = params["hypernetwork"]["up_head"]["kernel"]
    params["hypernetwork"]["up_head"]["kernel"] = 0.1 * jax.random.normal(jax.random.PRNGKey(3), up.shape)
    a = apply(params, batch)
    b = apply(params, {**batch, "speaker": np.array([1, 3], np.int32)})
    assert float(jnp.max(jnp.abs(a - b))) > 1e-4


def test_adapter_forward_matches_float64():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, 8)).astype(np.float32)
    mask = np.arange(T)[None] < np.array([[24], [10]])
    w = {"down": rng.normal(size=(B, 8, 3)), "down_bias": rng.normal(size=(B, 3)),
         "up": rng.normal(size=(B, 3, 8)), "up_bias": rng.normal(size=(B, 8))}
    x64 = x.astype(np.float64)
    h = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    h = np.maximum(np.einsum("btd,bdr->btr", h, w["down"]) + w["down_bias"][:, None], 0)
    expected = (x64 + np.einsum("btr,brd->btd", h, w["up"]) + w["up_bias"][:, None]) * mask[..., None]
    got = adapter_forward(jnp.asarray(x), mask, {k: jnp.asarray(v, jnp.float32) for k, v in w.items()})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_hyper_strategy_trains_only_hypernetwork_and_conditioning():
    batch = make_batch()
    model = HyperSpeech(config(plain_adapters=True))
    params = init(model, batch)
    total = count_parameters(params)
    counts = {s: count_parameters(params, trainable_mask(params, s)) for s in ("full", "hyper", "plain_adapters")}
    assert counts["full"] == total and 0 < counts["plain_adapters"] < counts["hyper"] < total
    mask = trainable_mask(params, "hyper")
    tx = masked_optimizer(optax.adam(1e-2), mask)
    loss = lambda p: jnp.mean(model.apply({"params": p}, batch, train=False)[0]["mel_post"] ** 2)
    new, opt_state = params, tx.init(params)
    @jax.jit  # compiled once, not op by op
    def step(p, state):
        updates, state = tx.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    for _ in range(3):  # the first step moves only the zero-initialised heads; the encoders follow
        new, opt_state = step(new, opt_state)
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), params, new)
    for top in params:
        moved = any(jax.tree_util.tree_leaves(changed[top]))
        assert moved == (top in ("hypernetwork", "speaker_embedding", "reference_encoder", "fusion")), top
    with pytest.raises(ConfigError, match="strategy"):
        trainable_mask(params, "everything")


def test_reference_encoder_ignores_padding_and_flags_empty_references():
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(B, 40, M)).astype(np.float32)
    mask = np.arange(40)[None] < np.array([[40], [0]])
    enc = ReferenceEncoder(16)
    params = enc.init(jax.random.PRNGKey(0), mel, mask)
    vec, available = enc.apply(params, mel, mask)
    assert available.tolist() == [True, False] and np.all(np.asarray(vec)[1] == 0)
    padded = np.concatenate([mel, rng.normal(size=(B, 24, M)).astype(np.float32) * 30], 1)
    vec2, _ = enc.apply(params, padded, np.arange(64)[None] < np.array([[40], [0]]))
    np.testing.assert_allclose(np.asarray(vec2), np.asarray(vec), rtol=1e-5, atol=1e-5)
    other, _ = enc.apply(params, rng.normal(size=mel.shape).astype(np.float32), mask)  # new content
    assert float(jnp.max(jnp.abs(other[0] - vec[0]))) > 1e-4


def test_speaker_minus_one_is_no_speaker_and_conditions_average_the_available():
    emb = SpeakerEmbedding(3, 4)
    params = emb.init(jax.random.PRNGKey(0), np.array([0]))
    vec, available = emb.apply(params, np.array([2, -1]))
    assert available.tolist() == [True, False] and np.all(np.asarray(vec)[1] == 0)
    a, b = np.arange(8.0).reshape(2, 4), -np.ones((2, 4))
    combined, any_available = combine_conditions([jnp.asarray(a), jnp.asarray(b)],
                                                 [jnp.array([True, True]), jnp.array([True, False])])
    np.testing.assert_allclose(np.asarray(combined), np.stack([(a[0] + b[0]) / 2, a[1]]))
    assert any_available.tolist() == [True, True]


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="fusion"):
        config(fusion="multiply")
    with pytest.raises(ConfigError, match="condition"):
        HyperSpeechConfig(preset("tiny", 40), reference=False)
    with pytest.raises(ConfigError, match="num_speakers=0"):
        HyperSpeechConfig(preset("tiny", 40, num_speakers=2))


def test_vector_condition_from_another_modality():
    """An embedding computed elsewhere (e.g. an image encoder's) conditions the model through `condition_vector`."""
    batch = {**make_batch(), "condition_vector": np.random.default_rng(1).normal(size=(B, 5)).astype(np.float32)}
    model = HyperSpeech(HyperSpeechConfig(preset("tiny", 40), condition_dim=16, reference=False, vector_dim=5,
                                          adapter_dim=4, hyper_hidden=16))
    params = init(model, batch)
    assert "vector_encoder" in params and "reference_encoder" not in params
    up = params["hypernetwork"]["up_head"]["kernel"]
    params["hypernetwork"]["up_head"]["kernel"] = 0.1 * jax.random.normal(jax.random.PRNGKey(3), up.shape)
    apply = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False))  # one program (op by op: 2.6x as long)
    a, aux = apply(params, batch)
    b, _ = apply(params, {**batch, "condition_vector": batch["condition_vector"] + 1})
    assert aux["condition"].shape == (B, 16)
    assert float(jnp.max(jnp.abs(a["mel_post"] - b["mel_post"]))) > 1e-4
    gen = jax.jit(lambda p, t, m, v: model.apply({"params": p}, t, m, 40, vector=v, method=HyperSpeech.generate))(
        params, batch["tokens"], batch["token_mask"], batch["condition_vector"])
    assert gen[0].shape == (B, 40, M)
