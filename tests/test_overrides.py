"""`--set key=value` config overrides."""

import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.fastspeech2 import preset
from mmspeech_jax.overrides import apply_overrides


def test_nested_tuple_and_number_overrides():
    base = preset("base", 50)
    config = apply_overrides(base, ["dropout=1e-1", "predictor.dropout=0.25", "conv_kernels=[9, 1]", "aligner.dim=64"])
    assert config.dropout == 0.1 and isinstance(config.dropout, float)
    assert config.predictor.dropout == 0.25 and config.predictor.hidden == base.predictor.hidden
    assert config.conv_kernels == (9, 1) and config.aligner.dim == 64
    assert base == preset("base", 50) and base.dropout != 0.1  # the original is untouched (frozen dataclasses)


def test_a_list_of_lists_becomes_tuples_all_the_way_down():
    """A tuple-of-tuples field (the vocoder's STFT resolutions) set from JSON: every level a tuple, so the config stays
    hashable (jit's static arguments) and equal to one built in Python."""
    from mmspeech_jax.models.vocoder import VocoderConfig

    config = apply_overrides(VocoderConfig(), ["stft_resolutions=[[256, 64, 256], [512, 128, 512]]"])
    assert config.stft_resolutions == ((256, 64, 256), (512, 128, 512))
    assert all(type(r) is tuple for r in config.stft_resolutions)
    hash(config)


def test_validation_runs_and_errors_name_the_item():
    with pytest.raises(ConfigError, match="'heads=5'.*not divisible|not divisible"):
        apply_overrides(preset("base", 50), ["heads=5"])
    with pytest.raises(ConfigError, match="no field 'dropuot'"):
        apply_overrides(preset("base", 50), ["dropuot=0"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(preset("base", 50), ["dropout"])
    with pytest.raises(ConfigError, match="switched off"):
        apply_overrides(preset("base", 50, aligner=None), ["aligner.dim=3"])
