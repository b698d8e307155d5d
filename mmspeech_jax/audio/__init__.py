"""Audio front-end: file I/O, spectral features, F0 (YIN) and Griffin-Lim, all pure and batched in JAX."""

from mmspeech_jax.audio.features import MelConfig, frame_energy, log_mel_and_energy, log_mel_spectrogram, stft
from mmspeech_jax.audio.griffin_lim import griffin_lim, log_mel_to_waveform
from mmspeech_jax.audio.io import load_audio, resample, save_audio
from mmspeech_jax.audio.pitch import PitchConfig, interpolate_unvoiced, yin

__all__ = [
    "MelConfig", "PitchConfig", "frame_energy", "griffin_lim", "interpolate_unvoiced", "load_audio",
    "log_mel_and_energy", "log_mel_spectrogram", "log_mel_to_waveform", "resample", "save_audio", "stft", "yin",
]
