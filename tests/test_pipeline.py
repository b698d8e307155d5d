"""The bucketed Grain pipeline: shapes <= K, full epochs, masks, exact iterator restore, host sharding, no recompiles."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.data.pipeline import (BATCH_KEYS, PipelineConfig, epoch_batches, make_batch_iterator,
                                        plan_buckets)
from mmspeech_jax.errors import ConfigError


def test_plan_buckets_is_bounded_and_fits():
    rng = np.random.default_rng(0)
    frames = rng.integers(50, 700, 500)
    tokens = frames // 6 + rng.integers(0, 10, 500)
    chars = tokens * 2
    for k in (1, 3, 5):
        shapes, bucket = plan_buckets(frames, tokens, chars, k, 16, 8)
        assert 1 <= len(shapes) <= k
        assert all(s.frames % 16 == 0 and s.tokens % 8 == 0 for s in shapes)
        for f, t, c, b in zip(frames, tokens, chars, bucket):
            shape = shapes[b]
            assert f <= shape.frames and t <= shape.tokens and c <= shape.chars
            assert b == 0 or f > shapes[b - 1].frames  # the smallest shape that holds it
    with pytest.raises(ConfigError):
        plan_buckets([], [], [], 2)


def test_epoch_batches_cover_each_item_once_and_are_seeded():
    bucket_of = np.repeat([0, 1, 2], [10, 7, 5])
    batches = epoch_batches(bucket_of, 4, seed=1, epoch=0)
    flat = np.concatenate([m for _, m in batches])
    assert sorted(flat.tolist()) == list(range(22))
    assert all(np.all(bucket_of[m] == b) for b, m in batches)
    assert len(batches) == 3 + 2 + 2
    again = epoch_batches(bucket_of, 4, seed=1, epoch=0)
    assert all(b1 == b2 and np.array_equal(m1, m2) for (b1, m1), (b2, m2) in zip(batches, again))
    other = epoch_batches(bucket_of, 4, seed=1, epoch=1)
    assert len(other) == len(batches)  # fixed count per epoch
    assert any(not np.array_equal(m1, m2) for (_, m1), (_, m2) in zip(batches, other))
    dropped = epoch_batches(bucket_of, 4, seed=1, epoch=0, drop_remainder=True)
    assert len(dropped) == 2 + 1 + 1 and all(m.size == 4 for _, m in dropped)


def test_one_epoch_of_batches(small_cache, capsys):
    config = PipelineConfig(batch_size=4, num_buckets=3, num_epochs=1)
    iterator = make_batch_iterator(small_cache, "train", config)
    assert "K=" in capsys.readouterr().out
    shapes = {(s.frames, s.tokens) for s in iterator.shapes}
    seen = []
    for batch in iterator:
        assert set(BATCH_KEYS) | {"durations", "epoch"} == set(batch)
        assert (batch["mel"].shape[1], batch["tokens"].shape[1]) in shapes
        b = batch["example_mask"]
        chex.assert_shape(batch["mel"], (4, batch["frame_mask"].shape[1], 80))
        np.testing.assert_array_equal(batch["frame_mask"].sum(1), batch["frame_lengths"])
        np.testing.assert_array_equal(batch["token_mask"].sum(1), batch["token_lengths"])
        np.testing.assert_array_equal(batch["transcript_mask"].sum(1), batch["transcript_lengths"])
        np.testing.assert_array_equal(batch["durations"].sum(1), batch["frame_lengths"])  # lengths always agree
        assert np.all(batch["mel"][~batch["frame_mask"]] == 0) and np.all(batch["tokens"][~batch["token_mask"]] == 0)
        assert np.all(batch["pitch"][~batch["frame_mask"]] == 0)
        assert not batch["frame_mask"][~b].any() and np.all(batch["index"][~b] == -1)
        for r in np.flatnonzero(b):
            item = small_cache[int(batch["index"][r])]
            np.testing.assert_array_equal(batch["mel"][r, : item["mel"].shape[0]], item["mel"])
            np.testing.assert_array_equal(batch["tokens"][r, : item["tokens"].size], item["tokens"])
        seen += batch["index"][b].tolist()
    assert sorted(seen) == small_cache.indices("train").tolist()


def test_pitch_and_energy_normalisation(small_cache):
    batch = next(make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=4, seed=3), verbose=False))
    s = small_cache.stats
    r = int(np.flatnonzero(batch["example_mask"])[0])
    item = small_cache[int(batch["index"][r])]
    t = item["mel"].shape[0]
    voiced = item["voiced"]
    expected = (np.log(item["f0_hz"][voiced]) - s["log_f0_mean"]) / s["log_f0_std"]
    np.testing.assert_allclose(batch["pitch"][r, :t][voiced], expected, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(batch["pitch"]))  # unvoiced frames interpolated, never log(0)
    np.testing.assert_allclose(batch["energy"][r, :t], (item["energy"] - s["energy_mean"]) / s["energy_std"], rtol=1e-5)


def test_iterator_state_restores_exactly(small_cache):
    config = PipelineConfig(batch_size=4, num_epochs=3, seed=5)
    iterator = make_batch_iterator(small_cache, "train", config, verbose=False)
    for _ in range(iterator.batches_per_epoch + 2):  # into the second epoch
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(3)]
    restored = make_batch_iterator(small_cache, "train", config, verbose=False)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert expected[0]["epoch"] == 1


def test_hosts_split_each_global_batch(small_cache):
    config = PipelineConfig(batch_size=4, seed=2)
    whole = next(make_batch_iterator(small_cache, "train", config, process_index=0, process_count=1, verbose=False))
    parts = [next(make_batch_iterator(small_cache, "train", config, process_index=p, process_count=2, verbose=False))
             for p in range(2)]
    for key in ("mel", "tokens", "index", "example_mask"):
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
    with pytest.raises(ConfigError, match="divisible"):
        make_batch_iterator(small_cache, "train", PipelineConfig(batch_size=3), process_index=0, process_count=2)


def test_a_jitted_step_compiles_at_most_once_per_shape(small_cache):
    config = PipelineConfig(batch_size=4, num_buckets=3, num_epochs=2)
    iterator = make_batch_iterator(small_cache, "train", config, verbose=False)

    @jax.jit
    def masked_mean(batch):
        mask = batch["frame_mask"][..., None]
        return jnp.sum(batch["mel"] * mask) / jnp.maximum(jnp.sum(mask) * batch["mel"].shape[-1], 1)

    for batch in iterator:
        masked_mean({k: batch[k] for k in ("mel", "frame_mask")})
    assert masked_mean._cache_size() <= iterator.num_shapes


def test_bad_configs(small_cache):
    with pytest.raises(ConfigError):
        PipelineConfig(batch_size=0)
    with pytest.raises(ConfigError):
        PipelineConfig(num_epochs=0)
    with pytest.raises(ConfigError):
        make_batch_iterator(small_cache, "nope", PipelineConfig(), process_index=0, process_count=1)
