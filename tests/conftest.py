"""Test set-up: 8 fake CPU devices (set before JAX initialises) and a small shared corpus + feature cache."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from mmspeech_jax.data.feature_cache import FeatureConfig, default_feature_cache  # noqa: E402
from mmspeech_jax.data.synthetic_corpus import CorpusConfig, generate_corpus, multispeaker_config  # noqa: E402

SMALL_CORPUS = CorpusConfig(name="test-small", num_utterances=48, seed=7, validation_fraction=0.15, test_fraction=0.15)


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
