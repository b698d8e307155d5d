"""Test set-up: 8 fake CPU devices (set before JAX initialises), one compilation cache for the run, and a small
shared corpus + feature cache."""

import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# One persistent XLA compilation cache for the whole run, made by the first process that loads this file and
# inherited through the environment by the pytest-xdist workers and every subprocess a test starts: tests that
# compile the same program (the tiny presets' steps, the experiment runs) load it instead of compiling it again
# (`make test` on one 2-core machine: 797 and 889 s without it, 698 and 573 s with it). Deleted when that process
# ends; a cache the caller set (JAX_COMPILATION_CACHE_DIR) is used and left alone.
_OWN_XLA_CACHE = None
# Every program goes into the cache, not only those that took over a second to compile (JAX's default): the tiny
# models' hundreds of sub-second programs are compiled again by each worker and each subprocess otherwise (`make
# test` alone on a 2-core AMD EPYC at cd46bdc: 17 min 11 s with the default, 15 min 22 s with 0).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_XLA_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmspeech-test-xla-cache-")

import pytest  # noqa: E402

from mmspeech_jax.data.feature_cache import FeatureConfig, default_feature_cache  # noqa: E402
from mmspeech_jax.data.synthetic_corpus import CorpusConfig, generate_corpus, multispeaker_config  # noqa: E402

SMALL_CORPUS = CorpusConfig(name="test-small", num_utterances=48, seed=7, validation_fraction=0.15, test_fraction=0.15)


def pytest_unconfigure(config):
    if _OWN_XLA_CACHE:
        shutil.rmtree(_OWN_XLA_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mmspeech_cache")


@pytest.fixture(scope="session")
def small_corpus(cache_root):
    return generate_corpus(SMALL_CORPUS, cache_root, progress=False)


@pytest.fixture(scope="session")
def small_cache(small_corpus, cache_root):
    return default_feature_cache(small_corpus, FeatureConfig(), cache_root, progress=False)


@pytest.fixture(scope="session")
def multi_corpus(cache_root):
    return generate_corpus(multispeaker_config(4, num_utterances=16, seed=3), cache_root, progress=False)


TINY_RUN_ARGS = ["--preset", "tiny", "--steps", "4", "--corpus_size", "32", "--batch_size", "4", "--num_buckets", "1",
                 "--checkpoint_every", "4", "--eval_every", "4", "--no_progress"]


@pytest.fixture
def tiny_run_args():
    return list(TINY_RUN_ARGS)


@pytest.fixture(scope="session")
def tiny_run_cache(tmp_path_factory):
    """MMSPEECH_CACHE_DIR shared by the tiny experiment runs (one 24-utterance embedded corpus for all)."""
    return tmp_path_factory.mktemp("experiment_cache")


def _with_cache_dir(cache_dir, fn):
    old = os.environ.get("MMSPEECH_CACHE_DIR")
    os.environ["MMSPEECH_CACHE_DIR"] = str(cache_dir)
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop("MMSPEECH_CACHE_DIR")
        else:
            os.environ["MMSPEECH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_tts_workdir(tmp_path_factory, tiny_run_cache):
    """`python -m experiments.ljspeech_tts` with the tiny preset for 4 steps."""
    from experiments.ljspeech_tts import main as train

    workdir = tmp_path_factory.mktemp("tts") / "w"
    _with_cache_dir(tiny_run_cache, lambda: train(TINY_RUN_ARGS + ["--num_samples", "1", "--workdir", str(workdir)]))
    return workdir


@pytest.fixture(scope="session")
def tiny_lm_workdir(tmp_path_factory):
    """`python -m experiments.text_lm` with the tiny preset for 6 steps on 300 sentences."""
    from experiments.text_lm import main as train

    workdir = tmp_path_factory.mktemp("lm") / "w"
    train(["--preset", "tiny", "--steps", "6", "--eval_every", "3", "--workdir", str(workdir), "--no_progress",
           "--template_sentences", "50", "--max_sentences", "300", "--batch_size", "16"])
    return workdir


@pytest.fixture(scope="session")
def tiny_asr_workdir(tmp_path_factory, tiny_run_cache, tiny_lm_workdir):
    """`python -m experiments.ljspeech_asr` with the tiny preset for 4 steps, 6 natural evaluation sentences and
    the tiny LM fused (weights tuned on 2 validation utterances)."""
    from experiments.ljspeech_asr import main as train

    workdir = tmp_path_factory.mktemp("asr") / "w"
    _with_cache_dir(tiny_run_cache, lambda: train(TINY_RUN_ARGS + [
        "--workdir", str(workdir), "--natural_eval_utterances", "6", "--lm", str(tiny_lm_workdir),
        "--lm_tune_utterances", "2", "--beam_width", "2"]))
    return workdir
