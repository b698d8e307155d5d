"""The embedded espeak-ng corpus: determinism, ground-truth phoneme boundaries, splits, voices, atomic cache."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from mmspeech_jax.data import synthetic_corpus as sc
from mmspeech_jax.errors import ConfigError, CorpusNotFoundError
from mmspeech_jax.text.espeak import PhonemeEvent
from mmspeech_jax.text.normalize import normalize_text
from mmspeech_jax.text.tokenizer import EspeakTokenizer

from conftest import SMALL_CORPUS


def test_utterances_are_consistent(small_corpus):
    tok = EspeakTokenizer()
    assert len(small_corpus.utterances) == SMALL_CORPUS.num_utterances
    assert "natural" in {u.kind for u in small_corpus.utterances}  # the default mixes in natural English
    for u in small_corpus.utterances:
        assert SMALL_CORPUS.min_seconds <= u.seconds <= SMALL_CORPUS.max_seconds
        assert u.text == normalize_text(u.transcript)  # what was spoken is the normalized transcript
        assert list(u.phonemes) == tok.tokens(u.text, normalized=True)  # same symbols as the tokenizer
        assert all(p in tok.table for p in u.phonemes)  # every symbol trainable (versioned table)
        starts, ends = np.array(u.start_samples), np.array(u.end_samples)
        assert starts[0] == 0 and ends[-1] == u.num_samples
        np.testing.assert_array_equal(starts[1:], ends[:-1])
        assert np.all(ends >= starts)
        audio = small_corpus.audio(u)
        assert audio.size == u.num_samples and audio.dtype == np.float32
        assert u.split == sc.split_of(u.text, SMALL_CORPUS.validation_fraction, SMALL_CORPUS.test_fraction)


def test_phoneme_boundaries_are_true_durations(small_corpus):
    """A phoneme's segment is louder than the pause segments: energy check of the ground truth."""
    loud, quiet = [], []
    for u in small_corpus.utterances[:12]:
        audio = small_corpus.audio(u)
        for p, s, e in zip(u.phonemes, u.start_samples, u.end_samples):
            if e - s < 200:
                continue
            rms = np.sqrt(np.mean(audio[s:e] ** 2))
            (quiet if p in ",.?!" else loud if p[-1] in "aeiouAEIOU@3:" or "'" in p else []).append(rms)
    assert np.median(loud) > 5 * np.median(quiet)


def test_regeneration_is_byte_identical(small_corpus, tmp_path):
    config = dataclasses.replace(SMALL_CORPUS, num_utterances=10)
    again = sc.generate_corpus(config, tmp_path, progress=False)
    for a, b in zip(again.utterances, small_corpus.utterances[:10]):
        assert (again.root / a.audio_path).read_bytes() == (small_corpus.root / b.audio_path).read_bytes()
        assert dataclasses.replace(a, audio_path="") == dataclasses.replace(b, audio_path="")


def test_cached_corpus_is_reused_not_rewritten(small_corpus, cache_root):
    marker = small_corpus.root / "COMPLETE"
    before = marker.stat().st_mtime_ns
    again = sc.generate_corpus(SMALL_CORPUS, cache_root, progress=False)
    assert again.root == small_corpus.root and marker.stat().st_mtime_ns == before


def test_splits_are_stable_and_disjoint(small_corpus):
    splits = {name: {u.text for u in small_corpus.split(name)} for name in sc.SPLITS}
    assert all(splits.values())
    assert not (splits["train"] & splits["validation"]) and not (splits["train"] & splits["test"])
    u = int.from_bytes(hashlib.sha1(b"some sentence.").digest()[:8], "big") / 2**64
    expected = "validation" if u < 0.05 else "test" if u < 0.1 else "train"
    assert sc.split_of("some sentence.", 0.05, 0.05) == expected
    with pytest.raises(ConfigError):
        small_corpus.split("dev")


def test_multispeaker_voices_differ(multi_corpus):
    voices = {u.voice for u in multi_corpus.utterances}
    assert len(voices) == 4 and {u.speaker for u in multi_corpus.utterances} == {0, 1, 2, 3}
    assert len(multi_corpus.voices) == 4
    from mmspeech_jax.audio.pitch import PitchConfig, yin

    medians = {}
    for u in multi_corpus.utterances:
        f0, voiced, _ = (np.asarray(a) for a in yin(multi_corpus.audio(u), PitchConfig()))
        medians.setdefault(u.speaker, []).append(np.median(f0[voiced]))
    per_voice = sorted(np.median(v) for v in medians.values())
    assert per_voice[-1] > 1.3 * per_voice[0]  # female variants speak clearly higher


def test_align_events_rules():
    events = (PhonemeEvent("h", 100), PhonemeEvent("i", 500), PhonemeEvent("_:", 900), PhonemeEvent("_", 1200),
              PhonemeEvent("j", 1200), PhonemeEvent("o", 1500), PhonemeEvent("_:", 1800), PhonemeEvent("_", 2000))
    starts, ends = sc.align_events(["h", "i", ",", "j", "o", "."], events, 2000)
    assert starts == [0, 500, 900, 1200, 1500, 1800] and ends == [500, 900, 1200, 1500, 1800, 2000]
    assert sc.align_events(["h", "e", ",", "j", "o", "."], events, 2000) is None  # mismatch is detected
    assert sc.align_events(["h", "i", "."], events, 2000) is None  # leftover phonemes are detected


def test_missing_or_incomplete_corpus_dir(tmp_path):
    with pytest.raises(CorpusNotFoundError, match="not found"):
        sc.load_corpus(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(CorpusNotFoundError, match="incomplete"):
        sc.load_corpus(tmp_path / "half")


def test_config_validation():
    with pytest.raises(ConfigError):
        sc.CorpusConfig(num_utterances=0)
    with pytest.raises(ConfigError):
        sc.CorpusConfig(min_seconds=5, max_seconds=2)
    with pytest.raises(ConfigError):
        sc.multispeaker_config(99)
    assert sc.CorpusConfig().fingerprint != sc.CorpusConfig(seed=1).fingerprint


def test_metadata_is_plain_json(small_corpus):
    first = json.loads((small_corpus.root / "metadata.jsonl").read_text().splitlines()[0])
    assert {"id", "transcript", "text", "voice", "phonemes", "start_samples", "end_samples"} <= set(first)


@pytest.mark.slow
def test_full_default_corpus_within_budget(tmp_path):
    import time

    start = time.time()
    corpus = sc.generate_corpus(sc.CorpusConfig(), tmp_path, progress=False)
    elapsed = time.time() - start
    assert len(corpus.utterances) >= 13000 and elapsed < 300
    assert sum(u.seconds for u in corpus.utterances) >= 10 * 3600  # at least ten hours of speech
    kinds = set(__import__("mmspeech_jax.data.sentences").data.sentences.KINDS) | {"natural"}
    assert {u.kind for u in corpus.utterances} == kinds
    symbols = {p for u in corpus.utterances for p in u.phonemes}
    assert len(symbols) >= 90  # broad phonetic coverage


@pytest.mark.slow
def test_full_default_multivoice_corpus_within_budget(tmp_path):
    """The multispeaker_tts default (issue #27): as large as the single-voice one, every voice an equal share."""
    import time

    start = time.time()
    corpus = sc.generate_corpus(sc.multispeaker_config(), tmp_path, progress=False)
    elapsed = time.time() - start
    assert len(corpus.utterances) >= 13000 and elapsed < 300
    assert sum(u.seconds for u in corpus.utterances) >= 10 * 3600
    per_voice = np.bincount([u.speaker for u in corpus.utterances], minlength=len(sc.MULTISPEAKER_VOICES))
    assert per_voice.min() == per_voice.max() == len(corpus.utterances) // len(sc.MULTISPEAKER_VOICES)
    assert len({w for u in corpus.utterances for w in u.text.split()}) >= 10000  # English, not a template language


def test_generation_works_from_a_program_on_stdin(tmp_path):
    """Workers are `python -m` subprocesses, so any caller works (stdin programs broke multiprocessing spawn)."""
    import subprocess
    import sys

    program = ("from mmspeech_jax.data.synthetic_corpus import CorpusConfig, generate_corpus\n"
               f"c = generate_corpus(CorpusConfig(name='stdin', num_utterances=4), {str(tmp_path)!r}, progress=False)\n"
               "print(len(c.utterances))\n")
    result = subprocess.run([sys.executable, "-"], input=program, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "4"
    corpus_root = next((tmp_path / "corpora").iterdir())
    assert sorted(p.name for p in corpus_root.iterdir()) == ["COMPLETE", "config.json", "metadata.jsonl", "wavs"]


def test_worker_failure_is_a_one_line_error(tmp_path):
    from mmspeech_jax.errors import CorpusError

    config = sc.CorpusConfig(name="broken", num_utterances=2, voices=(sc.Voice("xx-no-such-voice"),))
    with pytest.raises(CorpusError, match="worker 0 failed.*xx-no-such-voice") as info:
        sc.generate_corpus(config, tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "corpora").iterdir()) == []  # nothing half-written is left behind


def test_natural_evaluation_set_is_spoken_in_order_into_the_test_split(tmp_path):
    from mmspeech_jax.data.english_text import evaluation_sentences

    corpus = sc.generate_corpus(sc.natural_eval_config(num_utterances=5), tmp_path, progress=False)
    assert [u.transcript for u in corpus.utterances] == list(evaluation_sentences()[:5])
    assert {u.split for u in corpus.utterances} == {"test"} and {u.kind for u in corpus.utterances} == {"evaluation"}
    with pytest.raises(ConfigError, match="natural evaluation set has"):
        sc.natural_eval_config(num_utterances=len(evaluation_sentences()) + 1)


def test_text_choice_and_natural_fraction_are_checked_and_fingerprinted():
    with pytest.raises(ConfigError, match="text"):
        sc.CorpusConfig(text="novels")
    with pytest.raises(ConfigError, match="natural_fraction"):
        sc.CorpusConfig(natural_fraction=1.5)
    assert sc.CorpusConfig().fingerprint != sc.CorpusConfig(natural_fraction=0.0).fingerprint
    assert "english_text" in sc.CorpusConfig().to_json()
    assert "english_text" not in sc.CorpusConfig(natural_fraction=0.0).to_json()
