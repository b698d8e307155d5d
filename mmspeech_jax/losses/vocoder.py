"""The vocoders' losses, each returned per row ((B,) float32) so that the loss function can sum rows and divide by
the whole batch's row count (`losses/ratios.py`: exact under gradient accumulation and sharding).

  * `mel_l1`: mean |log-mel(real) - log-mel(fake)| (HiFi-GAN's reconstruction term, weight 45 there);
  * `multi_resolution_stft`: spectral convergence ||S - S^||_F / ||S||_F and mean |log S - log S^| of STFT magnitudes,
    averaged over resolutions (Parallel WaveGAN, Yamamoto et al., 2020, §2.2);
  * `discriminator_loss` / `generator_adversarial_loss`: least squares (LSGAN, Mao et al., 2017; HiFi-GAN) or hinge
    (Vocos), summed over sub-discriminators, each a mean over its output positions;
  * `feature_matching`: mean |f_real - f_fake| per hidden layer, summed over layers and sub-discriminators (HiFi-GAN
    §2.3, weight 2 there);
  * `phase_losses`: APNet's anti-wrapping losses on a predicted phase spectrum against the true one — instantaneous
    phase, group delay (the phase's difference along frequency) and instantaneous angular frequency (along time),
    each the mean of f_AW(x) = |x - 2 pi round(x / 2 pi)| (Ai & Ling, 2023, "APNet: An all-frame-level neural vocoder
    incorporating direct prediction of amplitude and phase spectra", §3.3).

Audio (B, S) float32; discriminator outputs as `models/discriminators.Discriminators` returns them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mmspeech_jax.audio.features import MelConfig, stft
from mmspeech_jax.errors import ConfigError

ADVERSARIAL = ("lsgan", "hinge")
_MAGNITUDE_FLOOR = 1e-7


def _row_mean(x):
    return jnp.mean(x.reshape(x.shape[0], -1).astype(jnp.float32), axis=1)


def mel_l1(real_log_mel, fake_log_mel):
    """(B, T, M), (B, T, M) -> (B,): the mean absolute difference of each row's log-mels."""
    return _row_mean(jnp.abs(real_log_mel - fake_log_mel))


def multi_resolution_stft(real, fake, resolutions=((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)),
                          sample_rate: int = 22050):
    """audio (B, S), (B, S) -> (spectral convergence (B,), log-magnitude L1 (B,)), each averaged over the
    resolutions, given as (n_fft, hop, window) with the zoo's centred STFT (`features.stft`)."""
    convergence, log_l1 = 0.0, 0.0
    for n_fft, hop, window in resolutions:
        config = MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_samples=hop, win_samples=window,
                           fmax_hz=sample_rate / 2)
        s_real, s_fake = jnp.abs(stft(real, config)), jnp.abs(stft(fake, config))
        diff = jnp.sqrt(jnp.sum(jnp.square(s_real - s_fake), axis=(-2, -1)))
        convergence = convergence + diff / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(s_real), axis=(-2, -1))), 1e-7)
        log_l1 = log_l1 + _row_mean(jnp.abs(jnp.log(jnp.maximum(s_real, _MAGNITUDE_FLOOR))
                                            - jnp.log(jnp.maximum(s_fake, _MAGNITUDE_FLOOR))))
    return convergence / len(resolutions), log_l1 / len(resolutions)


def anti_wrapped(x):
    """f_AW(x) = |x - 2 pi round(x / 2 pi)|: an angle difference's distance from 0 on the circle, in [0, pi] (same
    shape and dtype as x; its gradient is sign of the wrapped difference)."""
    return jnp.abs(x - 2.0 * jnp.pi * jnp.round(x / (2.0 * jnp.pi)))


def phase_losses(true_phase, predicted_phase):
    """(B, T, F), (B, T, F) float32 phase spectra in radians (any unwrapping) -> (instantaneous phase, group delay,
    instantaneous angular frequency), each (B,): the row means of f_AW(d), f_AW(d[f+1] - d[f]) and
    f_AW(d[t+1] - d[t]) with d = predicted - true (the differences of the phases' differences, as APNet defines the
    group delay and instantaneous frequency losses). Every bin counts, as in APNet."""
    d = predicted_phase.astype(jnp.float32) - true_phase.astype(jnp.float32)
    return (_row_mean(anti_wrapped(d)), _row_mean(anti_wrapped(d[..., 1:] - d[..., :-1])),
            _row_mean(anti_wrapped(d[:, 1:] - d[:, :-1])))


def complex_l1(true_spectrum, predicted_spectrum):
    """(B, T, F), (B, T, F) complex -> (B,): the row mean of |Re(S^ - S)| + |Im(S^ - S)| (APNet's real and imaginary
    part loss): phase errors weighted by the bins' magnitudes."""
    d = predicted_spectrum.astype(jnp.complex64) - true_spectrum.astype(jnp.complex64)
    return _row_mean(jnp.abs(jnp.real(d)) + jnp.abs(jnp.imag(d)))


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL:
        raise ConfigError(f"adversarial loss must be one of {', '.join(ADVERSARIAL)}, got {kind!r}")


def discriminator_loss(real_outputs, fake_outputs, kind: str = "lsgan"):
    """(B,): sum over sub-discriminators of mean (1 - D(x))^2 + mean D(G(z))^2 (lsgan), or
    mean relu(1 - D(x)) + mean relu(1 + D(G(z))) (hinge)."""
    _check(kind)
    total = 0.0
    for (real, _), (fake, _) in zip(real_outputs, fake_outputs, strict=True):
        if kind == "lsgan":
            total = total + _row_mean(jnp.square(1.0 - real)) + _row_mean(jnp.square(fake))
        else:
            total = total + _row_mean(jax.nn.relu(1.0 - real)) + _row_mean(jax.nn.relu(1.0 + fake))
    return total


def generator_adversarial_loss(fake_outputs, kind: str = "lsgan"):
    """(B,): sum over sub-discriminators of mean (1 - D(G(z)))^2 (lsgan) or mean relu(1 - D(G(z))) (hinge)."""
    _check(kind)
    total = 0.0
    for fake, _ in fake_outputs:
        total = total + _row_mean(jnp.square(1.0 - fake) if kind == "lsgan" else jax.nn.relu(1.0 - fake))
    return total


def feature_matching(real_outputs, fake_outputs):
    """(B,): sum over sub-discriminators and their hidden layers of mean |f_real - f_fake|."""
    total = 0.0
    for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs, strict=True):
        for real, fake in zip(real_features, fake_features, strict=True):
            total = total + _row_mean(jnp.abs(real.astype(jnp.float32) - fake.astype(jnp.float32)))
    return total
