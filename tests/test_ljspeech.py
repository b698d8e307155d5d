"""LJSpeech through the real TFDS builder, offline: a fabricated LJSpeech-1.1 tree, the download step patched."""

from unittest import mock

import numpy as np
import pytest
import soundfile as sf

from mmspeech_jax.data import ljspeech
from mmspeech_jax.errors import ConfigError, CorpusNotFoundError


def fabricate_ljspeech(root, count=14):
    """LJSpeech-1.1's exact layout: metadata.csv (id|text|normalized) and wavs/<id>.wav, 22 050 Hz int16 mono."""
    tree = root / "LJSpeech-1.1"
    (tree / "wavs").mkdir(parents=True)
    lines, audio = [], {}
    rng = np.random.default_rng(0)
    for i in range(count):
        uid = f"LJ0{i // 10 + 1:02d}-{i:04d}"
        samples = (rng.normal(size=22050 + 500 * i) * 3000).astype(np.int16)
        sf.write(tree / "wavs" / f"{uid}.wav", samples, 22050, subtype="PCM_16")
        audio[uid] = samples
        lines.append(f"{uid}|Mr. Lee paid $2 in 1884, item {i}.|Mister Lee paid two dollars in eighteen eighty-four, item {i}.")
    (tree / "metadata.csv").write_text("\n".join(lines) + "\n")
    return audio


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("ljspeech")
    audio = fabricate_ljspeech(root / "extracted")
    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", lambda self, url: root / "extracted"):
        ljspeech.prepare_ljspeech(root / "data")
    return root / "data", audio


def test_real_builder_prepares_and_reads_back(prepared):
    data_dir, audio = prepared
    assert ljspeech.is_prepared(data_dir)
    builder = ljspeech.ljspeech_builder(data_dir)
    assert builder.name == "ljspeech" and builder.info.splits["train"].num_examples == len(audio)
    seen = {}
    for split in ("train", "validation", "test"):
        source = ljspeech.LJSpeechSource(data_dir, split)
        for i in range(len(source)):
            record = source[i]
            seen[record.id] = split
            np.testing.assert_array_equal(np.rint(record.audio * 32768).astype(np.int16), audio[record.id])
            assert record.sample_rate == 22050 and record.transcript.startswith("Mr. Lee paid $2")
            assert record.text_normalized.startswith("Mister Lee")
    assert set(seen) == set(audio)  # every clip in exactly one split


def test_split_sizes_and_determinism():
    sizes = {s: ljspeech.split_indices(13100, s).size for s in ("train", "validation", "test")}
    assert sizes == {"train": 12500, "validation": 100, "test": 500}
    parts = [ljspeech.split_indices(13100, s) for s in ("train", "validation", "test")]
    assert np.unique(np.concatenate(parts)).size == 13100
    np.testing.assert_array_equal(ljspeech.split_indices(13100, "test"), ljspeech.split_indices(13100, "test"))
    assert [ljspeech.split_indices(14, s).size for s in ("train", "validation", "test")] == [12, 1, 1]
    with pytest.raises(ConfigError):
        ljspeech.split_indices(100, "dev")


def test_not_prepared_never_downloads(tmp_path):
    import tensorflow_datasets as tfds

    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", side_effect=AssertionError("network")):
        with pytest.raises(CorpusNotFoundError, match="not prepared"):
            ljspeech.LJSpeechSource(tmp_path / "empty", "train")
    assert not ljspeech.is_prepared(tmp_path / "missing")


def test_feature_cache_from_ljspeech(prepared, tmp_path):
    from mmspeech_jax.data.feature_cache import FeatureConfig, build_feature_cache, ljspeech_utterances

    cache = build_feature_cache(ljspeech_utterances(prepared[0]), tmp_path / "lj", FeatureConfig(tokenizer="arpabet"),
                                progress=False)
    assert len(cache) == 14 and not cache.has_durations
    assert cache.texts[0].startswith("mister lee paid two dollars in eighteen eighty four")
    assert sorted(set(cache.splits)) == ["test", "train", "validation"]


def test_vocoder_crops_from_prepared_ljspeech(prepared):
    """The vocoder's LJSpeech path: each split's utterances, read through TFDS, cropped at 22.05 kHz."""
    from mmspeech_jax.data.feature_cache import ljspeech_utterances
    from mmspeech_jax.data.waveform_crops import WaveformCrops, loaded_crop_source

    utterances = ljspeech_utterances(prepared[0])
    splits = {name: utterances.split(name) for name in ("train", "validation", "test")}
    assert sum(len(s) for s in splits.values()) == len(utterances) == 14
    source = loaded_crop_source(splits["train"], 22050)
    assert len(source.lengths) == len(splits["train"]) and (source.lengths > 0).all()
    crops = WaveformCrops(source, 2, 4, 256, 1024)
    batch = crops.batch(0)
    assert batch["audio"].shape == (2, 1024) and np.isfinite(batch["context"]).all()
