"""Griffin-Lim: exact inverse STFT, convergence on a known magnitude, and log-mel -> audible waveform."""

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig, log_mel_spectrogram, mel_filterbank, stft
from mmspeech_jax.audio.griffin_lim import griffin_lim, istft, log_mel_to_waveform, mel_to_linear

SR = 22050


def signal(seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(130 + 40 * t) / SR
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 12))).astype(np.float32)


def overlap_add_reference(spectrum, config):
    """Independent float64 inverse: per-frame irfft, explicit loop overlap-add, window-square normalisation."""
    n, hop = config.n_fft, config.hop_samples
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    total = n + hop * (spectrum.shape[0] - 1)
    out, norm = np.zeros(total), np.zeros(total)
    for t, frame in enumerate(spectrum.astype(np.complex128)):
        out[t * hop : t * hop + n] += np.fft.irfft(frame, n) * window
        norm[t * hop : t * hop + n] += window**2
    return (out / np.where(norm > 1e-8, norm, 1))[n // 2 : n // 2 + hop * (spectrum.shape[0] - 1)]


def test_istft_inverts_stft():
    config = MelConfig()
    x = signal()
    spectrum = np.asarray(stft(x, config))
    y = np.asarray(istft(spectrum, config, x.size))
    np.testing.assert_allclose(y, x, atol=1e-5)
    ref = overlap_add_reference(spectrum, config)
    np.testing.assert_allclose(np.asarray(istft(spectrum, config)), ref, atol=1e-5)


def test_griffin_lim_converges_on_true_magnitude():
    config = MelConfig()
    x = signal()
    magnitude = np.abs(np.asarray(stft(x, config)))
    y = np.asarray(griffin_lim(magnitude, jax.random.PRNGKey(0), config, n_iter=60))
    rebuilt = np.abs(np.asarray(stft(y, config)))[: magnitude.shape[0]]
    convergence = np.linalg.norm(rebuilt - magnitude) / np.linalg.norm(magnitude)
    assert convergence < 0.1
    one_iteration = np.asarray(griffin_lim(magnitude, jax.random.PRNGKey(0), config, n_iter=1))
    worse = np.abs(np.asarray(stft(one_iteration, config)))[: magnitude.shape[0]]
    assert np.linalg.norm(worse - magnitude) / np.linalg.norm(magnitude) > convergence


def test_mel_to_linear_is_a_nonnegative_right_inverse_on_the_mel_range():
    config = MelConfig()
    magnitude = np.abs(np.asarray(stft(signal(), config)))
    mel = magnitude @ mel_filterbank(config)
    linear = np.asarray(mel_to_linear(mel, config))
    assert linear.min() >= 0
    remel = linear @ mel_filterbank(config)
    assert np.linalg.norm(remel - mel) / np.linalg.norm(mel) < 0.1


def test_log_mel_to_waveform_keeps_the_spectrogram():
    config = MelConfig()
    x = signal()
    log_mel = np.asarray(log_mel_spectrogram(x, config))
    y = np.asarray(log_mel_to_waveform(log_mel, jax.random.PRNGKey(1), config))
    assert y.shape == ((log_mel.shape[0] - 1) * config.hop_samples,) and np.all(np.isfinite(y))
    again = np.asarray(log_mel_spectrogram(y, config))[: log_mel.shape[0]]
    loud = log_mel > log_mel.max() - 6  # within ~50 dB of the peak
    assert np.mean(np.abs(again - log_mel)[loud]) < 0.6


def test_padded_griffin_lim_matches_the_unpadded_one_and_shares_its_program():
    """`frames`: the mel padded with silence to a ladder rung gives the unpadded waveform's length and a spectrogram
    as close to the target (the last n_fft/2 samples aside, equal within 0.05 of the unpadded run's error); mels of
    two lengths under one rung compile one program."""
    from mmspeech_jax.audio.griffin_lim import _log_mel_to_waveform

    config = MelConfig()
    x = signal(0.8)
    log_mel = np.asarray(log_mel_spectrogram(x, config))
    count = log_mel.shape[0]
    errors = {}
    for frames in (None, count + 57):
        y = np.asarray(log_mel_to_waveform(log_mel, jax.random.PRNGKey(1), config, frames=frames))
        assert y.shape == ((count - 1) * config.hop_samples,) and np.all(np.isfinite(y))
        again = np.asarray(log_mel_spectrogram(y, config))[: count - 2]
        loud = log_mel[: count - 2] > log_mel.max() - 6
        errors[frames] = np.mean(np.abs(again - log_mel[: count - 2])[loud])
    assert errors[count + 57] < 0.6 and abs(errors[count + 57] - errors[None]) < 0.05, errors
    before = _log_mel_to_waveform._cache_size()
    for length in (count - 10, count - 20):
        log_mel_to_waveform(log_mel[:length], jax.random.PRNGKey(1), config, frames=count + 57)
    assert _log_mel_to_waveform._cache_size() - before <= 1
