"""Embedding-table ids (`layers/ids.py`): an id outside a token or speaker table raises (concrete ids) or gives NaN
(under jit) — never another row's vector, which is what `jnp.take` gave for -1 (the last row)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.errors import FeatureError
from mmspeech_jax.layers.conditioning import SpeakerEmbedding
from mmspeech_jax.layers.ids import check_ids
from mmspeech_jax.models.fastspeech2 import FastSpeech2, check_batch, preset
from mmspeech_jax.train.init import init_params

VOCAB, SPEAKERS = 12, 3


@pytest.fixture(scope="module")
def tts():
    model = FastSpeech2(preset("tiny", VOCAB, num_speakers=SPEAKERS))
    tokens, mask = jnp.ones((2, 5), jnp.int32), jnp.ones((2, 5), bool)
    params = init_params(model, jax.random.PRNGKey(0), tokens, mask, jnp.zeros(2, jnp.int32), method="encode")
    return model, params, np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], np.int32), np.ones((2, 5), bool)


def encode(model, params, tokens, mask, speaker):
    return model.apply({"params": params}, tokens, mask, speaker, method="encode")


@pytest.mark.parametrize("bad", [VOCAB, -1])
def test_token_outside_the_table_raises_eagerly_and_is_nan_under_jit(tts, bad):
    model, params, tokens, mask = tts
    speaker = np.zeros(2, np.int32)
    good = np.asarray(encode(model, params, tokens, mask, speaker))
    assert np.isfinite(good).all()
    wrong = tokens.copy()
    wrong[1, 3] = bad
    with pytest.raises(FeatureError, match=rf"token id {bad} at position \(1, 3\) is outside the table: it has {VOCAB} rows"):
        encode(model, params, wrong, mask, speaker)
    out = np.asarray(jax.jit(encode, static_argnums=0)(model, params, wrong, mask, speaker))
    assert np.isnan(out[1]).all()  # the row with the unknown id is visibly wrong
    np.testing.assert_allclose(out[0], good[0], atol=1e-5)  # the other row is untouched (jit vs eager rounding)


@pytest.mark.parametrize("bad", [SPEAKERS, -1])
def test_speaker_outside_the_table_raises_eagerly_and_is_nan_under_jit(tts, bad):
    model, params, tokens, mask = tts
    with pytest.raises(FeatureError, match=rf"speaker id {bad} at position \(0,\)"):
        encode(model, params, tokens, mask, np.array([bad, 0], np.int32))
    out = np.asarray(jax.jit(encode, static_argnums=0)(model, params, tokens, mask, np.array([bad, 0], np.int32)))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
    # -1 used to read the last voice's row (jnp.take counts negative ids from the end)
    last = np.asarray(encode(model, params, tokens, mask, np.array([SPEAKERS - 1, 0], np.int32)))
    assert not np.allclose(out[0], last[0], equal_nan=False)


def test_speaker_embedding_reads_its_rows_and_minus_one_is_none():
    layer = SpeakerEmbedding(SPEAKERS, 4)
    params = layer.init(jax.random.PRNGKey(1), jnp.zeros(1, jnp.int32))["params"]
    table = np.asarray(params["table"]["embedding"])
    vector, available = layer.apply({"params": params}, np.array([2, -1, 0], np.int32))
    np.testing.assert_array_equal(np.asarray(available), [True, False, True])
    np.testing.assert_allclose(np.asarray(vector), np.stack([table[2], np.zeros(4), table[0]]), rtol=0, atol=0)
    for bad in (SPEAKERS, -2):
        with pytest.raises(FeatureError, match=rf"speaker id {bad} .*\(-1 \(none\) or 0-{SPEAKERS - 1}\)"):
            layer.apply({"params": params}, np.array([0, bad], np.int32))
        jitted = jax.jit(lambda p, s: layer.apply({"params": p}, s))(params, np.array([0, bad], np.int32))[0]
        assert np.isnan(np.asarray(jitted[1])).all() and np.isfinite(np.asarray(jitted[0])).all()


def test_check_ids_names_the_first_bad_id():
    check_ids(np.array([[0, 4], [2, 3]]), 5, "token")
    with pytest.raises(FeatureError, match=r"^ctx: token id 5 at position \(1, 0\) is outside the table: it has 5 "
                                           r"rows \(0-4\)$"):
        check_ids(np.array([[0, 4], [5, 7]]), 5, "token", context="ctx: ")
    check_ids(np.array([-1, 0]), 1, "speaker", none_id=True)
    with pytest.raises(FeatureError):
        check_ids(np.array([-1, 0]), 1, "speaker")


def batch(tokens, speaker=None):
    b, n = tokens.shape
    t = 6
    out = {"tokens": tokens, "token_mask": np.ones((b, n), bool), "token_lengths": np.full(b, n, np.int32),
           "mel": np.zeros((b, t, 80), np.float32), "frame_mask": np.ones((b, t), bool),
           "frame_lengths": np.full(b, t, np.int32), "pitch": np.zeros((b, t), np.float32),
           "energy": np.zeros((b, t), np.float32)}
    if speaker is not None:
        out["speaker"] = speaker
    return out


def test_check_batch_refuses_ids_outside_the_tables():
    config = preset("tiny", VOCAB, num_speakers=SPEAKERS)
    tokens = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    check_batch(batch(tokens, np.array([0, 2], np.int32)), config)
    wrong = tokens.copy()
    wrong[0, 2] = VOCAB + 3
    with pytest.raises(FeatureError, match=rf"FastSpeech2 batch: token id {VOCAB + 3} at position \(0, 2\)"):
        check_batch(batch(wrong, np.array([0, 2], np.int32)), config)
    with pytest.raises(FeatureError, match=rf"FastSpeech2 batch: speaker id {SPEAKERS} at position \(1,\)"):
        check_batch(batch(tokens, np.array([0, SPEAKERS], np.int32)), config)
    with pytest.raises(FeatureError, match=r"'speaker' has shape \(2, 1\)"):
        check_batch(batch(tokens, np.zeros((2, 1), np.int32)), config)
    # a single-speaker model ignores a corpus's speaker key, as the model does
    check_batch(batch(tokens, np.array([0, 99], np.int32)), preset("tiny", VOCAB))
