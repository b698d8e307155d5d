"""Models: FastSpeech2 (+ aligner, variance adaptor), HyperSpeech, Conformer-CTC, BEST-RQ, the text LM, the vocoders
(HiFi-GAN, the iSTFT vocoder, their discriminators and GAN loss), the joint speech–text model.

Names load on first use (PEP 562): importing the package imports none of its modules. Defined in several modules, so
reached through their module only: `check_batch`, `model_inputs`, `preset`.
"""

from mmspeech_jax.lazy import lazy_names

_SOURCES = {
    "AlignerConfig": "aligner", "AlignmentEncoder": "aligner", "BestRQ": "best_rq", "BestRQConfig": "best_rq",
    "CTCASR": "ctc_asr", "CTCASRConfig": "ctc_asr", "CausalBlock": "text_lm", "Controls": "variance_adaptor",
    "ConvNeXtBlock": "istft_vocoder", "DiscriminatorConfig": "discriminators", "Discriminators": "discriminators",
    "FastSpeech2": "fastspeech2", "FastSpeech2Config": "fastspeech2", "HiFiGANConfig": "hifigan",
    "HiFiGANGenerator": "hifigan", "HyperSpeech": "hyperspeech", "HyperSpeechConfig": "hyperspeech",
    "ISTFTVocoder": "istft_vocoder", "ISTFTVocoderConfig": "istft_vocoder", "JointConfig": "joint_speech_text",
    "JointLossConfig": "joint_speech_text", "JointSpeechText": "joint_speech_text", "MRFBlock": "hifigan",
    "PeriodDiscriminator": "discriminators", "Postnet": "fastspeech2", "ResolutionDiscriminator": "discriminators",
    "ScalarEmbedding": "variance_adaptor", "ScaleDiscriminator": "discriminators", "TextLM": "text_lm",
    "TextLMConfig": "text_lm", "VarianceAdaptor": "variance_adaptor", "VarianceAdaptorConfig": "variance_adaptor",
    "VariancePredictor": "variance_adaptor", "VariancePredictorConfig": "variance_adaptor",
    "VocoderConfig": "vocoder", "asr_params": "joint_speech_text", "asr_targets": "ctc_asr",
    "batch_log_prior": "aligner", "beta_binomial_prior": "aligner", "check_has_prior": "fastspeech2",
    "durations_from_alignment": "aligner", "encode_sentences": "text_lm",
    "encoder_rate_durations": "joint_speech_text", "frontend_and_encoder": "ctc_asr", "generate": "vocoder",
    "frames_per_token": "variance_adaptor", "init_vocoder_params": "vocoder", "input_log_mel": "vocoder", "length_regulate": "variance_adaptor",
    "lm_scorer": "text_lm", "loss_config": "joint_speech_text", "make_best_rq_loss_fn": "best_rq",
    "make_ctc_loss_fn": "ctc_asr", "make_generator": "vocoder", "make_joint_loss_fn": "joint_speech_text",
    "make_lm_loss_fn": "text_lm", "make_vocoder_loss_fn": "vocoder", "make_vocoder_optimizer": "vocoder",
    "mask_inputs": "best_rq", "mel_frame_count": "joint_speech_text", "masked_prediction_parts": "best_rq", "masked_standardize": "aligner",
    "monotonic_alignment_search": "aligner", "needs": "joint_speech_text", "normalize_features": "ctc_asr",
    "phases": "vocoder", "centre_frequency_ramp": "istft_vocoder", "polar": "istft_vocoder", "synthesis_phase": "istft_vocoder", "prepare_joint_batch": "joint_speech_text", "quantize": "best_rq",
    "quantizer_arrays": "best_rq", "span_mask": "best_rq", "stack_frames": "best_rq",
    "token_average": "variance_adaptor", "token_average_vectors": "variance_adaptor", "trainable_mask": "hyperspeech",
    "variance_targets": "fastspeech2", "with_alignment_prior": "aligner",
}

__all__ = sorted(_SOURCES)

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
