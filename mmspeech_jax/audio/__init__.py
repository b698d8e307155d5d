"""Audio front-end: file I/O, spectral features, F0 (YIN), Griffin-Lim, phase from spectral peaks or from the
magnitude's gradient, and the feature
augmentations (SpecAugment, gain, noise), all pure and batched in JAX.

Names are loaded on first use (PEP 562), so the models, which use only `features` and the augmentations, import
without soundfile and soxr (file I/O's packages): a process that trains or benchmarks on arrays needs jax, flax,
optax, chex and numpy alone.
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "MelConfig": "features", "frame_energy": "features", "log_mel_and_energy": "features",
    "log_mel_spectrogram": "features", "stft": "features", "check_log_mel": "features",
    "griffin_lim": "griffin_lim", "log_mel_to_waveform": "griffin_lim",
    "peak_locked_phase": "peak_phase", "nearest_peak": "peak_phase", "phase_gradient_phase": "phase_gradient",
    "load_audio": "io", "resample": "io", "save_audio": "io", "check_audio_output": "io",
    "PitchConfig": "pitch", "interpolate_unvoiced": "pitch", "yin": "pitch",
    "SpecAugmentConfig": "spec_augment", "spec_augment": "spec_augment",
    "GainAugmentConfig": "gain_augment", "gain_augment": "gain_augment",
    "NoiseAugmentConfig": "noise_augment", "noise_augment": "noise_augment",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
