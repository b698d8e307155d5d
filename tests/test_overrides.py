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


def test_fields_that_must_change_together_apply_in_either_order_and_the_last_item_for_a_key_wins():
    """The iSTFT vocoder's phase "gradient" refuses a complex loss weight: setting both works in either order (each
    step is validated, so the failing item is retried after the other), an item that cannot apply still raises its
    own error, and of two items for one key the later wins even when the earlier one would fail."""
    import dataclasses

    from mmspeech_jax.models.vocoder import VocoderConfig

    base = VocoderConfig(istft=dataclasses.replace(VocoderConfig().istft, phase="ramp"), complex_weight=10.0)
    for items in (["istft.phase=gradient", "complex_weight=0"], ["complex_weight=0", "istft.phase=gradient"]):
        config = apply_overrides(base, items)
        assert config.istft.phase == "gradient" and config.complex_weight == 0.0
    with pytest.raises(ConfigError, match="predicts none"):
        apply_overrides(base, ["istft.phase=gradient"])
    with pytest.raises(ConfigError, match="no field 'dropuot'"):
        apply_overrides(preset("base", 50), ["dropout=0.2", "dropuot=0"])
    config = apply_overrides(base, ["istft.phase=gradient", "istft.phase=ramp"])
    assert config.istft.phase == "ramp" and config.complex_weight == 10.0
    assert apply_overrides(preset("base", 50), ["dropout=0.3", "dropout=0.2"]).dropout == 0.2
