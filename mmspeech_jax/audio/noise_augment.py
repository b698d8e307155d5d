"""Noise augmentation: training utterances as if recorded over stationary noise, applied to normalized log-mels.

The features are cached, so the noise is added to the mel, not to the samples. A waveform x + n has, per STFT bin,
|X + N|^2 = |X|^2 + |N|^2 + 2 Re(X N*), and the cross term averages out over the bins of a mel band when X and N are
independent. So the mel magnitude of the mixture is taken as the power sum

    mel(x + n) ~ sqrt(mel(x)^2 + g^2 mel(n)^2)

with mel(x) = 0 where the log-mel is at the floor (what lies under it is unknown), and the log floored as the features
are. `tests/test_noise_augment.py` checks the approximation against the features of the summed samples.

The noise comes from a bank: Gaussian noise with power spectral density proportional to f^-slope (0: white, 1: pink,
2: brown), unit power, one row per slope, through the zoo's own features (`noise_bank`). Each augmented utterance reads
a random stretch of one row (wrapping around its end) at a signal-to-noise ratio drawn uniformly in
[min_snr_db, max_snr_db]. The ratio is that of the mel power summed over bands and averaged over the utterance's
valid frames (`snr_gains`); for white noise under speech it lies a few dB above the waveform's ratio, since the mel
bands stop at fmax and weight the low frequencies, where speech has its power, more than the high ones.

Why: a recognizer trained on clean espeak-ng speech writes letters into noise (benchmarks/RESULTS.md, "Long
recordings": the ASR default had 4.2 % CER on clean sentences and 11.8 % under white noise 20 dB down).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig, mel_spectrogram
from mmspeech_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NoiseAugmentConfig:
    """Each training utterance gets noise with `probability`, from one bank row chosen uniformly among `slopes`
    (power spectral density ~ f^-slope), at a mel-domain SNR uniform in [min_snr_db, max_snr_db] dB. The bank holds
    `bank_frames` frames of each slope, drawn from `seed`. Checked when built."""
    probability: float = 0.25
    min_snr_db: float = 0.0
    max_snr_db: float = 30.0
    slopes: tuple[float, ...] = (0.0, 1.0, 2.0)
    bank_frames: int = 2048
    seed: int = 0

    def __post_init__(self):
        config_checks.number(self, "probability", 0, 1)
        config_checks.number(self, "min_snr_db")
        config_checks.number(self, "max_snr_db")
        config_checks.integers(self, bank_frames=2, seed=0)
        if self.min_snr_db > self.max_snr_db:
            raise ConfigError(f"NoiseAugmentConfig: need min_snr_db <= max_snr_db, got {self.min_snr_db} and "
                              f"{self.max_snr_db}")
        slopes = tuple(self.slopes) if isinstance(self.slopes, (tuple, list)) else None
        if not slopes or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 4
                                 for s in slopes):
            raise ConfigError(f"NoiseAugmentConfig.slopes must be a non-empty list of numbers in [0, 4], got "
                              f"{self.slopes!r}")
        object.__setattr__(self, "slopes", tuple(float(s) for s in slopes))  # a JSON list reads back as the tuple


def colored_noise(rng: np.random.Generator, samples: int, slope: float) -> np.ndarray:
    """(samples,) float64 Gaussian noise of unit mean power whose power spectral density goes as f^-slope (the DC
    bin is zero): white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    f = np.arange(spectrum.shape[0], dtype=np.float64)
    spectrum *= np.where(f > 0, np.maximum(f, 1.0) ** (-slope / 2.0), 0.0)
    noise = np.fft.irfft(spectrum, n=samples)
    return noise / np.sqrt(np.mean(noise ** 2))


@functools.lru_cache(maxsize=8)
def noise_bank(config: NoiseAugmentConfig, mel: MelConfig) -> np.ndarray:
    """(len(slopes), bank_frames, n_mels) float32 linear mel magnitudes (`features.mel_spectrogram`) of unit-power
    `colored_noise` of each slope, a pure function of the config (cached; treat it as read-only)."""
    rng = np.random.default_rng(config.seed)
    samples = (config.bank_frames - 1) * mel.hop_samples
    audio = np.stack([colored_noise(rng, samples, s) for s in config.slopes]).astype(np.float32)
    bank = np.asarray(mel_spectrogram(jnp.asarray(audio), mel), np.float32)
    bank.setflags(write=False)
    return bank


def _linear_mel(features, frame_mask, mel_mean, mel_std, log_floor: float):
    """Normalized log-mels (B, T, M) -> (log-mel, mel magnitude with 0 at the floor and in padding), float32."""
    mean = jnp.asarray(np.asarray(mel_mean, np.float32))
    std = jnp.asarray(np.asarray(mel_std, np.float32))
    log_mel = features.astype(jnp.float32) * std + mean
    above = (log_mel > np.float32(np.log(log_floor)) + 1e-3) & frame_mask[..., None]
    return jnp.where(above, jnp.exp(log_mel), 0.0), mean, std


def snr_gains(features, frame_mask, noise_mel, snr_db, mel_mean, mel_std, log_floor: float) -> jax.Array:
    """(B,) float32 amplitude gains g for the noise: sum over valid frames and bands of mel(x)^2 over that of
    (g mel(n))^2 is 10^(snr_db / 10) per row. features (B, T, M) normalized log-mels, frame_mask (B, T) bool (True =
    valid), noise_mel (B, T, M) linear mel magnitudes, snr_db (B,). A row with no speech above the floor or no noise
    gets 0."""
    speech, _, _ = _linear_mel(features, frame_mask, mel_mean, mel_std, log_floor)
    valid = frame_mask[..., None].astype(jnp.float32)
    p_speech = jnp.sum(speech ** 2, axis=(1, 2))
    p_noise = jnp.sum((noise_mel.astype(jnp.float32) * valid) ** 2, axis=(1, 2))
    ratio = p_speech / jnp.where(p_noise > 0, p_noise, 1.0) * 10.0 ** (-snr_db.astype(jnp.float32) / 10.0)
    return jnp.where(p_noise > 0, jnp.sqrt(ratio), 0.0).astype(jnp.float32)


def apply_noise(features, frame_mask, noise_mel, gain, mel_mean, mel_std, log_floor: float) -> jax.Array:
    """Normalized log-mels (B, T, M) float32 (`(log-mel - mel_mean) / mel_std`), frame_mask (B, T) bool (True =
    valid), noise_mel (B, T, M) linear mel magnitudes, gain (B,) -> (B, T, M) float32: the features of each row's
    waveform plus gain * its noise, by the power sum of the module docstring, floored at log(`log_floor`) as the
    features are; a row with gain 0 comes back unchanged and padded frames stay 0."""
    speech, mean, std = _linear_mel(features, frame_mask, mel_mean, mel_std, log_floor)
    noise = gain.astype(jnp.float32)[:, None, None] * noise_mel.astype(jnp.float32)
    mixed = jnp.log(jnp.maximum(jnp.sqrt(speech ** 2 + noise ** 2), np.float32(log_floor)))
    moved = jnp.where(frame_mask[..., None], (mixed - mean) / std, 0.0)
    return jnp.where((gain > 0)[:, None, None], moved, features).astype(jnp.float32)


def noise_augment(features, frame_mask, rng, bank, mel_mean, mel_std, log_floor: float,
                  config: NoiseAugmentConfig = NoiseAugmentConfig()) -> jax.Array:
    """`apply_noise` with draws from `rng`: per row, noise or not (`probability`), a bank row, a start frame and an
    SNR (`snr_gains`). features (B, T, M) normalized log-mels, frame_mask (B, T) bool, bank (K, L, M) from
    `noise_bank`; returns (B, T, M) float32, jit-able."""
    rows, frames = features.shape[:2]
    bank = jnp.asarray(bank)
    k_on, k_row, k_start, k_snr = jax.random.split(rng, 4)
    on = jax.random.bernoulli(k_on, config.probability, (rows,))
    row = jax.random.randint(k_row, (rows,), 0, bank.shape[0])
    start = jax.random.randint(k_start, (rows,), 0, bank.shape[1])
    snr = jax.random.uniform(k_snr, (rows,), jnp.float32, config.min_snr_db, config.max_snr_db)
    noise = bank[row[:, None], (start[:, None] + jnp.arange(frames)[None, :]) % bank.shape[1]]
    gain = snr_gains(features, frame_mask, noise, snr, mel_mean, mel_std, log_floor)
    return apply_noise(features, frame_mask, noise, jnp.where(on, gain, 0.0), mel_mean, mel_std, log_floor)
