"""Neural vocoders: generators and their parameter counts, the inverse STFT, the losses against float64 NumPy, the
GAN gradient routing, waveform crops against the feature cache, training (phases, resume, mesh), inference, export
and the CLI."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmspeech_jax.audio.features import MelConfig, log_mel_spectrogram
from mmspeech_jax.audio.griffin_lim import istft
from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
from mmspeech_jax.data.waveform_crops import CropSource, WaveformCrops, corpus_crop_source
from mmspeech_jax.losses import vocoder as losses
from mmspeech_jax.models.discriminators import DiscriminatorConfig, Discriminators
from mmspeech_jax.models.hifigan import HiFiGANConfig, HiFiGANGenerator, PRESETS as HIFIGAN_PRESETS
from mmspeech_jax.models.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig, PRESETS as ISTFT_PRESETS
from mmspeech_jax.models.vocoder import (VocoderConfig, generate, init_vocoder_params, input_log_mel,
                                         make_vocoder_loss_fn, make_vocoder_optimizer, phases)
from mmspeech_jax.train.optim import OptimizerConfig
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_train_step

ROOT = Path(__file__).resolve().parents[1]
TINY_MEL = MelConfig(sample_rate=8000, n_fft=64, hop_samples=16, win_samples=64, n_mels=8, fmax_hz=4000)
TINY_RESOLUTIONS = ((64, 16, 64), (128, 32, 128))


def tiny_config(generator="istft", **fields) -> VocoderConfig:
    return VocoderConfig(
        generator=generator, mel=TINY_MEL, stft_resolutions=TINY_RESOLUTIONS,
        istft=ISTFTVocoderConfig(n_mels=8, dim=16, intermediate=32, layers=2, sample_rate=8000, n_fft=64,
                                 hop_samples=16, win_samples=64),
        hifigan=HiFiGANConfig(n_mels=8, upsample_rates=(4, 4), upsample_kernels=(8, 8), initial_channels=16,
                              resblock_kernels=(3,), resblock_dilations=((1, 2),)),
        discriminator=DiscriminatorConfig(kinds=("mpd", "msd", "mrd"), periods=(2, 3), scales=2,
                                          resolutions=TINY_RESOLUTIONS, channel_scale=1 / 32), **fields)


def count(params) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


# ---- float64 NumPy references ------------------------------------------------------------------------------------

def np_window(n_fft, win):
    n = np.arange(win)
    w = np.zeros(n_fft)
    left = (n_fft - win) // 2
    w[left: left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)
    return w


def np_stft(x, n_fft, hop, win):
    """Centred (reflect-padded) STFT of (..., S) float64 -> (..., T, F) complex128."""
    x = np.asarray(x, np.float64)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)], mode="reflect")
    frames = 1 + (padded.shape[-1] - n_fft) // hop
    idx = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None]
    return np.fft.rfft(padded[..., idx] * np_window(n_fft, win), axis=-1)


def np_istft(spec, n_fft, hop, win, length):
    """Windowed overlap-add divided by the summed squared window, the centre padding removed (float64 loops)."""
    w = np_window(n_fft, win)
    frames = spec.shape[0]
    out = np.zeros(n_fft + hop * (frames - 1))
    norm = np.zeros_like(out)
    for t in range(frames):
        out[t * hop: t * hop + n_fft] += np.fft.irfft(spec[t], n=n_fft) * w
        norm[t * hop: t * hop + n_fft] += w ** 2
    out = out / np.where(norm > 1e-8, norm, 1.0)
    return out[n_fft // 2: n_fft // 2 + length]


# ---- generators ------------------------------------------------------------------------------------------------

def test_preset_parameter_counts_match_the_papers():
    """HiFi-GAN Table 1 (V1 13.92 M, V2 0.92 M, V3 1.46 M) and Vocos' mel model (13.5 M), within 2 %."""
    mel = jnp.zeros((1, 4, 80))
    paper = {"v1": 13.92e6, "v2": 0.92e6, "v3": 1.46e6}
    for name, expected in paper.items():
        shapes = jax.eval_shape(HiFiGANGenerator(HiFiGANConfig(**HIFIGAN_PRESETS[name])).init, jax.random.PRNGKey(0), mel)
        assert abs(count(shapes) / expected - 1) < 0.02, name
    shapes = jax.eval_shape(ISTFTVocoder(ISTFTVocoderConfig(**ISTFT_PRESETS["paper"])).init, jax.random.PRNGKey(0), mel)
    assert abs(count(shapes) / 13.5e6 - 1) < 0.02
    shapes = jax.eval_shape(ISTFTVocoder(ISTFTVocoderConfig(**ISTFT_PRESETS["cpu"])).init, jax.random.PRNGKey(0), mel)
    assert 0.8e6 < count(shapes) < 1.3e6


@pytest.mark.parametrize("generator", ["istft", "hifigan"])
def test_generate_gives_the_zoo_frame_convention(generator):
    config = tiny_config(generator)
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    mel = jax.random.normal(jax.random.PRNGKey(1), (3, 10, 8))
    audio = jax.jit(lambda p, m: generate(config, p, m))(params["generator"], mel)
    assert audio.shape == (3, 9 * 16) and audio.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(audio)))


def test_istft_inverts_a_float64_stft_and_matches_a_numpy_inverse():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1600)
    spec = np_stft(x, 64, 16, 64)
    config = ISTFTVocoderConfig(n_mels=8, sample_rate=8000, n_fft=64, hop_samples=16, win_samples=64).stft_config
    rebuilt = np.asarray(istft(jnp.asarray(spec, jnp.complex64), config))
    np.testing.assert_allclose(rebuilt, x[: rebuilt.size], atol=2e-5)  # a consistent spectrum: exact inverse
    noise = rng.normal(size=spec.shape) + 1j * rng.normal(size=spec.shape)  # inconsistent: least-squares OLA
    np.testing.assert_allclose(np.asarray(istft(jnp.asarray(noise, jnp.complex64), config)),
                               np_istft(noise, 64, 16, 64, 16 * (spec.shape[0] - 1)), atol=1e-4)


def test_convnext_block_keeps_the_grouped_convolutions_parameters_and_output():
    """The ConvNeXt block's depthwise layer (shifted sums, `layers/depthwise.DepthwiseConv1D`) reads the parameters
    `nn.Conv(feature_group_count=D)` wrote, so older checkpoints load: its output equals a float64 NumPy block with
    a grouped 'SAME' convolution, LayerNorm, GELU (tanh form, flax's default) MLP, layer scale and residual, within
    1e-4."""
    import flax.linen as nn

    from mmspeech_jax.models.istft_vocoder import ConvNeXtBlock

    dim, k, t = 6, 7, 11
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, t, dim)).astype(np.float32)
    block = ConvNeXtBlock(dim, 10, k, 0.5)
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float32) * 0.5,
        block.init(jax.random.key(0), x)["params"])
    grouped = nn.Conv(dim, (k,), padding="SAME", feature_group_count=dim)
    assert jax.tree_util.tree_map(jnp.shape, params["depthwise"]) == jax.tree_util.tree_map(
        jnp.shape, grouped.init(jax.random.key(0), x)["params"])
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    padded = np.pad(x.astype(np.float64), ((0, 0), (k // 2, k // 2), (0, 0)))
    h = sum(padded[:, i:i + t] * p["depthwise"]["kernel"][i, 0] for i in range(k)) + p["depthwise"]["bias"]
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    h = h * p["norm"]["scale"] + p["norm"]["bias"]
    h = h @ p["pointwise_in"]["kernel"] + p["pointwise_in"]["bias"]
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
    h = h @ p["pointwise_out"]["kernel"] + p["pointwise_out"]["bias"]
    expected = x + h * p["layer_scale"]
    np.testing.assert_allclose(np.asarray(block.apply({"params": params}, x)), expected, rtol=1e-4, atol=1e-4)


def test_centre_frequency_ramp_is_a_steady_partials_phase_advance():
    """A sinusoid at bin k0's centre frequency: its float64 NumPy STFT phase minus the ramp is the same in every
    frame (the reflect-padded edges aside); far frames stay exact (no int32 overflow); old configs get no ramp."""
    from mmspeech_jax.models.istft_vocoder import centre_frequency_ramp

    n_fft, hop, k0 = 64, 16, 5
    x = np.cos(2 * np.pi * k0 * np.arange(1600) / n_fft + 0.3)
    phase = np.angle(np_stft(x, n_fft, hop, n_fft))[:, k0]
    ramp = np.asarray(centre_frequency_ramp(phase.size, n_fft, hop))
    assert ramp.shape == (phase.size, n_fft // 2 + 1)
    rotated = np.exp(1j * (phase - ramp[:, k0]))[4:-4]
    np.testing.assert_allclose(rotated, rotated[0], atol=1e-6)
    assert np.abs(np.exp(1j * np.diff(phase))[4:-4] - np.exp(1j * 2 * np.pi * k0 * hop / n_fft)).max() < 1e-6
    far = np.asarray(centre_frequency_ramp(1, 1024, 256, first=2_999_999)[0])  # t * k * hop would overflow int32
    want = np.mod(2 * np.pi * np.arange(513) * 256 * 2_999_999 / 1024, 2 * np.pi)
    np.testing.assert_allclose(np.exp(1j * far), np.exp(1j * want), atol=1e-5)
    # The phase modes on the same parameters: p and p + ramp.
    base = tiny_config().istft
    mel = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 8))
    params = ISTFTVocoder(base).init(jax.random.PRNGKey(0), mel)
    head = {mode: ISTFTVocoder(dataclasses.replace(base, phase=mode)).apply(
        params, mel, method=ISTFTVocoder.magnitude_and_phase) for mode in ("absolute", "ramp")}
    p = np.asarray(head["absolute"][1], np.float64)
    ramp = np.asarray(centre_frequency_ramp(10, 64, 16), np.float64)
    np.testing.assert_allclose(head["ramp"][1], p + ramp, atol=1e-5)
    np.testing.assert_array_equal(head["ramp"][0], head["absolute"][0])
    assert ISTFTVocoderConfig.from_dict({"n_mels": 8}).phase == "absolute"
    assert ISTFTVocoderConfig(**ISTFT_PRESETS["paper"]).phase == "ramp"


def test_gradient_phase_head_predicts_the_magnitude_only_and_takes_its_phase_from_it():
    """phase "gradient" (the cpu preset's): the head's Dense has one output per bin (the others two), the phase is
    `phase_gradient_phase` of the magnitude and the waveform inverts that spectrum; the waveform's gradient reaches
    the parameters through the magnitude; a head phase option or loss is refused."""
    from mmspeech_jax.audio.phase_gradient import phase_gradient_phase
    from mmspeech_jax.errors import ConfigError

    base = tiny_config()
    config = dataclasses.replace(base, istft=dataclasses.replace(base.istft, phase="gradient"))
    mel = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 8))
    model = ISTFTVocoder(config.istft)
    params = model.init(jax.random.PRNGKey(0), mel)
    assert params["params"]["head"]["kernel"].shape == (16, 33)
    assert ISTFTVocoder(base.istft).init(jax.random.PRNGKey(0), mel)["params"]["head"]["kernel"].shape == (16, 66)
    magnitude, phase = model.apply(params, mel, method=ISTFTVocoder.magnitude_and_phase)
    np.testing.assert_allclose(np.exp(1j * np.asarray(phase)),
                               np.exp(1j * np.asarray(phase_gradient_phase(magnitude, 64, 16, 64))), atol=1e-5)
    audio = np.asarray(model.apply(params, mel), np.float64)
    want = np.stack([np_istft(np.asarray(magnitude[b], np.float64) * np.exp(1j * np.asarray(phase[b], np.float64)),
                              64, 16, 64, 9 * 16) for b in range(2)])
    np.testing.assert_allclose(audio, want, atol=1e-4 * np.abs(want).max())
    grads = jax.jit(jax.grad(lambda p: jnp.mean(model.apply(p, mel) ** 2)))(params)  # through the magnitude only
    for name in ("embed", "head"):
        g = np.asarray(grads["params"][name]["kernel"])
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0, name
    for bad in (dict(phase_output="vector"), dict(peak_phase_hz=1000.0)):
        with pytest.raises(ConfigError, match="phase 'gradient'"):
            dataclasses.replace(config.istft, **bad)
    for weight in ("phase_weight", "complex_weight"):
        with pytest.raises(ConfigError, match="predicts none"):
            dataclasses.replace(config, **{weight: 1.0})


def test_peak_phase_replaces_the_heads_phase_below_its_frequency_in_synthesis_only():
    """peak_phase_hz 1 000 on the tiny vocoder (8 000 Hz, n_fft 64: 125 Hz bins): the spectrum it inverts has the
    head's magnitude, `peak_locked_phase` of that magnitude in bins 0-7 and the head's phase in bins 8-32; the
    training loss's phase terms still compare the head's phase, while its audio is the synthesis spectrum's; 0 (and
    old configs) leave the head's phase; frequencies outside [0, Nyquist] are refused."""
    from mmspeech_jax.audio.peak_phase import peak_locked_phase
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.models.vocoder import _istft_with_spectrum_losses

    base = tiny_config()
    config = dataclasses.replace(base, istft=dataclasses.replace(base.istft, peak_phase_hz=1000.0))
    mel = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 8))
    model = ISTFTVocoder(config.istft)
    params = model.init(jax.random.PRNGKey(0), mel)
    magnitude, phase = (np.asarray(x, np.float64) for x in model.apply(params, mel,
                                                                        method=ISTFTVocoder.magnitude_and_phase))
    spectrum = np.asarray(model.apply(params, mel, method=ISTFTVocoder.spectrum), np.complex128)
    peaks = np.asarray(peak_locked_phase(jnp.asarray(magnitude), 64, 16), np.float64)
    want = magnitude * np.exp(1j * np.concatenate([peaks[..., :8], phase[..., 8:]], -1))
    np.testing.assert_allclose(spectrum, want, atol=1e-4 * np.abs(want).max())
    assert np.abs(np.angle(spectrum[..., :8] / (magnitude[..., :8] * np.exp(1j * phase[..., :8])))).max() > 0.1
    plain = np.asarray(ISTFTVocoder(base.istft).apply(params, mel, method=ISTFTVocoder.spectrum))
    np.testing.assert_allclose(plain, magnitude * np.exp(1j * phase), atol=1e-4 * np.abs(want).max())
    # Training: the audio is the synthesis spectrum's, the phase terms the head's.
    context = jax.random.normal(jax.random.PRNGKey(2), (2, 9 * 16 + 64))
    audio, parts = _istft_with_spectrum_losses(config, params["params"], mel, context)
    np.testing.assert_allclose(audio, np.asarray(istft(jnp.asarray(spectrum, jnp.complex64), config.istft.stft_config)),
                               atol=1e-5)
    _, plain_parts = _istft_with_spectrum_losses(base, params["params"], mel, context)
    np.testing.assert_allclose(parts["complex_l1"], plain_parts["complex_l1"], rtol=1e-6)
    assert ISTFTVocoderConfig.from_dict({"n_mels": 8}).peak_phase_hz == 0.0
    for bad in (-1.0, 4001.0):
        with pytest.raises(ConfigError, match="peak_phase_hz"):
            dataclasses.replace(base.istft, peak_phase_hz=bad)


def test_pinv_magnitude_prior_multiplies_the_head_by_the_mels_least_squares_inverse():
    """magnitude_prior "pinv": with the head's magnitude rows zeroed, the magnitude is the float64 NumPy
    pseudo-inverse of the mel filterbank applied to exp(log_mel), clipped below at the log floor and above at 100;
    with the head's own numbers it is that times exp(head), i.e. the "none" magnitude times the prior. The phase does
    not change; a prior whose mel differs from the features is a ConfigError; old configs read "none"."""
    from mmspeech_jax.audio.features import mel_filterbank
    from mmspeech_jax.errors import ConfigError

    base = tiny_config()
    prior_istft = dataclasses.replace(base.istft, magnitude_prior="pinv", mel_fmax_hz=4000.0)
    config = dataclasses.replace(base, istft=prior_istft)
    mel = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 8)) - 3.0
    params = ISTFTVocoder(prior_istft).init(jax.random.PRNGKey(0), mel)
    apply = lambda c, p: [np.asarray(x, np.float64) for x in ISTFTVocoder(c).apply(
        p, mel, method=ISTFTVocoder.magnitude_and_phase)]
    bins = 33
    pinv = np.linalg.pinv(np.asarray(mel_filterbank(TINY_MEL), np.float64))  # (M, F)
    prior = np.maximum(np.exp(np.asarray(mel, np.float64)) @ pinv, 1e-5)
    head = params["params"]["head"]
    zeroed = {"params": {**params["params"], "head": {
        "kernel": head["kernel"].at[:, :bins].set(0.0), "bias": head["bias"].at[:bins].set(0.0)}}}
    magnitude, phase = apply(prior_istft, zeroed)
    np.testing.assert_allclose(magnitude, np.minimum(prior, 100.0), rtol=2e-4, atol=1e-9)
    with_head, phase_with_head = apply(prior_istft, params)
    plain, plain_phase = apply(base.istft, params)
    np.testing.assert_allclose(with_head, np.minimum(plain * prior, 100.0), rtol=2e-4, atol=1e-9)
    np.testing.assert_allclose(phase_with_head, plain_phase, atol=1e-6)
    assert config.istft.prior_mel_config == TINY_MEL
    with pytest.raises(ConfigError, match="magnitude prior inverts"):
        dataclasses.replace(base, istft=dataclasses.replace(prior_istft, mel_fmax_hz=3000.0))
    assert ISTFTVocoderConfig.from_dict({"n_mels": 8}).magnitude_prior == "none"
    with pytest.raises(ConfigError, match="magnitude_prior"):
        dataclasses.replace(base.istft, magnitude_prior="mel")


def test_vector_phase_output_is_the_angle_of_the_heads_two_numbers():
    """phase_output "vector": the head gives (log-magnitude, x, y) per bin and the phase is atan2(y, x) (+ the ramp),
    checked against float64 NumPy on the head's captured output; its gradient is finite; old configs read "angle"."""
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.models.istft_vocoder import centre_frequency_ramp

    config = dataclasses.replace(tiny_config().istft, phase="ramp", phase_output="vector")
    bins = config.n_fft // 2 + 1
    mel = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 8))
    model = ISTFTVocoder(config)
    params = model.init(jax.random.PRNGKey(0), mel)
    assert params["params"]["head"]["kernel"].shape[-1] == 3 * bins
    (magnitude, phase), state = model.apply(params, mel, method=ISTFTVocoder.magnitude_and_phase,
                                            capture_intermediates=True, mutable=["intermediates"])
    out = np.asarray(state["intermediates"]["head"]["__call__"][0], np.float64)
    want = np.arctan2(out[..., 2 * bins:], out[..., bins:2 * bins]) + np.asarray(centre_frequency_ramp(10, 64, 16))
    np.testing.assert_allclose(np.exp(1j * np.asarray(phase, np.float64)), np.exp(1j * want), atol=1e-5)
    np.testing.assert_allclose(magnitude, np.minimum(np.exp(out[..., :bins]), 100.0), rtol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, mel) ** 2))(params)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))
    assert ISTFTVocoderConfig.from_dict({"n_mels": 8}).phase_output == "angle"
    with pytest.raises(ConfigError, match="phase_output"):
        dataclasses.replace(config, phase_output="complex")


# ---- losses ----------------------------------------------------------------------------------------------------

def test_reconstruction_losses_match_float64_numpy():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(2, 2, 640)) * 0.3
    convergence, log_l1 = losses.multi_resolution_stft(jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32),
                                                       TINY_RESOLUTIONS, 8000)
    ref_c, ref_l = np.zeros(2), np.zeros(2)
    for n_fft, hop, win in TINY_RESOLUTIONS:
        s_r, s_f = np.abs(np_stft(real, n_fft, hop, win)), np.abs(np_stft(fake, n_fft, hop, win))
        ref_c += np.sqrt(((s_r - s_f) ** 2).sum((1, 2))) / np.sqrt((s_r ** 2).sum((1, 2)))
        ref_l += np.abs(np.log(np.maximum(s_r, 1e-7)) - np.log(np.maximum(s_f, 1e-7))).mean((1, 2))
    np.testing.assert_allclose(convergence, ref_c / 2, rtol=1e-4)
    np.testing.assert_allclose(log_l1, ref_l / 2, rtol=1e-4)
    a, b = rng.normal(size=(2, 3, 5, 4))
    np.testing.assert_allclose(losses.mel_l1(jnp.asarray(a), jnp.asarray(b)), np.abs(a - b).mean((1, 2)), rtol=1e-6)


def test_adversarial_and_feature_matching_losses_match_numpy():
    rng = np.random.default_rng(2)
    make = lambda: [(rng.normal(size=(2, k)), [rng.normal(size=(2, k, 3)), rng.normal(size=(2, k))]) for k in (5, 7)]
    real, fake = make(), make()
    as_jax = lambda outs: [(jnp.asarray(s, jnp.float32), [jnp.asarray(f, jnp.float32) for f in fs]) for s, fs in outs]
    lsgan_d = sum(((1 - r) ** 2).mean(1) + (f ** 2).mean(1) for (r, _), (f, _) in zip(real, fake))
    hinge_d = sum(np.maximum(1 - r, 0).mean(1) + np.maximum(1 + f, 0).mean(1) for (r, _), (f, _) in zip(real, fake))
    np.testing.assert_allclose(losses.discriminator_loss(as_jax(real), as_jax(fake), "lsgan"), lsgan_d, rtol=1e-5)
    np.testing.assert_allclose(losses.discriminator_loss(as_jax(real), as_jax(fake), "hinge"), hinge_d, rtol=1e-5)
    np.testing.assert_allclose(losses.generator_adversarial_loss(as_jax(fake), "lsgan"),
                               sum(((1 - f) ** 2).mean(1) for f, _ in fake), rtol=1e-5)
    np.testing.assert_allclose(losses.generator_adversarial_loss(as_jax(fake), "hinge"),
                               sum(np.maximum(1 - f, 0).mean(1) for f, _ in fake), rtol=1e-5)
    fm = sum(np.abs(a - b).reshape(2, -1).mean(1) for (_, fa), (_, fb) in zip(real, fake) for a, b in zip(fa, fb))
    np.testing.assert_allclose(losses.feature_matching(as_jax(real), as_jax(fake)), fm, rtol=1e-5)


def np_wrapped_distance(x):
    """|angle(exp(i x))|: the distance from 0 on the circle, by the complex exponential (not by rounding)."""
    return np.abs(np.angle(np.exp(1j * np.asarray(x, np.float64))))


def test_phase_losses_match_float64_numpy_and_ignore_whole_turns():
    rng = np.random.default_rng(4)
    true, predicted = rng.uniform(-3 * np.pi, 3 * np.pi, size=(2, 2, 6, 9))
    d = predicted - true
    want = (np_wrapped_distance(d).mean((1, 2)), np_wrapped_distance(np.diff(d, axis=2)).mean((1, 2)),
            np_wrapped_distance(np.diff(d, axis=1)).mean((1, 2)))
    as32 = lambda x: jnp.asarray(x, jnp.float32)
    got = losses.phase_losses(as32(true), as32(predicted))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=2e-5)
    turns = rng.integers(-3, 4, size=predicted.shape) * 2 * np.pi  # whole turns per bin change nothing
    for g, w in zip(losses.phase_losses(as32(true), as32(predicted + turns)), want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    # A constant offset costs only the instantaneous phase; a frequency shift (phase growing 0.3 rad a frame) costs
    # the instantaneous angular frequency 0.3 and no group delay.
    ip, gd, iaf = losses.phase_losses(as32(true), as32(true + 0.7))
    np.testing.assert_allclose([ip, gd, iaf], [[0.7, 0.7], [0, 0], [0, 0]], atol=1e-5)
    ramp = 0.3 * np.arange(6)[None, :, None]
    ip, gd, iaf = losses.phase_losses(as32(true), as32(true + ramp))
    np.testing.assert_allclose(iaf, [0.3, 0.3], atol=1e-5)
    np.testing.assert_allclose(gd, [0, 0], atol=1e-5)
    np.testing.assert_allclose(ip, [np_wrapped_distance(ramp).mean()] * 2, atol=1e-5)
    a, b = rng.normal(size=(2, 2, 6, 9)) + 1j * rng.normal(size=(2, 2, 6, 9))
    np.testing.assert_allclose(losses.complex_l1(jnp.asarray(a, jnp.complex64), jnp.asarray(b, jnp.complex64)),
                               (np.abs((b - a).real) + np.abs((b - a).imag)).mean((1, 2)), rtol=1e-5)


def test_phase_loss_compares_the_head_with_the_recordings_own_frames():
    """The loss's phase terms = APNet's losses between the head's phase and a float64 NumPy STFT of the context
    (frame t centred on crop sample t * hop); its audio = `generate`'s; HiFi-GAN (no phase head) refuses the
    weight."""
    config = tiny_config(phase_weight=2.0, complex_weight=3.0)
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    batch = jax.tree_util.tree_map(jnp.asarray, tiny_batch(config))
    loss, parts = make_vocoder_loss_fn(config, adversarial=False)(params, batch, None, True, 0)
    mel_in = input_log_mel(config, batch["context"])
    head_magnitude, head_phase = ISTFTVocoder(config.istft).apply({"params": params["generator"]}, mel_in,
                                                                  method=ISTFTVocoder.magnitude_and_phase)
    context = np.asarray(batch["context"], np.float64)
    frames = (context.shape[1] - 64) // 16 + 1  # windows context[t * hop: t * hop + n_fft], centred on crop sample t * hop
    idx = np.arange(frames)[:, None] * 16 + np.arange(64)[None]
    true_spectrum = np.fft.rfft(context[:, idx] * np_window(64, 64), axis=-1)
    true_phase = np.angle(true_spectrum)
    assert true_phase.shape == head_phase.shape
    d = np.asarray(head_phase, np.float64) - true_phase
    want = {"phase_instantaneous": np_wrapped_distance(d).mean(),
            "phase_group_delay": np_wrapped_distance(np.diff(d, axis=2)).mean(),
            "phase_frequency": np_wrapped_distance(np.diff(d, axis=1)).mean()}
    head = np.asarray(head_magnitude, np.float64) * np.exp(1j * np.asarray(head_phase, np.float64))
    complex_l1 = (np.abs((head - true_spectrum).real) + np.abs((head - true_spectrum).imag)).mean()
    np.testing.assert_allclose(parts["complex_l1"], complex_l1, rtol=1e-4)
    for name, value in want.items():
        np.testing.assert_allclose(parts[name], value, rtol=1e-4, atol=1e-5)
    fake = generate(config, params["generator"], mel_in)
    conv, log_l1 = losses.multi_resolution_stft(batch["audio"], fake, TINY_RESOLUTIONS, 8000)
    mel = lambda x: log_mel_spectrogram(x, config.mel)
    expected = (45 * losses.mel_l1(mel(batch["audio"]), mel(fake)).mean() + 15 * (conv + log_l1).mean()
                + 2.0 * sum(want.values()) + 3.0 * complex_l1)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    from mmspeech_jax.errors import ConfigError

    for weight in ("phase_weight", "complex_weight"):
        with pytest.raises(ConfigError, match="complex_weight"):
            tiny_config("hifigan", **{weight: 1.0})


# ---- the GAN loss ----------------------------------------------------------------------------------------------

def tiny_batch(config, rows=2, frames=8, seed=3):
    rng = np.random.default_rng(seed)
    samples = frames * config.hop_samples
    context = (rng.normal(size=(rows, samples + config.mel.n_fft)) * 0.2).astype(np.float32)
    half = config.mel.n_fft // 2
    return {"audio": context[:, half: half + samples], "context": context}


@pytest.mark.parametrize("generator", [pytest.param("istft", marks=pytest.mark.slow), "hifigan"])  # the heaviest variant runs in `make test-slow`; the other keeps the fast suite's coverage
def test_gan_gradients_reach_each_part_only_from_its_own_terms(generator):
    """d/dG of the one scalar = d/dG of the generator's terms with D frozen; d/dD = d/dD of the discriminator's
    loss with the generated audio frozen."""
    config = tiny_config(generator)
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    batch = jax.tree_util.tree_map(jnp.asarray, tiny_batch(config))
    grads = jax.jit(jax.grad(lambda p: make_vocoder_loss_fn(config)(p, batch, None, True, 0)[0]))(params)
    disc = Discriminators(config.discriminator)
    d_apply = lambda p, x: disc.apply({"params": p}, x)
    mel = lambda x: log_mel_spectrogram(x, config.mel)

    def generator_terms(g):
        fake = generate(config, g, input_log_mel(config, batch["context"]))
        conv, log_l1 = losses.multi_resolution_stft(batch["audio"], fake, TINY_RESOLUTIONS, 8000)
        real_out, fake_out = d_apply(params["discriminator"], batch["audio"]), d_apply(params["discriminator"], fake)
        per_row = (45 * losses.mel_l1(mel(batch["audio"]), mel(fake)) + 15 * (conv + log_l1)
                   + losses.generator_adversarial_loss(fake_out) + 2 * losses.feature_matching(real_out, fake_out))
        return jnp.mean(per_row)

    fake = generate(config, params["generator"], input_log_mel(config, batch["context"]))
    d_terms = lambda d: jnp.mean(losses.discriminator_loss(d_apply(d, batch["audio"]), d_apply(d, fake)))
    for got, want in ((grads["generator"], jax.jit(jax.grad(generator_terms))(params["generator"])),
                      (grads["discriminator"], jax.jit(jax.grad(d_terms))(params["discriminator"]))):
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6)
    warm = jax.jit(jax.grad(lambda p: make_vocoder_loss_fn(config, adversarial=False)(p, batch, None, True, 0)[0]))(
        params)
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree_util.tree_leaves(warm["discriminator"]))


def test_phases_and_separate_optimizers():
    config = tiny_config()
    assert phases(config, 10) == [(10, True)]
    assert phases(tiny_config(adversarial_start=4), 10) == [(4, False), (10, True)]
    assert phases(tiny_config(adversarial_start=None), 10) == [(10, False)]
    assert phases(tiny_config(adversarial_start=20), 10) == [(10, False)]
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    g_opt, d_opt = OptimizerConfig(1e-3, 0, 10, clip_norm=1e9), OptimizerConfig(1e-1, 0, 10, clip_norm=1e9)
    tx = make_vocoder_optimizer(g_opt, d_opt)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates = jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(grads, params)  # compiled: op by op took 20 s
    # Adam's first update is -lr * sign(g) (+ decay): each part moves by its own learning rate.
    g_step = jax.tree_util.tree_leaves(updates["generator"])[0]
    d_step = jax.tree_util.tree_leaves(updates["discriminator"])[0]
    assert abs(float(jnp.abs(g_step).max()) - 1e-3) < 1e-5 and abs(float(jnp.abs(d_step).max()) - 1e-1) < 1e-3


def test_config_round_trips_and_rejects_mismatched_features():
    config = tiny_config("hifigan", adversarial_start=3)
    assert VocoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    from mmspeech_jax.errors import ConfigError

    with pytest.raises(ConfigError, match="hop"):
        VocoderConfig(mel=TINY_MEL)  # the default generator has 80 mels at hop 256


# ---- data ------------------------------------------------------------------------------------------------------

def test_crop_context_mel_equals_the_feature_cache_frames(small_corpus):
    """Crops at an utterance's start, middle and end: log_mel(context, center=False) = the utterance's frames."""
    mel_config = MelConfig()
    source = corpus_crop_source(small_corpus, "train")
    crops = WaveformCrops(source, 2, 16, mel_config.hop_samples, mel_config.n_fft)
    from mmspeech_jax.data.waveform_crops import read_crop

    full = np.asarray(source.read(0, 0, int(source.lengths[0])))
    frames = padded_log_mel_and_energy(full, mel_config)[0]
    for start in (0, int(crops._last_frame[0]) // 2, int(crops._last_frame[0])):
        audio, context = read_crop(source, 0, start, 16, mel_config.hop_samples, mel_config.n_fft)
        np.testing.assert_array_equal(audio, full[start * 256: start * 256 + 16 * 256])
        mel = np.asarray(log_mel_spectrogram(context, mel_config, center=False))
        np.testing.assert_allclose(mel, frames[start: start + 17], atol=1e-4)
    first = crops.batch(5)
    np.testing.assert_array_equal(first["audio"], crops.batch(5)["audio"])  # a pure function of (seed, index)
    crops.set_state({"position": 5})
    np.testing.assert_array_equal(next(crops)["context"], first["context"])
    assert crops.get_state() == {"position": 6}


def test_context_frames_let_the_loss_score_the_crop_as_inside_its_utterance():
    """context_frames R = 12 (more than the tiny iSTFT generator's reach, 9 frames plus the inverse STFT's overlap):
    the crop's context and teacher-forced mels gain R frames on each side (the utterance's frames, reflected at its
    start), and the loss's mel L1 and complex L1 are those of the crop's samples cut out of a generation of the whole
    utterance, computed by hand. With R = 0 the generator sees the crop's ends and the numbers differ."""
    from mmspeech_jax.data.waveform_crops import read_crop, reflected_frames
    from mmspeech_jax.errors import ConfigError

    r, segment, hop, n_fft = 12, 8, 16, 64
    full = rng_audio(3)
    source = CropSource(np.array([full.size]), lambda i, a, b: full[a:b], 8000)
    whole_mel = np.asarray(log_mel_spectrogram(jnp.asarray(full), TINY_MEL))
    for frame in (2, 100):
        audio, context = read_crop(source, 0, frame, segment, hop, n_fft, context_frames=r)
        np.testing.assert_array_equal(audio, full[frame * hop: (frame + segment) * hop])
        mel = np.asarray(log_mel_spectrogram(jnp.asarray(context), TINY_MEL, center=False))
        assert mel.shape[0] == segment + 1 + 2 * r
        if frame == 100:
            np.testing.assert_allclose(mel, whole_mel[frame - r: frame + segment + r + 1], atol=1e-4)
        else:  # frames before 0 are the reflected recording's: the cache's own frames 1 .. r - frame - 1 mirrored
            np.testing.assert_allclose(mel[r - frame + 1:], whole_mel[1: frame + segment + r + 1], atol=1e-4)
    mels = np.arange(20.0)[:, None] * np.ones((1, 3))
    crops = WaveformCrops(source, 1, segment, hop, n_fft, mels=lambda i: mels, context_frames=r)
    batch = crops._collate([0], [100])
    np.testing.assert_array_equal(batch["log_mel"][0], reflected_frames(mels, 100 - r, segment + 1 + 2 * r))
    assert batch["context"].shape == (1, segment * hop + n_fft + 2 * r * hop)

    def warm_loss(config, params, batch):  # the warm-up phase's loss terms, compiled (op by op: 2-3x as long)
        loss_fn = make_vocoder_loss_fn(config, adversarial=False)
        return jax.jit(lambda p, b: loss_fn(p, b, None, True, 0))(params, batch)[1]

    def by_hand(config, params, frame):
        audio = full[frame * hop: (frame + segment) * hop]
        generated = np.asarray(jax.jit(lambda p, m: generate(config, p, m))(params["generator"],
                                                                            jnp.asarray(whole_mel)[None]))[0]
        fake = generated[frame * hop: (frame + segment) * hop]
        mel_l1 = np.abs(np.asarray(log_mel_spectrogram(jnp.asarray(audio), TINY_MEL))
                        - np.asarray(log_mel_spectrogram(jnp.asarray(fake), TINY_MEL))).mean()
        return mel_l1

    for context_frames, same in ((r, True), (0, False)):
        config = tiny_config(complex_weight=1.0, context_frames=context_frames)
        params = init_vocoder_params(config, jax.random.PRNGKey(0))
        audio, context = read_crop(source, 0, 100, segment, hop, n_fft, context_frames=context_frames)
        batch = {"audio": jnp.asarray(audio)[None], "context": jnp.asarray(context)[None]}
        parts = warm_loss(config, params, batch)
        want = by_hand(config, params, 100)
        assert np.isclose(float(parts["mel_l1"]), want, rtol=1e-3) == same, (context_frames, parts["mel_l1"], want)
    # complex L1 (R = 12): the head's spectrum of the crop's frames only, against a float64 NumPy STFT of them.
    config = tiny_config(complex_weight=1.0, context_frames=r)
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    audio, context = read_crop(source, 0, 100, segment, hop, n_fft, context_frames=r)
    parts = warm_loss(config, params, {"audio": jnp.asarray(audio)[None], "context": jnp.asarray(context)[None]})
    magnitude, phase = ISTFTVocoder(config.istft).apply(
        {"params": params["generator"]}, input_log_mel(config, jnp.asarray(context)[None]),
        method=ISTFTVocoder.magnitude_and_phase)
    head = (np.asarray(magnitude, np.float64) * np.exp(1j * np.asarray(phase, np.float64)))[0, r: r + segment + 1]
    idx = (r + np.arange(segment + 1))[:, None] * hop + np.arange(n_fft)[None]
    true = np.fft.rfft(np.asarray(context, np.float64)[idx] * np_window(n_fft, n_fft), axis=-1)
    want = (np.abs((head - true).real) + np.abs((head - true).imag)).mean()
    np.testing.assert_allclose(float(parts["complex_l1"]), want, rtol=1e-4)
    with pytest.raises(ConfigError, match="context_frames"):
        tiny_config(context_frames=-1)


def test_short_utterances_are_left_out_and_counted():
    lengths = np.array([100, 5000, 30])
    source = CropSource(lengths, lambda i, a, b: np.zeros(b - a, np.float32), 8000)
    crops = WaveformCrops(source, 4, 8, 16, 64)
    assert crops.skipped == 2 and set(np.unique(crops.batch(0)["audio"].shape)) == {4, 128}


# ---- training --------------------------------------------------------------------------------------------------

@pytest.mark.slow  # ~1-2 min on 2 cores: `make test-slow`
def test_fit_resumes_exactly_across_the_phase_change(tmp_path):
    """Steps 1-2 warm-up, 3-4 adversarial: one run of 4 steps equals a run stopped after 3 and restarted."""
    from mmspeech_jax.train.trainer import TrainerConfig, fit

    config = tiny_config("istft", adversarial_start=2)
    source = CropSource(np.array([3000, 4000, 2500]), lambda i, a, b: rng_audio(i)[a:b], 8000)
    tx = make_vocoder_optimizer(OptimizerConfig(1e-3, 0, 4), OptimizerConfig(1e-3, 0, 4))
    params = init_vocoder_params(config, jax.random.PRNGKey(0))

    def run(workdir, steps):
        batches = WaveformCrops(source, 2, 8, 16, 64, seed=1)
        result = None
        for last, adversarial in phases(config, steps):
            result = fit(workdir, params, tx, make_vocoder_loss_fn(config, adversarial), batches,
                         TrainerConfig(steps=last, checkpoint_every=1, eval_every=100, progress=False))
        return result.state

    straight = run(tmp_path / "straight", 4)
    run(tmp_path / "resumed", 3)
    resumed = run(tmp_path / "resumed", 4)
    assert int(resumed.step) == 4
    for a, b in zip(jax.tree_util.tree_leaves(straight.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()), straight.params["discriminator"],
                                   params["discriminator"])
    assert max(jax.tree_util.tree_leaves(moved)) > 0  # the adversarial phase trained the discriminator


def rng_audio(i):
    return (np.random.default_rng(i).normal(size=5000) * 0.2).astype(np.float32)


@pytest.mark.slow  # ~1-2 min on 2 cores: `make test-slow`
def test_adversarial_step_on_a_mesh_equals_one_device():
    from mmspeech_jax.train.sharding import MeshConfig, make_mesh, make_sharded_steps, shard_batch, state_shardings

    config = tiny_config("hifigan")
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    batch = tiny_batch(config, rows=8)
    loss_fn = make_vocoder_loss_fn(config)
    tx = optax.sgd(0.05)
    rng = jax.random.key(0, impl="rbg")
    reference, ref_metrics = jax.jit(make_train_step(loss_fn, tx))(TrainState.create(params, tx), batch, rng)
    for data, fsdp in ((8, 1), (2, 4)):
        mesh = make_mesh(MeshConfig(data=data, fsdp=fsdp))
        state = TrainState.create(params, tx)
        sharding = state_shardings(state, mesh)
        step, _, _ = make_sharded_steps(loss_fn, tx, sharding, mesh)
        new, metrics = step(jax.device_put(state, sharding), shard_batch(batch, mesh), rng)
        np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(jax.device_get(new.params)),
                        jax.tree_util.tree_leaves(jax.device_get(reference.params))):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


@pytest.mark.slow  # ~1-2 min on 2 cores: `make test-slow`
def test_micro_batches_give_the_whole_batch_gradient():
    config = tiny_config("istft")
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    batch = tiny_batch(config, rows=4)
    loss_fn = make_vocoder_loss_fn(config)
    tx = optax.sgd(0.05)
    rng = jax.random.key(0, impl="rbg")
    whole, m1 = jax.jit(make_train_step(loss_fn, tx))(TrainState.create(params, tx), batch, rng)
    split, m2 = jax.jit(make_train_step(loss_fn, tx, micro_batches=2))(TrainState.create(params, tx), batch, rng)
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(split.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_bf16_compute_keeps_float32_parameters_and_stays_finite():
    import dataclasses

    config = tiny_config("hifigan")
    config = dataclasses.replace(config, hifigan=dataclasses.replace(config.hifigan, compute_dtype="bfloat16"),
                                 discriminator=dataclasses.replace(config.discriminator, compute_dtype="bfloat16"))
    params = init_vocoder_params(config, jax.random.PRNGKey(0))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
    loss_fn = make_vocoder_loss_fn(config)
    loss, parts = jax.jit(lambda p, b: loss_fn(p, b, None, True, 0))(params, tiny_batch(config))
    assert np.isfinite(float(loss)) and float(parts["discriminator"]) > 0


# ---- quality metrics -------------------------------------------------------------------------------------------

def test_pesq_and_stoi_rank_clean_above_noisy(small_corpus):
    from mmspeech_jax.evaluate.vocoder_quality import pesq_wideband, stoi

    speech = small_corpus.audio(small_corpus.utterances[0])
    noisy = speech + np.random.default_rng(0).normal(size=speech.size).astype(np.float32) * 0.05
    assert pesq_wideband(speech, speech, 22050) > 4.4 and stoi(speech, speech, 22050) > 0.99
    assert pesq_wideband(speech, noisy, 22050) < 3.0 and stoi(speech, noisy, 22050) < 0.95


# ---- the experiment, inference, export, CLI ---------------------------------------------------------------------

# A small generator and discriminators for the experiment's runs (a run initialised from another needs the same).
SMALL_VOCODER = ["--set", "istft.dim=32", "--set", "istft.intermediate=64", "--set", "istft.layers=2",
                 "--set", "discriminator.periods=[2,3]", "--set", "discriminator.channel_scale=0.0625"]


@pytest.fixture(scope="module")
def vocoder_run(tmp_path_factory, tiny_run_cache):
    workdir = tmp_path_factory.mktemp("vocoder") / "run"
    # Two simulated devices, data-parallel (--mesh reaches the trainer); the 8-device equality of the adversarial
    # step is `test_adversarial_step_on_a_mesh_equals_one_device` (make test-slow). 8 devices here cost ~1 min, and
    # the small generator and discriminators (`--set`) half as much again.
    env = {**__import__("os").environ, "MMSPEECH_CACHE_DIR": str(tiny_run_cache),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    args = [sys.executable, "-m", "experiments.vocoder", "--workdir", str(workdir), "--steps", "4",
            "--adversarial_start", "2", "--eval_every", "2", "--checkpoint_every", "2", "--batch_size", "8",
            "--segment_frames", "8", "--corpus_size", "32", "--eval_utterances", "2", "--num_samples", "1",
            "--no_progress", "--mesh", "2x1", *SMALL_VOCODER]
    subprocess.run(args, env=env, cwd=ROOT, check=True, capture_output=True, timeout=900)
    return workdir, env


def test_experiment_writes_report_samples_and_both_phases(vocoder_run):
    workdir, _ = vocoder_run
    report = json.loads((workdir / "report.json").read_text())
    assert report["steps"] == 4 and report["adversarial_start"] == 2
    assert json.loads((workdir / "config.json").read_text())["mesh"] == {"data": 2, "fsdp": 1, "min_shard_size": 1024}
    assert report["copy_synthesis"]["vocoder"]["utterances"] == report["copy_synthesis"]["griffin_lim"]["utterances"] >= 1
    for name in ("vocoder", "griffin_lim"):
        assert 0 < report[f"{name}_stoi"] <= 1 and report[f"{name}_real_time_factor"] > 0
    assert (workdir / "samples" / "val_0_vocoder.wav").is_file() and (workdir / "plots" / "val_0.png").is_file()
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in logged if r["split"] == "train"}
    assert train[2]["discriminator"] == 0 and train[4]["discriminator"] > 0  # warm-up, then adversarial


def test_vocoder_from_workdir_export_and_batches_agree(vocoder_run, tmp_path):
    from mmspeech_jax.cli import main
    from mmspeech_jax.vocode import Vocoder

    workdir, _ = vocoder_run
    vocoder = Vocoder.from_workdir(workdir)
    assert vocoder.checkpoint_step == 4
    mels = [np.random.default_rng(k).normal(-4, 1, size=(n, 80)).astype(np.float32) for k, n in enumerate((30, 90))]
    singles = [vocoder(m) for m in mels]
    assert [a.shape[0] for a in singles] == [29 * 256, 89 * 256]
    for a, b in zip(singles, vocoder.batch(mels, batch_size=2)):
        np.testing.assert_allclose(a, b, atol=1e-5)  # same padded rung: batching changes nothing
    # The rung's padding repeats the mel's last frame: the generator's output on that block, cut.
    block = np.concatenate([mels[0], np.repeat(mels[0][-1:], 128 - 30, axis=0)])[None]
    want = np.asarray(generate(vocoder.config, vocoder.params, jnp.asarray(block)))[0, : 29 * 256]
    np.testing.assert_allclose(singles[0], want, atol=1e-5)
    assert main(["export", "--workdir", str(workdir), "--out", str(tmp_path / "export")]) == 0
    exported = Vocoder.from_workdir(tmp_path / "export")
    np.testing.assert_array_equal(exported(mels[0]), singles[0])
    from mmspeech_jax.errors import FeatureError

    with pytest.raises(FeatureError, match="shape"):
        vocoder(np.zeros((10, 79), np.float32))


def test_cli_vocode_writes_wavs_and_reports_bad_inputs(vocoder_run, tmp_path, small_corpus, capsys):
    import soundfile as sf

    from mmspeech_jax.cli import main

    workdir, _ = vocoder_run
    np.save(tmp_path / "mel.npy", np.full((40, 80), -5.0, np.float32))
    wav = small_corpus.root / small_corpus.utterances[0].audio_path
    (tmp_path / "bad.npy").write_text("not an array")
    status = main(["vocode", "--vocoder", str(workdir), str(tmp_path / "mel.npy"), str(wav), str(tmp_path / "bad.npy"),
                   "--out-dir", str(tmp_path / "out")])
    assert status == 1 and "bad.npy" in capsys.readouterr().err
    audio, rate = sf.read(tmp_path / "out" / "mel.wav")
    assert rate == 22050 and audio.size == 39 * 256
    assert (tmp_path / "out" / f"{Path(wav).stem}.wav").is_file()


@pytest.mark.slow  # with a FastSpeech2 workdir to train: `make test-slow`
def test_fine_tuning_on_teacher_forced_mels(vocoder_run, tiny_tts_workdir, tiny_run_cache, tmp_path):
    """--tts_workdir: the TTS's teacher-forced mels (the recordings' frame count, not the recordings' mels) feed the
    vocoder, started from --init_vocoder's parameters."""
    from mmspeech_jax.data import CorpusConfig, embedded_feature_cache
    from mmspeech_jax.data.teacher_forced import TeacherForcedMels
    from mmspeech_jax.workdir import restore_params

    source, env = vocoder_run
    workdir = tmp_path / "finetuned"
    args = [sys.executable, "-m", "experiments.vocoder", "--workdir", str(workdir), "--steps", "2",
            "--eval_every", "2", "--checkpoint_every", "2", "--batch_size", "2", "--segment_frames", "8",
            "--corpus_size", "32", "--eval_utterances", "1", "--num_samples", "0", "--no_progress",
            "--tts_workdir", str(tiny_tts_workdir), "--tts_utterances", "5", "--init_vocoder", str(source),
            "--adversarial_start", "never", *SMALL_VOCODER]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "initialized from" in done.stdout and "teacher-forced mels: 5 training utterances" in done.stdout
    mels = TeacherForcedMels(workdir / "teacher_forced")
    cache = __import__("tests.conftest", fromlist=["_with_cache_dir"])._with_cache_dir(
        tiny_run_cache, lambda: embedded_feature_cache(CorpusConfig(num_utterances=32), progress=False))
    assert len(mels.rows) == 5 and all(cache.splits[int(r)] == "train" for r in mels.rows)
    for row in mels.rows:
        true = cache[int(row)]["mel"]
        assert mels[row].shape == true.shape and not np.allclose(mels[row], true, atol=1e-3)
    start, _ = restore_params(source)
    tuned, step = restore_params(workdir)
    assert step == 2
    moved = [float(np.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(start["generator"]),
                                                         jax.tree_util.tree_leaves(tuned["generator"]))]
    assert 0 < max(moved) < 0.1  # trained on from the given vocoder, not from a fresh init


@pytest.mark.slow  # with a FastSpeech2 workdir to train: `make test-slow`
def test_cli_synthesizes_a_text_file_through_the_vocoder(vocoder_run, tiny_tts_workdir, tmp_path, capsys):
    import soundfile as sf

    from mmspeech_jax.cli import main

    workdir, _ = vocoder_run
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello there.\n\nA second sentence, a little longer than the first.\n\u0007\u0007\n")
    status = main(["synthesize", "--workdir", str(tiny_tts_workdir), "--text-file", str(lines), "--out-dir",
                   str(tmp_path / "wavs"), "--vocoder", str(workdir), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert status == 1 and "line 4" in err  # the bad line is reported, the others are spoken
    for name in ("0001.wav", "0003.wav"):
        audio, rate = sf.read(tmp_path / "wavs" / name)
        assert rate == 22050 and audio.size > 0 and np.abs(audio).max() > 0


@pytest.mark.slow  # with a FastSpeech2 workdir to train: `make test-slow`
def test_a_vocoder_for_other_features_is_refused(tiny_tts_workdir):
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.vocode import Vocoder

    config = tiny_config()
    vocoder = Vocoder(config, init_vocoder_params(config, jax.random.PRNGKey(0))["generator"])
    with pytest.raises(ConfigError, match="same features"):
        Synthesizer.from_workdir(tiny_tts_workdir).use_vocoder(vocoder)


@pytest.mark.slow  # with a FastSpeech2 workdir to train: `make test-slow`
def test_stablehlo_text_to_waveform_runs_without_the_model_code(vocoder_run, tiny_tts_workdir, tmp_path):
    """One artifact, FastSpeech2 + the neural vocoder: the same waveform as the Python composition."""
    from mmspeech_jax.cli import main
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config
    from mmspeech_jax.serialized import load_artifact
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.vocode import Vocoder
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    workdir, _ = vocoder_run
    out = tmp_path / "hlo"
    assert main(["export", "--workdir", str(tiny_tts_workdir), "--out", str(out), "--stablehlo", "--max-tokens", "32",
                 "--max-frames", "64", "--vocoder", str(workdir)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["vocoder"]["step"] == 4 and "text_to_waveform" in manifest["artifacts"]
    tokens = np.zeros((2, 32), np.int32)
    ids = Synthesizer.from_workdir(tiny_tts_workdir).tokenizer.encode("Hello there.")
    tokens[:, : ids.size] = ids
    tokens[1, ids.size - 2:] = 0
    wave, sample_mask, durations, truncated = load_artifact(out / "text_to_waveform.jax")(tokens, tokens > 0)
    assert wave.shape == (2, 63 * 256) and sample_mask.shape == wave.shape
    model = FastSpeech2(FastSpeech2Config.from_dict(read_workdir_config(tiny_tts_workdir)["model"]))
    params, _ = restore_params(tiny_tts_workdir)
    mel, frame_mask, _ = model.apply({"params": params}, tokens, tokens > 0, 64, method=FastSpeech2.generate)
    vocoder = Vocoder.from_workdir(workdir)
    mel = jnp.where(frame_mask[..., None], mel, np.log(1e-5))
    expected = np.asarray(generate(vocoder.config, vocoder.params, mel))
    # Two compilations of one float32 program: the phase-gradient recurrence (the default preset's phase) rounds
    # differently in each, ~1e-5 of the waveform's peak (16 for this 4-step generator).
    np.testing.assert_allclose(np.asarray(wave), expected, atol=2e-5 * np.abs(expected).max())
    np.testing.assert_array_equal(np.asarray(sample_mask).sum(1), (np.asarray(frame_mask).sum(1) - 1) * 256)


def test_sptk_mcd_is_zero_for_the_same_audio_and_the_gain_formula_for_a_scaled_copy(small_corpus):
    """Scaling a signal by g (where no frame is silent) shifts only c0 of its mel-cepstrum, by ln g: MCD = 10 / ln 10 * sqrt(2) * |ln g| dB
    (4.257 dB for g = 2), the published formula with c0 included."""
    from mmspeech_jax.evaluate.mcd import mcd_sptk, sptk_mel_cepstrum

    speech = small_corpus.audio(small_corpus.utterances[0])
    assert mcd_sptk(speech, speech, 22050) == 0.0
    assert sptk_mel_cepstrum(speech, 22050).shape == ((speech.size - 1024) // 256 + 1, 35)
    noise = np.random.default_rng(0).normal(size=22050) * 0.1  # no frame below the periodogram's 1e-6 floor
    np.testing.assert_allclose(mcd_sptk(noise, 2 * noise, 22050), 10 / np.log(10) * np.sqrt(2) * np.log(2),
                               rtol=1e-3)


def test_loaded_crop_source_resamples_any_source_utterances():
    """The LJSpeech path: `SourceUtterance`s whose audio loads whole, at another rate, cropped at the vocoder's."""
    from mmspeech_jax.data.feature_cache import SourceUtterance
    from mmspeech_jax.data.waveform_crops import loaded_crop_source

    tone = lambda rate: (np.sin(2 * np.pi * 220 * np.arange(rate) / rate) * 0.5).astype(np.float32)
    utterances = [SourceUtterance(f"u{k}", "train", 0, "a.", lambda r=rate: (tone(r), r))
                  for k, rate in enumerate((16000, 22050))]
    source = loaded_crop_source(utterances, 22050)
    assert list(source.lengths) == [22050, 22050]
    crops = WaveformCrops(source, 2, 16, 256, 1024)
    batch = crops.batch(0)
    assert batch["audio"].shape == (2, 4096) and batch["context"].shape == (2, 5120)
    assert np.abs(batch["audio"]).max() > 0.4  # real samples, resampled, not padding
