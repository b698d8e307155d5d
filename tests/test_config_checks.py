"""Every config checks its fields when built (`config_checks.py`): a bad value raises one-line `ConfigError` naming
`Class.field`, before any data loads or any step compiles. The expected messages below are written from the rule
("an integer >= 1", "a finite number >= 0 and < 1"), not copied from the code's output."""

import dataclasses
import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest

import mmspeech_jax
from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.pitch import PitchConfig
from mmspeech_jax.audio.gain_augment import GainAugmentConfig
from mmspeech_jax.audio.noise_augment import NoiseAugmentConfig
from mmspeech_jax.audio.spec_augment import SpecAugmentConfig
from mmspeech_jax.data.feature_cache import FeatureConfig
from mmspeech_jax.data.pipeline import PipelineConfig
from mmspeech_jax.data.synthetic_corpus import CorpusConfig
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.conformer import ConformerBlockConfig
from mmspeech_jax.layers.fusion import BottleneckFusionConfig
from mmspeech_jax.layers.transformer import FFTBlockConfig
from mmspeech_jax.models import ctc_asr, fastspeech2, joint_speech_text
from mmspeech_jax.models.aligner import AlignerConfig
from mmspeech_jax.models.best_rq import BestRQConfig
from mmspeech_jax.models.discriminators import DiscriminatorConfig
from mmspeech_jax.models.hifigan import HiFiGANConfig
from mmspeech_jax.models.hyperspeech import HyperSpeechConfig
from mmspeech_jax.models.istft_vocoder import ISTFTVocoderConfig
from mmspeech_jax.models.text_lm import TextLMConfig
from mmspeech_jax.models.variance_adaptor import VarianceAdaptorConfig, VariancePredictorConfig
from mmspeech_jax.models.vocoder import VocoderConfig
from mmspeech_jax.overrides import apply_overrides
from mmspeech_jax.train.distributed import DistributedConfig
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.sharding import MeshConfig
from mmspeech_jax.train.trainer import TrainerConfig


@dataclasses.dataclass(frozen=True)
class Probe:
    n: int | None = 1
    x: float | None = 0.5
    mode: str = "a"
    on: bool = True
    width: int = 8
    parts: int = 2


def rejects(config, name: str, value, message: str):
    with pytest.raises(ConfigError) as info:
        check = {"n": lambda c: config_checks.integer(c, "n", 1, 10), "x": lambda c: config_checks.fraction(c, "x"),
                 "mode": lambda c: config_checks.choice(c, "mode", ("a", "b")),
                 "on": lambda c: config_checks.flag(c, "on")}[name]
        check(dataclasses.replace(config, **{name: value}))
    assert str(info.value) == message


def test_integer_check():
    for good in (1, 10, np.int64(3)):
        config_checks.integer(Probe(n=good), "n", 1, 10)
    for bad in (0, 11, 2.0, True, "3", None):
        rejects(Probe(), "n", bad, f"Probe.n must be an integer >= 1 and <= 10, got {bad!r}")
    config_checks.integer(Probe(n=None), "n", 1, none_ok=True)
    with pytest.raises(ConfigError, match=r"^Probe.n must be None or an integer >= 1, got 0$"):
        config_checks.integer(Probe(n=0), "n", 1, none_ok=True)
    with pytest.raises(ConfigError, match=r"^Probe.n must be an integer, got 'x'$"):
        config_checks.integer(Probe(n="x"), "n")
    config_checks.integer(Probe(n=-7), "n")  # no bounds: any integer
    with pytest.raises(ConfigError, match=r"^Probe.parts must be an integer >= 3, got 2$"):
        config_checks.integers(Probe(), width=1, parts=3)


def test_number_checks():
    for good in (0, 0.0, 0.999, np.float32(0.25)):
        config_checks.fraction(Probe(x=good), "x")
    for bad in (1, 1.0, -0.01, math.nan, math.inf, True, "0.1", None):
        rejects(Probe(), "x", bad, f"Probe.x must be a finite number >= 0 and < 1, got {bad!r}")
    config_checks.fraction(Probe(x=None), "x", none_ok=True)
    config_checks.positive(Probe(x=1e-12), "x")
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ConfigError, match=r"^Probe.x must be a finite number > 0, got "):
            config_checks.positive(Probe(x=bad), "x")
    config_checks.number(Probe(x=1.0), "x", 0, 1)  # closed bounds include both ends
    config_checks.number(Probe(x=-1e30), "x")  # no bounds: any finite number
    with pytest.raises(ConfigError, match=r"^Probe.x must be a finite number > 0 and <= 1, got 0.0$"):
        config_checks.number(Probe(x=0.0), "x", 0, 1, low_open=True)


def test_choice_flag_divisible():
    config_checks.choice(Probe(mode="b"), "mode", ("a", "b"))
    rejects(Probe(), "mode", "c", "Probe.mode must be one of 'a', 'b', got 'c'")
    rejects(Probe(), "on", "yes", "Probe.on must be true or false, got 'yes'")
    rejects(Probe(), "on", 1, "Probe.on must be true or false, got 1")
    config_checks.divisible(Probe(width=8, parts=4), "width", "parts")
    with pytest.raises(ConfigError, match=r"^Probe.width=8 is not divisible by parts=3$"):
        config_checks.divisible(Probe(width=8, parts=3), "width", "parts")


TINY_TTS = fastspeech2.preset("tiny", 40)
FACTORIES = {  # a valid instance of each config with required fields
    "FastSpeech2Config": lambda: fastspeech2.FastSpeech2Config(vocab_size=40),
    "HyperSpeechConfig": lambda: HyperSpeechConfig(TINY_TTS),
    "JointConfig": lambda: joint_speech_text.preset("tiny", 40),
}

# (config, field, bad value, what the message must say after "Class.field ")
BAD = [
    (TINY_TTS, "heads", 0, "must be an integer >= 1"),
    (TINY_TTS, "dim", 32.5, "must be an integer >= 1"),
    (TINY_TTS, "dim", 31, "is not divisible by heads=2"),
    (TINY_TTS, "vocab_size", 1, "must be an integer >= 2"),
    (TINY_TTS, "encoder_layers", 0, "must be an integer >= 1"),
    (TINY_TTS, "postnet_layers", 0, "must be an integer >= 1"),
    (TINY_TTS, "num_speakers", -1, "must be an integer >= 0"),
    (TINY_TTS, "dropout", 1.0, "must be a finite number >= 0 and < 1"),
    (TINY_TTS, "dropout", math.nan, "must be a finite number >= 0 and < 1"),
    (TINY_TTS, "attention_dropout", -0.1, "must be None or a finite number >= 0 and < 1"),
    (TINY_TTS, "conv_kernels", (3,), "must be two integers >= 1"),
    (TINY_TTS, "conv_kernels", (3, 0), "must be two integers >= 1"),
    (TINY_TTS, "predictor", None, "must be a VariancePredictorConfig"),
    (TINY_TTS, "aligner", "mas", "must be None or an AlignerConfig"),
    (TINY_TTS, "remat", "yes", "must be true or false"),
    (TINY_TTS, "compute_dtype", "float16", "must be one of 'float32', 'bfloat16'"),
    (VariancePredictorConfig(), "kernel_size", 0, "must be an integer >= 1"),
    (VariancePredictorConfig(), "dropout", 1, "must be a finite number >= 0 and < 1"),
    (VarianceAdaptorConfig(), "level", "utterance", "must be one of 'token', 'frame'"),
    (AlignerConfig(), "temperature", 0.0, "must be a finite number > 0"),
    (AlignerConfig(), "prior_scale", math.inf, "must be a finite number > 0"),
    (AlignerConfig(), "mel_hidden", 0, "must be an integer >= 1"),
    (ctc_asr.preset("tiny"), "subsampling", 3, "must be one of 4, 2"),
    (ctc_asr.preset("tiny"), "layers", 0, "must be an integer >= 1"),
    (ctc_asr.preset("tiny"), "dim", 33, "is not divisible by heads=2"),
    (ctc_asr.preset("tiny"), "attention_dropout", 1.0, "must be a finite number >= 0 and < 1"),
    (ctc_asr.preset("tiny"), "lora_rank", -1, "must be an integer >= 0"),
    (ctc_asr.preset("tiny"), "spec_augment", True, "must be None or a SpecAugmentConfig"),
    (SpecAugmentConfig(), "freq_masks", -1, "must be an integer >= 0"),
    (SpecAugmentConfig(), "time_width_ratio", 1.5, "must be a finite number >= 0 and <= 1"),
    (SpecAugmentConfig(), "fill", math.nan, "must be a finite number"),
    (GainAugmentConfig(), "max_db", -1.0, "must be a finite number >= 0"),
    (ctc_asr.preset("tiny"), "gain_augment", 12.0, "must be None or a GainAugmentConfig"),
    (NoiseAugmentConfig(), "probability", 1.5, "must be a finite number >= 0 and <= 1"),
    (NoiseAugmentConfig(), "max_snr_db", math.nan, "must be a finite number"),
    (NoiseAugmentConfig(), "bank_frames", 1, "must be an integer >= 2"),
    (ctc_asr.preset("tiny"), "noise_augment", 0.5, "must be None or a NoiseAugmentConfig"),
    (ConformerBlockConfig(), "conv_kernel", 0, "must be an integer >= 1"),
    (ConformerBlockConfig(), "heads", 3, "is not divisible by heads=3"),
    (FFTBlockConfig(), "conv_filters", 0, "must be an integer >= 1"),
    (FFTBlockConfig(), "attention_dropout", 1.0, "must be None or a finite number >= 0 and < 1"),
    (BottleneckFusionConfig(), "bottlenecks", 0, "must be an integer >= 1"),
    (HyperSpeechConfig(TINY_TTS), "adapter_dim", 0, "must be an integer >= 1"),
    (HyperSpeechConfig(TINY_TTS), "speaker_dropout", 1.5, "must be a finite number >= 0 and <= 1"),
    (HyperSpeechConfig(TINY_TTS), "reference", "yes", "must be true or false"),
    (HyperSpeechConfig(TINY_TTS), "backbone", None, "must be a FastSpeech2Config"),
    (BestRQConfig(), "codebook_size", 1, "must be an integer >= 2"),
    (BestRQConfig(), "start_probability", 0.0, "must be a finite number > 0 and < 1"),
    (BestRQConfig(), "start_probability", 1.0, "must be a finite number > 0 and < 1"),
    (BestRQConfig(), "noise_std", -1.0, "must be a finite number >= 0"),
    (PipelineConfig(), "batch_size", 2.0, "must be an integer >= 1"),
    (PipelineConfig(), "num_epochs", 0, "must be None or an integer >= 1"),
    (PipelineConfig(), "num_threads", -1, "must be an integer >= 0"),
    (PipelineConfig(), "shuffle", "no", "must be true or false"),
    (MelConfig(), "n_fft", 1024.0, "must be an integer >= 1"),
    (MelConfig(), "log_floor", 0.0, "must be a finite number > 0"),
    (PitchConfig(), "hop_samples", 0, "must be an integer >= 1"),
    (PitchConfig(), "silence_db", math.nan, "must be a finite number"),
    (FeatureConfig(), "tokenizer", "bytes", "must be one of 'characters', 'arpabet', 'espeak'"),
    (FeatureConfig(), "max_seconds", 0.0, "must be a finite number > 0"),
    (CorpusConfig(), "num_utterances", 1.5, "must be an integer >= 1"),
    (CorpusConfig(), "seed", -1, "must be an integer >= 0"),
    (CorpusConfig(), "text", "novels", "must be one of 'training', 'evaluation'"),
    (TextLMConfig(), "heads", 0, "must be an integer >= 1"),
    (TextLMConfig(), "dropout", math.nan, "must be a finite number"),
    (MeshConfig(), "data", 0, "must be an integer >= 1"),
    (MeshConfig(), "fsdp", 0, "must be an integer >= 1"),
    (DistributedConfig(), "num_processes", 0, "must be an integer >= 1"),
    (TrainerConfig(), "seed", 1.5, "must be an integer"),
    (TrainerConfig(), "progress", "no", "must be true or false"),
    (OptimizerConfig(), "b2", 1.0, "must be a finite number >= 0 and < 1"),
    (HiFiGANConfig(), "initial_channels", 0, "must be an integer >= 1"),
    (HiFiGANConfig(), "resblock", "3", "must be one of '1', '2'"),
    (ISTFTVocoderConfig(), "layers", 0, "must be an integer >= 1"),
    (ISTFTVocoderConfig(), "compute_dtype", "float16", "must be one of 'float32', 'bfloat16'"),
    (DiscriminatorConfig(), "channel_scale", 0.0, "must be a finite number > 0"),
    (VocoderConfig(), "mel_weight", -1.0, "must be a finite number >= 0"),
    (VocoderConfig(), "adversarial_start", -1, "must be None or an integer >= 0"),
    (VocoderConfig(), "generator", "wavenet", "must be one of 'istft', 'hifigan'"),
    (joint_speech_text.preset("tiny", 40), "text_mask_probability", 1.0, "must be a finite number > 0 and < 1"),
    (joint_speech_text.preset("tiny", 40), "text_frames_per_token", 0, "must be an integer >= 1"),
    (joint_speech_text.JointLossConfig(), "tts", -1.0, "must be a finite number >= 0"),
    (joint_speech_text.JointLossConfig(), "binarization_start", -1, "must be an integer >= 0"),
]


@pytest.mark.parametrize("config, field, value, message", BAD,
                         ids=[f"{type(c).__name__}.{f}={v!r}" for c, f, v, _ in BAD])
def test_bad_field_raises_one_line_error_naming_it(config, field, value, message):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(config, **{field: value})
    text = str(info.value)
    assert "\n" not in text
    owner = type(config).__name__
    assert text.startswith(f"{owner}.{field}") or text.startswith(f"{owner}.dim"), text
    assert message in text, text


def config_classes():
    """Every frozen dataclass named *Config in the package."""
    found = {}
    for info in pkgutil.walk_packages(mmspeech_jax.__path__, "mmspeech_jax."):
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name.endswith("Config") and dataclasses.is_dataclass(cls) and cls.__module__ == info.name:
                found[name] = cls
    return found


def test_every_config_is_covered_and_rejects_text_and_nan_in_numeric_fields():
    """A new config, or a new numeric field, that nobody checks fails here: each numeric field of each config's
    default instance must refuse a string, each float field NaN, each bool field a string."""
    classes = config_classes()
    assert len(classes) >= 20, sorted(classes)
    covered = {type(c).__name__ for c, *_ in BAD}
    assert set(classes) <= covered, sorted(set(classes) - covered)
    for name, cls in classes.items():
        default = FACTORIES.get(name, cls)()
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            bad = ([] if value is None else ["text"] if isinstance(value, bool) else
                   ["text", math.nan] if isinstance(value, float) else ["text", 2.5] if isinstance(value, int) else [])
            for candidate in bad:
                with pytest.raises(ConfigError, match=f"{name}.{f.name}"):
                    dataclasses.replace(default, **{f.name: candidate})


def test_defaults_and_presets_are_valid():
    for name, cls in config_classes().items():
        FACTORIES.get(name, cls)()
    for preset_name in ("tiny", "base", "ljspeech"):
        fastspeech2.preset(preset_name, 139)
    for preset_name in ctc_asr.PRESETS:
        ctc_asr.preset(preset_name)
    for preset_name in ("tiny", "base"):
        joint_speech_text.preset(preset_name, 139)


def test_overrides_report_the_field():
    with pytest.raises(ConfigError, match=r"^FastSpeech2Config.heads must be an integer >= 1, got 0$"):
        apply_overrides(TINY_TTS, ["heads=0"])
    with pytest.raises(ConfigError, match=r"^VariancePredictorConfig.dropout must be a finite number >= 0 and < 1"):
        apply_overrides(TINY_TTS, ["predictor.dropout=1"])
    with pytest.raises(ConfigError, match=r"^SpecAugmentConfig.time_masks must be an integer >= 0, got -2$"):
        apply_overrides(ctc_asr.preset("tiny"), ["spec_augment.time_masks=-2"])
