"""One model for both directions: a speech–text backbone pretrained jointly, fine-tuned to recognition and synthesis.

    speech: features (B, T, M) ─ frontend (Conv2dSubsampling, s x) ───────────────┐
                                                                                  ├─ encoder (shared Conformer, B, T', D)
    text:   tokens (B, N) ─ token_embedding ─ text_encoder (FFT) ─ variance_adaptor ┘     │
              (durations at the encoder rate: the aligner's on paired data,               ├─ ctc_head ─ characters (ASR)
               the predictor's otherwise; token pitch/energy embedded)                    ├─ ssl_head ─ BEST-RQ codes
                                                                                          ├─ mlm_head ─ masked tokens (pooled
                                                                                          │    over each token's frames)
                                                                                          └─ decoder (FFT, rate T') ─ mel_out
                                                                                               (s x M) ─ unfold ─ postnet ─ mel

Shared: the Conformer `encoder` serves both modalities (speech after the ASR's subsampling frontend, text after
FastSpeech2's encoder and length regulator, both at the encoder rate, one frame per s mel frames). Nothing else is
shared: the speech side is `CTCASR`'s (same parameter names: `frontend`, `encoder`, `ctc_head`, so the recognizer is
a `CTCASR` on a subset of the parameters and BEST-RQ checkpoints load by path), the text side is FastSpeech2's
(`token_embedding`, `text_encoder`, `variance_adaptor`, `aligner`, `decoder`, `postnet`) with the mel decoder at the
encoder rate emitting s mel frames per frame.

Frame rates: encoder frame t' sees mel frames s t' .. s t' + 6 (two VALID 3x3 convolutions), centred on
s t' + FRONTEND_CENTER. `encoder_rate_durations` moves the aligner's token boundaries (mel frames) to encoder frames
by that centre, so the text path's frames line up with the speech path's frame for frame (`matching_total`), and
the decoder's s outputs of frame t' are mel frames s t' + j + FRONTEND_CENTER - s // 2 (edges repeat the nearest).

Objectives (`make_joint_loss_fn`, weights in `JointLossConfig`): BEST-RQ on unpaired speech, masked-token
prediction on unpaired text, and on paired data CTC (ASR), FastSpeech2's losses with the aligner (TTS) and modality
matching (the text path's encoding pulled towards the recording's, which is held fixed: matching both ways let the
shared encoder collapse to one vector per utterance frame grid, where the loss is zero and CTC cannot learn). Batches are flat dicts with prefixed keys (`speech/…`, `text/…`, `paired/…`; `prepare_joint_batch`).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.audio.spec_augment import spec_augment
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.subsampling import subsampled_length
from mmspeech_jax.layers.transformer import FFTStack
from mmspeech_jax.losses.ctc import ctc_total
from mmspeech_jax.losses.joint import masked_token_correct, masked_token_total, matching_total
from mmspeech_jax.losses.ratios import ratio
from mmspeech_jax.losses.tts import fastspeech2_loss
from mmspeech_jax.models import ctc_asr, fastspeech2
from mmspeech_jax.models.aligner import (AlignerConfig, AlignmentEncoder, durations_from_alignment,
                                         monotonic_alignment_search)
from mmspeech_jax.models.best_rq import BestRQConfig, masked_prediction_parts, quantizer_arrays
from mmspeech_jax.models.ctc_asr import CTCASRConfig, frontend_and_encoder
from mmspeech_jax.models.fastspeech2 import FastSpeech2Config, Postnet, variance_targets
from mmspeech_jax.models.variance_adaptor import (Controls, VarianceAdaptor, VarianceAdaptorConfig,
                                                  VariancePredictorConfig, token_average_vectors)

FRONTEND_CENTER = 3  # mel frame at the centre of encoder frame 0's receptive field (two VALID 3-tap convolutions)


@dataclasses.dataclass(frozen=True)
class JointConfig:
    """The joint model: `speech` (frontend, shared encoder and CTC head: a `CTCASRConfig`), `text` (embedding, text
    encoder, variance adaptor, aligner, mel decoder and postnet: a `FastSpeech2Config` of the same width, token-level
    variances, one voice, the built-in aligner), BEST-RQ's quantizer and masking (`ssl`), the fraction of tokens
    masked in unpaired text, and the encoder frames per token the unpaired text path reserves (its static length
    is this times the token length). Checked when built."""
    speech: CTCASRConfig
    text: FastSpeech2Config
    ssl: BestRQConfig = BestRQConfig()
    text_mask_probability: float = 0.15
    text_frames_per_token: int = 4

    def __post_init__(self):
        if not isinstance(self.speech, CTCASRConfig) or not isinstance(self.text, FastSpeech2Config):
            raise ConfigError("JointConfig needs speech: CTCASRConfig and text: FastSpeech2Config")
        if self.speech.dim != self.text.dim:
            raise ConfigError(f"JointConfig: speech.dim ({self.speech.dim}) and text.dim ({self.text.dim}) must be "
                              f"equal (both feed the shared encoder)")
        if self.text.aligner is None or self.text.variance_level != "token" or self.text.num_speakers:
            raise ConfigError("JointConfig.text needs the built-in aligner, variance_level 'token' and one voice")
        if self.speech.compute_dtype != self.text.compute_dtype:
            raise ConfigError("JointConfig: speech and text compute_dtype must be equal")
        if not isinstance(self.ssl, BestRQConfig):
            raise ConfigError(f"JointConfig.ssl must be a BestRQConfig, got {self.ssl!r}")
        config_checks.number(self, "text_mask_probability", 0, 1, low_open=True, high_open=True)
        config_checks.integers(self, text_frames_per_token=1)

    @property
    def variance_level(self) -> str:
        """Pitch and energy are token-level (what `Synthesizer` asks of a TTS config)."""
        return "token"

    @classmethod
    def from_dict(cls, data: dict) -> "JointConfig":
        """Inverse of `dataclasses.asdict` (config.json)."""
        return cls(speech=CTCASRConfig.from_dict(data["speech"]), text=FastSpeech2Config.from_dict(data["text"]),
                   ssl=BestRQConfig(**data["ssl"]), text_mask_probability=data["text_mask_probability"],
                   text_frames_per_token=data["text_frames_per_token"])


def preset(name: str, vocab_size: int, **overrides) -> JointConfig:
    """`tiny` (tests) or `base` (the default CPU run: the ASR's `base` speech side, 2 + 2 FFT blocks of 144 on the
    text side). `overrides` replace JointConfig fields."""
    if name == "tiny":
        speech = ctc_asr.preset("tiny")
        text = fastspeech2.preset("tiny", vocab_size, heads=2)
        ssl = BestRQConfig(codebook_size=64, codebook_dim=8)
    elif name == "base":
        speech = ctc_asr.preset("base")
        text = FastSpeech2Config(vocab_size=vocab_size, dim=speech.dim, heads=2, encoder_layers=2, decoder_layers=2,
                                 conv_filters=4 * speech.dim, conv_kernels=(3, 1), dropout=0.0, attention_dropout=0.0,
                                 predictor=VariancePredictorConfig(speech.dim, 3, 0.1), postnet_layers=3,
                                 postnet_channels=128, aligner=AlignerConfig(text_hidden=128, mel_hidden=128))
        ssl = BestRQConfig(codebook_size=512)
    else:
        raise ConfigError(f"unknown joint preset {name!r}; choose tiny or base")
    return JointConfig(**{"speech": speech, "text": text, "ssl": ssl, **overrides})


def encoder_rate_durations(durations, token_mask, encoder_lengths, factor: int, center: int = FRONTEND_CENTER):
    """Token durations in mel frames (B, N) -> in encoder frames (B, N) int32: each token boundary e (mel frames)
    moves to round((e - center) / factor), clipped to [0, encoder length]; the last token ends at the encoder length,
    so durations sum to `encoder_lengths` (B,) for every row with tokens. Padding tokens get 0."""
    durations = jnp.where(token_mask, jnp.maximum(durations.astype(jnp.int32), 0), 0)
    ends = jnp.cumsum(durations, axis=-1).astype(jnp.float32)
    moved = jnp.clip(jnp.round((ends - center) / factor), 0, encoder_lengths[:, None].astype(jnp.float32))
    last = jnp.arange(durations.shape[1])[None, :] == (token_mask.sum(-1) - 1)[:, None]
    moved = jnp.where(last, encoder_lengths[:, None].astype(jnp.float32), moved).astype(jnp.int32)
    starts = jnp.concatenate([jnp.zeros_like(moved[:, :1]), moved[:, :-1]], axis=1)
    return jnp.where(token_mask, moved - starts, 0)


class JointSpeechText(nn.Module):
    """The joint speech–text model (module docstring). Entry points (`method=`): `__call__` (paired batch: every
    output), `recognize` (features (B, T, M) normalized log-mel, frame_mask (B, T) -> CTC log-probs (B, T', V),
    mask), `ssl_logits` (masked features -> BEST-RQ code logits), `masked_text_logits` (tokens with a mask ->
    per-token logits), `generate` (FastSpeech2's signature: tokens (B, N), token_mask, static max_frames ->
    (mel (B, max_frames, M), frame_mask, durations (B, N) in mel frames))."""
    config: JointConfig

    def setup(self):
        c, t = self.config, self.config.text
        dtype = jnp.dtype(t.compute_dtype)
        self.frontend, self.encoder = frontend_and_encoder(c.speech)
        self.ctc_head = nn.Dense(c.speech.vocab_size, dtype=jnp.float32)
        self.ssl_head = nn.Dense(c.ssl.codebook_size, dtype=jnp.float32)
        self.token_embedding = nn.Embed(t.vocab_size, t.dim)
        self.mask_embedding = self.param("mask_embedding", nn.initializers.normal(0.02), (t.dim,))
        self.text_encoder = FFTStack(t.block, t.encoder_layers, dtype)
        self.variance_adaptor = VarianceAdaptor(VarianceAdaptorConfig(t.predictor, "token", t.conv_algorithm), dtype)
        self.aligner = AlignmentEncoder(t.aligner, t.conv_algorithm)
        self.decoder = FFTStack(t.block, t.decoder_layers, dtype)
        self.mel_out = nn.Dense(c.speech.subsampling * t.n_mels, dtype=dtype)
        self.postnet = Postnet(t)
        self.mlm_head = nn.Dense(t.vocab_size, dtype=jnp.float32)

    # --- speech side -------------------------------------------------------------------------------------------
    def speech_encode(self, features, frame_mask, *, train: bool = False):
        """(B, T, M), (B, T) -> shared-encoder output (B, T', D), mask (B, T')."""
        h, mask = self.frontend(features, frame_mask)
        return self.encoder(h, mask, train=train), mask

    def recognize(self, features, frame_mask, *, train: bool = False):
        """(B, T, M), (B, T) -> CTC log-probabilities (B, T', V) float32 (blank 0), mask (B, T'): `CTCASR`'s."""
        h, mask = self.speech_encode(features, frame_mask, train=train)
        return jax.nn.log_softmax(self.ctc_head(h.astype(jnp.float32)), axis=-1), mask

    def ssl_logits(self, features, frame_mask, *, train: bool = False):
        """(B, T, M) masked features, (B, T) -> BEST-RQ code logits (B, T', V) float32, mask (B, T')."""
        h, mask = self.speech_encode(features, frame_mask, train=train)
        return self.ssl_head(h.astype(jnp.float32)), mask

    # --- text side ---------------------------------------------------------------------------------------------
    def text_hidden(self, tokens, token_mask, masked=None, *, train: bool = False):
        """tokens (B, N) int, token_mask (B, N), masked (B, N) bool or None (replaced by the mask embedding) ->
        text encoder output (B, N, D)."""
        x = self.token_embedding(tokens)
        if masked is not None:
            x = jnp.where(masked[..., None], self.mask_embedding.astype(x.dtype), x)
        x = (x * token_mask[..., None]).astype(self.config.text.compute_dtype)
        return self.text_encoder(x, token_mask, train=train)

    def align(self, tokens, token_mask, mel, frame_mask, log_prior):
        """The built-in aligner: (log soft (B, T, N), hard (B, T, N), durations (B, N) in mel frames)."""
        log_soft = self.aligner(self.token_embedding(tokens), token_mask, mel, frame_mask, log_prior)
        hard = monotonic_alignment_search(jax.lax.stop_gradient(log_soft), token_mask, frame_mask,
                                          self.config.text.aligner.recurrence)
        return log_soft, hard, durations_from_alignment(hard)

    def text_frames(self, h, token_mask, encoder_frames: int, *, train: bool = False, durations=None, pitch=None,
                    energy=None, controls: Controls = Controls()):
        """Variance adaptor to the encoder rate: h (B, N, D) -> frames (B, encoder_frames, D), mask, predictions.
        `durations` (B, N) in encoder frames (None: predicted)."""
        return self.variance_adaptor(h, token_mask, encoder_frames, train=train, durations=durations, pitch=pitch,
                                     energy=energy, controls=controls)

    def text_encode(self, frames, mask, *, train: bool = False):
        """Length-regulated text frames (B, T', D) -> shared-encoder output (B, T', D)."""
        return self.encoder(frames.astype(self.config.speech.compute_dtype), mask, train=train)

    def masked_text_logits(self, tokens, token_mask, masked, *, train: bool = False):
        """Unpaired text: tokens (B, N), token_mask (B, N), masked (B, N) bool -> symbol logits (B, N, V) float32
        from the shared encoder's frames averaged over each token (durations predicted, at least one frame; pitch and
        energy at their mean), and the frame mask (B, N * text_frames_per_token)."""
        c = self.config
        h = self.text_hidden(tokens, token_mask, masked, train=train)
        log_duration = self.variance_adaptor.duration_predictor(h, token_mask, train=train)
        durations = jnp.maximum(jnp.round(jnp.exp(jax.lax.stop_gradient(log_duration)) - 1.0), 1.0)
        durations = (durations * token_mask).astype(jnp.int32)
        zeros = jnp.zeros(tokens.shape, jnp.float32)
        frames, mask, _ = self.text_frames(h, token_mask, tokens.shape[1] * c.text_frames_per_token, train=train,
                                           durations=durations, pitch=zeros, energy=zeros)
        hidden = self.text_encode(frames, mask, train=train)
        pooled = token_average_vectors(hidden.astype(jnp.float32), durations, mask)
        return self.mlm_head(pooled), mask

    def decode_mel(self, hidden, mask, num_frames: int, frame_lengths=None, *, train: bool = False):
        """Shared-encoder output (B, T', D), mask (B, T') -> (mel, mel after the postnet) (B, num_frames, M) float32
        and their frame mask: s mel frames per encoder frame, mel frame f from slot f - (FRONTEND_CENTER - s // 2)
        clipped to the row's slots. `frame_lengths` (B,): the target's lengths (training); None: every slot."""
        s, m = self.config.speech.subsampling, self.config.text.n_mels
        h = self.decoder(hidden, mask, train=train)
        slots = self.mel_out(h) * mask[..., None].astype(h.dtype)
        b, t = slots.shape[:2]
        slots = slots.reshape(b, t * s, m)
        valid = mask.sum(-1) * s
        offset = FRONTEND_CENTER - s // 2
        if frame_lengths is None:
            frame_lengths = jnp.where(valid > 0, valid + offset, 0)
        frame = jnp.arange(num_frames)
        index = jnp.clip(frame[None, :] - offset, 0, jnp.maximum(valid[:, None] - 1, 0))
        frame_mask = frame[None, :] < frame_lengths[:, None]
        mel = jnp.take_along_axis(slots, index[..., None], axis=1) * frame_mask[..., None].astype(slots.dtype)
        return (mel.astype(jnp.float32), self.postnet(mel, frame_mask, train=train).astype(jnp.float32),
                frame_mask)

    # --- whole passes ------------------------------------------------------------------------------------------
    def __call__(self, batch, *, train: bool = True, speech: bool = True, text: bool = True):
        """A paired batch (FastSpeech2's keys + `features`, normalized (B, T, M), and `log_prior`) -> (outputs, aux).
        `speech` (static): the speech path (`log_probs`, `speech_hidden`); `text`: the text path with the aligner's
        durations (`mel`, `mel_post`, `text_hidden`; aux as FastSpeech2's, `durations` at the encoder rate)."""
        outputs, aux = {}, {}
        frame_mask = batch["frame_mask"]
        encoder_mask = None
        if speech:
            hidden, encoder_mask = self.speech_encode(batch["features"], frame_mask, train=train)
            outputs.update(speech_hidden=hidden, encoder_mask=encoder_mask,
                           log_probs=jax.nn.log_softmax(self.ctc_head(hidden.astype(jnp.float32)), axis=-1))
        if text:
            s = self.config.speech.subsampling
            tokens, token_mask = batch["tokens"], batch["token_mask"]
            t_enc = int(subsampled_length(frame_mask.shape[1], s))
            lengths = subsampled_length(frame_mask.sum(-1), s)
            log_soft, hard, durations = self.align(tokens, token_mask, batch["mel"], frame_mask, batch["log_prior"])
            pitch, energy = variance_targets(batch, durations, "token")
            coarse = encoder_rate_durations(durations, token_mask, lengths, s)
            h = self.text_hidden(tokens, token_mask, train=train)
            frames, text_mask, variance = self.text_frames(h, token_mask, t_enc, train=train, durations=coarse,
                                                           pitch=pitch, energy=energy)
            hidden = self.text_encode(frames, text_mask, train=train)
            mel, mel_post, _ = self.decode_mel(hidden, text_mask, frame_mask.shape[1], batch["frame_lengths"],
                                               train=train)
            outputs.update(mel=mel, mel_post=mel_post, text_hidden=hidden, text_mask=text_mask)
            aux.update(variance, durations=coarse, mel_durations=durations, pitch_target=pitch, energy_target=energy,
                       log_alignment=log_soft, hard_alignment=hard)
        return outputs, aux

    def generate(self, tokens, token_mask, max_frames: int, speaker=None, controls: Controls = Controls(),
                 variance: bool = False):
        """Inference, FastSpeech2's signature: tokens (B, N) int32 (0 = padding), token_mask (B, N) bool, static
        max_frames -> (mel_post (B, max_frames, M), frame_mask (B, max_frames), durations (B, N) in mel frames);
        with `variance`, a fourth element {"pitch", "energy"} (B, N), z-scored. `speaker` must be None."""
        h, durations = self.prepare(tokens, token_mask, speaker, controls)
        return self.render(h, token_mask, durations, max_frames, speaker, controls, variance)

    def prepare(self, tokens, token_mask, speaker=None, controls: Controls = Controls()):
        """Inference, first half, as `FastSpeech2.prepare`: -> (text encoder output h (B, N, D), predicted
        durations (B, N) int32 in mel frames: a multiple of the subsampling factor per token). The mel has
        `mel_frame_count(config, durations)` frames."""
        del speaker
        h = self.text_hidden(tokens, token_mask)
        coarse = self.variance_adaptor.predict_durations(h, token_mask, controls)
        return h, coarse * self.config.speech.subsampling

    def render(self, h, token_mask, durations, max_frames: int, speaker=None, controls: Controls = Controls(),
               variance: bool = False):
        """Inference, second half, as `FastSpeech2.render`: `prepare`'s h and durations (mel frames) -> `generate`'s
        outputs at the static max_frames."""
        del speaker
        s = self.config.speech.subsampling
        frames, mask, aux = self.text_frames(h, token_mask, -(-max_frames // s), durations=durations // s,
                                             controls=controls)
        _, mel_post, frame_mask = self.decode_mel(self.text_encode(frames, mask), mask, max_frames)
        if variance:
            return mel_post, frame_mask, durations, {"pitch": aux["pitch"], "energy": aux["energy"]}
        return mel_post, frame_mask, durations

    def initialize(self, batch):
        """Touches every submodule (for `init`): the paired pass, the BEST-RQ head and the masked-text head."""
        outputs, _ = self(batch, train=False)
        self.ssl_logits(batch["features"], batch["frame_mask"])
        self.masked_text_logits(batch["tokens"], batch["token_mask"], jnp.zeros(batch["tokens"].shape, bool))
        return outputs


def mel_frame_count(config: "JointConfig", durations):
    """Mel frames the text path makes for durations (..., N) in mel frames (`prepare`'s): their sum plus the
    frontend's centring offset (`decode_mel`), 0 for an empty row. NumPy or JAX arrays -> (...)."""
    total = durations.sum(-1)
    return (total + (FRONTEND_CENTER - config.speech.subsampling // 2)) * (total > 0)


def asr_params(params) -> dict:
    """The recognizer's parameters: a `CTCASR` with `config.speech` applies them as they are."""
    return {k: params[k] for k in ("frontend", "encoder", "ctc_head")}


def prepare_joint_batch(batches: dict, config: JointConfig, stats: dict) -> dict:
    """Host side: {"speech": pipeline batch, "text": {"tokens", "token_mask"}, "paired": pipeline batch} (any subset)
    -> one flat dict with prefixed keys for `make_joint_loss_fn`: `speech/features`, `speech/frame_mask`;
    `text/tokens`, `text/token_mask`; `paired/…` (FastSpeech2's model inputs with the aligner's prior, the ASR's
    normalized `features`, `labels`, `label_mask`, `example_mask`). Every part is checked as its model checks it."""
    out = {}
    if "speech" in batches:
        b = batches["speech"]
        ctc_asr.check_batch(b, stats)
        out["speech/features"] = ctc_asr.normalize_features(b["mel"], b["frame_mask"], stats)
        out["speech/frame_mask"] = b["frame_mask"]
    if "text" in batches:
        out["text/tokens"] = np.asarray(batches["text"]["tokens"], np.int32)
        out["text/token_mask"] = np.asarray(batches["text"]["token_mask"], bool)
    if "paired" in batches:
        b = batches["paired"]
        inputs = {**fastspeech2.model_inputs(b, config.text), **ctc_asr.model_inputs(b, stats)}
        out.update({f"paired/{k}": v for k, v in inputs.items()})
    return out


@dataclasses.dataclass(frozen=True)
class JointLossConfig:
    """Weights of the joint objective's terms (0: off; a term also needs its part of the batch): BEST-RQ on unpaired
    speech (`ssl`), masked tokens on unpaired text (`mlm`), on paired data CTC (`asr`), FastSpeech2 + aligner
    (`tts`) and modality matching (`match`); the step from which the aligner's binarization loss counts."""
    ssl: float = 1.0
    mlm: float = 1.0
    asr: float = 1.0
    tts: float = 1.0
    match: float = 1.0
    binarization_start: int = 0

    def __post_init__(self):
        for name in ("ssl", "mlm", "asr", "tts", "match"):
            config_checks.number(self, name, 0)
        config_checks.integer(self, "binarization_start", 0)


MODES = {  # the experiment's objectives: which terms count
    "pretrain": dict(ssl=1.0, mlm=1.0, asr=1.0, tts=1.0, match=1.0),
    "speech_ssl": dict(ssl=1.0, mlm=0.0, asr=0.0, tts=0.0, match=0.0),
    "asr": dict(ssl=0.0, mlm=0.0, asr=1.0, tts=0.0, match=0.0),
    "tts": dict(ssl=0.0, mlm=0.0, asr=0.0, tts=1.0, match=0.0),
    "asr_tts": dict(ssl=0.0, mlm=0.0, asr=1.0, tts=1.0, match=0.0),
}


def loss_config(mode: str, binarization_start: int = 0) -> JointLossConfig:
    """The weights of a named mode (MODES)."""
    if mode not in MODES:
        raise ConfigError(f"unknown joint training mode {mode!r}; choose one of {', '.join(MODES)}")
    return JointLossConfig(**MODES[mode], binarization_start=binarization_start)


def needs(weights: JointLossConfig) -> tuple[str, ...]:
    """The batch parts a loss with these weights reads: "speech", "text", "paired"."""
    parts = (("speech",) if weights.ssl else ()) + (("text",) if weights.mlm else ())
    return parts + (("paired",) if weights.asr or weights.tts or weights.match else ())


def make_joint_loss_fn(model: JointSpeechText, weights: JointLossConfig):
    """`loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts)` for the shared trainer on
    `prepare_joint_batch`'s flat batches: the weighted sum of the terms whose weight is > 0 and whose batch part is
    present. Parts: `ssl_ce`, `ssl_accuracy`, `mlm_ce`, `mlm_accuracy`, `ctc`, FastSpeech2's (`mel_l1`, …,
    `forward_sum`, `binarization`) and `match_mse`; each a ratio of the whole step's counts (`losses/ratios.py`)."""
    c = model.config
    factor = c.speech.subsampling
    projection, codebook = (jnp.asarray(a) for a in quantizer_arrays(c.ssl, c.speech.n_mels, factor))
    recurrence = c.text.aligner.recurrence

    def loss_fn(params, batch, rng, train, step, counts=None):
        apply = lambda *a, **k: model.apply({"params": params}, *a, **k)
        k_ssl, k_text, k_mask, k_paired, k_augment = jax.random.split(rng, 5)
        total, parts, local = 0.0, {}, {}
        if weights.ssl and "speech/features" in batch:
            logits_fn = lambda x, m, key: apply(x, m, train=train, rngs={"dropout": key},
                                                method=JointSpeechText.ssl_logits)
            loss, ssl_parts = masked_prediction_parts(logits_fn, batch["speech/features"], batch["speech/frame_mask"],
                                                      k_ssl, c.ssl, factor, projection, codebook, counts)
            total = total + weights.ssl * loss
            local.update(ssl_parts.pop("counts"))
            parts.update(ssl_parts)
        if weights.mlm and "text/tokens" in batch:
            tokens, token_mask = batch["text/tokens"], batch["text/token_mask"]
            masked = jax.random.bernoulli(k_mask, c.text_mask_probability, tokens.shape) & token_mask
            logits, _ = apply(tokens, token_mask, masked, train=train, rngs={"dropout": k_text},
                              method=JointSpeechText.masked_text_logits)
            nll, count = masked_token_total(logits, tokens, masked)
            local["masked_tokens"] = count
            parts["mlm_ce"] = ratio(nll, count, "masked_tokens", counts)
            parts["mlm_accuracy"] = ratio(masked_token_correct(logits, tokens, masked), count, "masked_tokens", counts)
            total = total + weights.mlm * parts["mlm_ce"]
        speech_on, text_on = bool(weights.asr or weights.match), bool(weights.tts or weights.match)
        if (speech_on or text_on) and "paired/tokens" in batch:
            paired = {k.split("/", 1)[1]: v for k, v in batch.items() if k.startswith("paired/")}
            if train and speech_on and c.speech.spec_augment is not None:
                paired["features"] = spec_augment(paired["features"], paired["frame_mask"], k_augment,
                                                  c.speech.spec_augment)
            outputs, aux = apply(paired, train=train, speech=speech_on, text=text_on, rngs={"dropout": k_paired})
            if weights.asr:
                nll, utterances = ctc_total(outputs["log_probs"], outputs["encoder_mask"], paired["labels"],
                                            paired["label_mask"], paired["example_mask"],
                                            algorithm=c.speech.ctc_recurrence)
                local["utterances"] = utterances
                parts["ctc"] = ratio(nll, utterances, "utterances", counts)
                total = total + weights.asr * parts["ctc"]
            if weights.tts:
                tts, tts_parts = fastspeech2_loss(outputs, aux, paired, step,
                                                  binarization_start=weights.binarization_start, counts=counts,
                                                  recurrence=recurrence)
                local.update(tts_parts.pop("counts"))
                parts.update(tts_parts)
                total = total + weights.tts * tts
            if weights.match:
                both = outputs["encoder_mask"] & outputs["text_mask"]
                # The recording's encoding is the target (no gradient): with both sides free, the first default
                # run collapsed the shared encoder to one vector for every frame (match_mse 3e-4, CTC stuck).
                mse, frames = matching_total(jax.lax.stop_gradient(outputs["speech_hidden"]), outputs["text_hidden"],
                                             both)
                local["matched_frames"] = frames
                parts["match_mse"] = ratio(mse, frames, "matched_frames", counts)
                total = total + weights.match * parts["match_mse"]
        return total, {**parts, "counts": local}

    return loss_fn
