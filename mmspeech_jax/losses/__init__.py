"""Losses: FastSpeech2 and aligner terms, CTC, the vocoders' (mel, multi-resolution STFT, adversarial, feature
matching, APNet's phase and complex-spectrum terms), exact masked ratios, the banded recurrences over frames.

Names load on first use (PEP 562): importing the package imports none of its modules.
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "banded_recurrence": "recurrence", "binarization_loss": "aligner", "binarization_total": "aligner",
    "ctc_feasible": "ctc", "ctc_loss": "ctc", "ctc_nll": "ctc", "ctc_nll_recurrence": "ctc", "ctc_total": "ctc",
    "discriminator_loss": "vocoder", "duration_loss": "tts", "fastspeech2_loss": "tts", "feature_matching": "vocoder",
    "forward_sum_loss": "aligner", "forward_sum_per_utterance": "aligner", "generator_adversarial_loss": "vocoder",
    "log_duration_target": "tts", "make_fastspeech2_loss_fn": "tts", "masked_l1": "tts", "masked_mean": "tts",
    "masked_mse": "tts", "masked_token_correct": "joint", "masked_token_total": "joint", "masked_total": "ratios",
    "matching_total": "joint", "mel_l1": "vocoder", "multi_resolution_stft": "vocoder",
    "anti_wrapped": "vocoder", "phase_losses": "vocoder", "complex_l1": "vocoder", "ratio": "ratios",
    "resolve": "recurrence", "semiring_sum": "recurrence", "shift_states": "recurrence",
    "with_identity_frames": "recurrence",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
