"""The feature cache: values equal direct extraction, durations sum to frames, statistics, atomicity, errors."""

import json

import numpy as np
import pytest

from mmspeech_jax.audio.features import MelConfig, frame_energy, log_mel_spectrogram, num_frames
from mmspeech_jax.audio.pitch import PitchConfig, yin
from mmspeech_jax.data import feature_cache as fc
from mmspeech_jax.errors import ConfigError, CorpusMismatchError, CorpusNotFoundError
from mmspeech_jax.text.tokenizer import CharacterTokenizer, EspeakTokenizer


def test_cached_features_equal_direct_extraction(small_corpus, small_cache):
    assert len(small_cache) == len(small_corpus.utterances) and small_cache.has_durations
    for i in (0, 5, len(small_cache) - 1):
        u = small_corpus.utterances[i]
        audio = small_corpus.audio(u)
        item = small_cache[i]
        frames = num_frames(audio.size, 256)
        assert item["mel"].shape == (frames, 80)
        np.testing.assert_allclose(item["mel"], np.asarray(log_mel_spectrogram(audio, MelConfig())), atol=2e-4)
        np.testing.assert_allclose(item["energy"], np.asarray(frame_energy(audio, MelConfig())), rtol=1e-4, atol=1e-4)
        f0, voiced, _ = (np.asarray(a) for a in yin(audio, PitchConfig()))
        np.testing.assert_array_equal(item["voiced"], voiced)
        np.testing.assert_allclose(item["f0_hz"], f0, rtol=1e-4)
        assert item["tokens"].tolist() == EspeakTokenizer.table.ids(u.phonemes)
        assert CharacterTokenizer().decode_text(item["chars"]) == u.text
        assert item["durations"].sum() == frames and item["durations"].min() >= 0
        assert item["speaker"] == u.speaker


def test_durations_follow_the_ground_truth_boundaries(small_corpus, small_cache):
    u = small_corpus.utterances[3]
    durations = small_cache[3]["durations"]
    frame_starts = np.concatenate([[0], np.cumsum(durations)[:-1]])
    # each token starts within half a hop (plus the rounding of the first token) of its true start sample
    assert np.all(np.abs(frame_starts[1:] * 256 - np.array(u.start_samples[1:])) <= 128)


def test_durations_from_boundaries_resamples_and_sums():
    config = MelConfig()
    d = fc.durations_from_boundaries([0, 4000, 8000, 8000], 16000, 16000, config)
    assert d.sum() == num_frames(22050, 256) and d[2] == 0 and d[3] > 0  # equal starts: zero frames
    assert np.all(fc.durations_from_boundaries([0, 300, 100], 1000, 22050, config) >= 0)


def test_statistics_are_over_voiced_training_frames(small_cache):
    train = small_cache.indices("train")
    f0 = np.concatenate([small_cache[int(i)]["f0_hz"][small_cache[int(i)]["voiced"]] for i in train])
    energy = np.concatenate([small_cache[int(i)]["energy"] for i in train])
    s = small_cache.stats
    assert s["voiced_frames"] == f0.size > 0
    np.testing.assert_allclose([s["f0_mean_hz"], s["f0_std_hz"]], [f0.mean(), f0.std()], rtol=1e-4)
    np.testing.assert_allclose([s["log_f0_mean"], s["log_f0_std"]], [np.log(f0).mean(), np.log(f0).std()], rtol=1e-4)
    np.testing.assert_allclose([s["energy_mean"], s["energy_std"]], [energy.mean(), energy.std()], rtol=1e-4)
    assert 60 < s["f0_mean_hz"] < 300
    mels = np.concatenate([small_cache[int(i)]["mel"] for i in train])
    np.testing.assert_allclose([s["mel_min"], s["mel_max"]], [mels.min(), mels.max()], rtol=1e-5)
    np.testing.assert_allclose(s["mel_mean"], mels.mean(0), rtol=1e-3, atol=1e-3)


def test_reuse_mismatch_and_no_overwrite(small_corpus, small_cache, tmp_path):
    again = fc.build_feature_cache(fc.corpus_utterances(small_corpus), small_cache.path, fc.FeatureConfig(), progress=False)
    assert again.path == small_cache.path
    with pytest.raises(CorpusMismatchError, match="another config"):
        fc.build_feature_cache([], small_cache.path, fc.FeatureConfig(tokenizer="characters"), progress=False)
    precious = tmp_path / "my_data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(CorpusMismatchError, match="refusing to overwrite"):
        fc.build_feature_cache(fc.corpus_utterances(small_corpus), precious, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(CorpusNotFoundError):
        fc.FeatureCache(tmp_path / "nothing")


def test_bad_utterances_are_reported_not_dropped(small_corpus, tmp_path):
    utterances = fc.corpus_utterances(small_corpus)[:3]
    from dataclasses import replace

    bad_text = replace(utterances[1], text="")
    too_long = replace(utterances[2], load_audio=lambda: (np.zeros(22050 * 30, np.float32), 22050))
    cache = fc.build_feature_cache([utterances[0], bad_text, too_long], tmp_path / "c", fc.FeatureConfig(), progress=False)
    assert len(cache) == 1
    rejected = [json.loads(line) for line in (cache.path / "rejected.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejected] == [utterances[1].id, utterances[2].id]
    assert "empty" in rejected[0]["reason"] and "longer than" in rejected[1]["reason"]
    with pytest.raises(CorpusNotFoundError, match="no usable"):
        fc.build_feature_cache([bad_text], tmp_path / "d", fc.FeatureConfig(), progress=False)
    assert not (tmp_path / "d").exists()


def test_feature_config_checks_one_frame_grid():
    with pytest.raises(ConfigError):
        fc.FeatureConfig(pitch=PitchConfig(hop_samples=200))


def test_concurrent_builders_keep_one_complete_copy(small_corpus, tmp_path, monkeypatch):
    """A builder that finishes second keeps the first complete cache and removes its own partial copy."""
    import shutil

    utterances = fc.corpus_utterances(small_corpus)[:2]
    rival = fc.build_feature_cache(utterances, tmp_path / "rival", progress=False)
    real_replace = fc.os.replace
    raced = []

    def rival_lands_first(src, dst):
        if str(dst).endswith("shared"):
            shutil.copytree(rival.path, dst)  # the other process's complete cache appears at the destination
            raced.append(src)
            raise OSError("directory not empty")
        return real_replace(src, dst)

    monkeypatch.setattr(fc.os, "replace", rival_lands_first)
    cache = fc.build_feature_cache(utterances, tmp_path / "shared", progress=False)
    assert raced and not any(p.exists() for p in map(fc.Path, raced))  # our partial copy was removed
    assert (cache.path / "index.json").read_bytes() == (rival.path / "index.json").read_bytes()
    np.testing.assert_array_equal(cache[1]["mel"], rival[1]["mel"])
