"""Length regulator and token averaging against NumPy; variance adaptor shapes, masks and controls."""

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.models.variance_adaptor import (Controls, VarianceAdaptor, VarianceAdaptorConfig,
                                                  VariancePredictorConfig, length_regulate, token_average)


def test_length_regulate_equals_numpy_repeat():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(np.float32)
    durations = np.array([[2, 0, 3, 1, 0], [1, 1, 1, 1, 1], [4, 4, 4, 4, 4]])
    out, mask = jax.jit(length_regulate, static_argnums=2)(x, durations, 12)
    for b in range(3):
        expected = np.repeat(x[b], durations[b], axis=0)[:12]
        np.testing.assert_array_equal(np.asarray(out[b, : len(expected)]), expected)
        assert np.all(np.asarray(out[b, len(expected):]) == 0)
        assert np.asarray(mask[b]).sum() == len(expected)  # 12 for the truncated third row


def test_token_average_equals_loop():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 10)).astype(np.float32)
    durations = np.array([[3, 0, 2, 5], [1, 2, 3, 0]])
    out = np.asarray(token_average(values, durations))
    for b in range(2):
        start = 0
        for n, d in enumerate(durations[b]):
            expected = values[b, start : start + d].mean() if d else 0.0
            np.testing.assert_allclose(out[b, n], expected, rtol=1e-6, atol=1e-7)
            start += d


def make_adaptor(level="token"):
    return VarianceAdaptor(VarianceAdaptorConfig(VariancePredictorConfig(hidden=16, dropout=0.0), level=level))


def test_adaptor_teacher_forcing_and_padding_invariance():
    rng = np.random.default_rng(2)
    h = rng.normal(size=(1, 4, 8)).astype(np.float32)
    mask = np.array([[True, True, True, False]])
    durations = np.array([[2, 3, 1, 0]])
    pitch = np.array([[0.5, -0.2, 0.1, 0.0]], np.float32)
    energy = np.array([[0.1, 0.3, -0.4, 0.0]], np.float32)
    model = make_adaptor()
    params = model.init(jax.random.PRNGKey(0), h, mask, 8, train=False, durations=durations, pitch=pitch, energy=energy)
    frames, frame_mask, aux = model.apply(params, h, mask, 8, train=False, durations=durations, pitch=pitch, energy=energy)
    assert frames.shape == (1, 8, 8) and np.asarray(frame_mask).sum() == 6
    # changing what sits in padding changes nothing valid
    h2, pitch2 = h.copy(), pitch.copy()
    h2[0, 3], pitch2[0, 3] = 100.0, 9.0
    frames2, _, aux2 = model.apply(params, h2, mask, 8, train=False, durations=durations, pitch=pitch2, energy=energy)
    np.testing.assert_allclose(np.asarray(frames2), np.asarray(frames), atol=1e-5)
    np.testing.assert_allclose(np.asarray(aux2["log_duration"])[:, :3], np.asarray(aux["log_duration"])[:, :3], atol=1e-5)


def test_inference_uses_predicted_durations_and_speed():
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.normal(size=(2, 5, 8)), jnp.float32)
    mask = jnp.ones((2, 5), bool)
    for level in ("token", "frame"):
        model = make_adaptor(level)
        params = model.init(jax.random.PRNGKey(1), h, mask, 64, train=False)
        _, frame_mask, aux = model.apply(params, h, mask, 64, train=False)
        expected = np.round(np.maximum(np.exp(np.asarray(aux["log_duration"])) - 1, 0))
        np.testing.assert_array_equal(np.asarray(aux["durations"]), expected)
        np.testing.assert_array_equal(np.asarray(frame_mask).sum(1), np.minimum(expected.sum(1), 64))
        _, _, fast = model.apply(params, h, mask, 64, train=False, controls=Controls(speed=2.0))
        assert np.asarray(fast["durations"]).sum() <= np.asarray(aux["durations"]).sum()
        halved = np.round(np.maximum(np.exp(np.asarray(aux["log_duration"])) - 1, 0) / 2.0)
        np.testing.assert_array_equal(np.asarray(fast["durations"]), halved)  # speed 2: half the frames per token


def test_controls_reject_values_that_would_break_the_length_regulator():
    import pytest

    from mmspeech_jax.errors import ConfigError

    for bad in (dict(speed=0.0), dict(speed=-1.0), dict(speed=float("nan")), dict(pitch_shift=float("inf")),
                dict(pitch_scale=-0.5), dict(energy_scale=float("nan")), dict(speed="fast")):
        with pytest.raises(ConfigError) as info:
            Controls(**bad)
        assert next(iter(bad)) in str(info.value) and "\n" not in str(info.value)
    # NumPy scalars are real numbers too (notebooks pass them), and zero pitch/energy scales flatten the contour.
    assert Controls(speed=np.float32(1.5), pitch_scale=0.0, energy_scale=0).speed == 1.5
