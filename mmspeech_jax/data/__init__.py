"""Data: the embedded espeak-ng corpus, LJSpeech via TFDS, the feature cache and the bucketed Grain pipeline.

Quick start (generates the corpus and its features on first use, then iterates one epoch):

    from mmspeech_jax.data import embedded_feature_cache, make_batch_iterator, PipelineConfig
    cache = embedded_feature_cache()
    for batch in make_batch_iterator(cache, "train", PipelineConfig(batch_size=16, num_epochs=1)):
        ...
"""

from mmspeech_jax.data.feature_cache import FeatureCache, FeatureConfig, build_feature_cache, default_feature_cache
from mmspeech_jax.data.pipeline import BATCH_KEYS, BucketShape, PipelineConfig, make_batch_iterator, plan_buckets
from mmspeech_jax.data.synthetic_corpus import (Corpus, CorpusConfig, generate_corpus, load_corpus,
                                                multispeaker_config, natural_eval_config)


def embedded_feature_cache(corpus_config: CorpusConfig = CorpusConfig(), feature_config: FeatureConfig = FeatureConfig(),
                           cache_dir=None, *, progress: bool = True) -> FeatureCache:
    """The embedded corpus's feature cache: corpus and features are generated on first use, then reused."""
    corpus = generate_corpus(corpus_config, cache_dir, progress=progress)
    return default_feature_cache(corpus, feature_config, cache_dir, progress=progress)


def natural_eval_feature_cache(num_utterances: int | None = None, cache_dir=None, *,
                               progress: bool = False) -> FeatureCache:
    """The natural evaluation set's feature cache (hand-written sentences no corpus contains, spoken by espeak-ng
    en-us, all in the "test" split; its first `num_utterances`, default all), generated and cached on first use.
    Its `stats` are placeholders (it has no train split): normalize with the training cache's."""
    return embedded_feature_cache(natural_eval_config(num_utterances=num_utterances), FeatureConfig(), cache_dir,
                                  progress=progress)


__all__ = ["BATCH_KEYS", "BucketShape", "Corpus", "CorpusConfig", "FeatureCache", "FeatureConfig", "PipelineConfig",
           "build_feature_cache", "default_feature_cache", "embedded_feature_cache", "generate_corpus", "load_corpus",
           "make_batch_iterator", "multispeaker_config", "natural_eval_feature_cache", "plan_buckets"]
