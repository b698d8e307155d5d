"""FastSpeech2 (Ren et al., 2021) with a jointly trained aligner (no external durations needed).

    tokens (B, N) -> embed -> encoder (FFT x L) -> variance adaptor (durations, pitch, energy; length regulator)
      -> decoder (FFT x L) -> linear -> mel (B, T, M) -> 5-layer conv postnet (residual) -> mel_post (B, T, M)

Entry points a notebook can compose, each usable through `model.apply(params, ..., method=...)`:
  `encode`, `align`, `adapt`, `decode`, `__call__` (training: aligner durations, teacher-forced variances) and
  `generate` (inference: predicted durations, static `max_frames`).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.batch_checks import batch_arrays, lengths_match_masks, token_shapes
from mmspeech_jax.errors import ConfigError, FeatureError
from mmspeech_jax.layers.dropout import Dropout
from mmspeech_jax.layers.ids import check_ids, table_ids
from mmspeech_jax.layers.transformer import FFTBlockConfig, FFTStack
from mmspeech_jax.layers.winograd import ALGORITHMS, Conv1D
from mmspeech_jax.models.aligner import (
    AlignerConfig,
    AlignmentEncoder,
    durations_from_alignment,
    monotonic_alignment_search,
    with_alignment_prior,
)
from mmspeech_jax.models.variance_adaptor import (
    Controls,
    VarianceAdaptor,
    VarianceAdaptorConfig,
    VariancePredictorConfig,
    token_average,
)


@dataclasses.dataclass(frozen=True)
class FastSpeech2Config:
    """FastSpeech2: vocabulary, mel channels, width, heads, encoder/decoder layers, convolution filters and kernels,
    dropout, variance predictors and their level (token or frame), postnet, speakers, the built-in aligner (None:
    durations come with the batch), attention dropout, compute dtype, remat, convolution algorithm. Checked when
    built; `preset(name, vocab_size)` gives the named sizes."""
    vocab_size: int
    n_mels: int = 80
    dim: int = 256
    heads: int = 2
    encoder_layers: int = 4
    decoder_layers: int = 4
    conv_filters: int = 1024
    conv_kernels: tuple[int, int] = (9, 1)
    dropout: float = 0.2
    predictor: VariancePredictorConfig = VariancePredictorConfig()
    variance_level: str = "token"
    postnet_layers: int = 5
    postnet_channels: int = 512
    postnet_kernel: int = 5
    num_speakers: int = 0
    aligner: AlignerConfig | None = AlignerConfig()  # None: durations come from the batch (an external aligner)
    attention_dropout: float | None = None  # None: same as dropout; 0 saves ~0.7 s/block on CPU at T=800
    # "bfloat16": encoder, variance adaptor, decoder and postnet compute in bf16 (params stay float32, outputs and
    # losses are float32; the aligner always runs in float32: its log-softmax / CTC / Viterbi need the range)
    compute_dtype: str = "float32"
    remat: bool = False  # recompute encoder/decoder block activations in the backward pass (less memory)
    # Kernel-3/5 convolutions everywhere in the model: "auto" (Winograd for float32 on CPU, else XLA's), "winograd"
    # or "direct" (layers/winograd.py). Same parameters and, within float32 rounding, the same outputs.
    conv_algorithm: str = "auto"

    def __post_init__(self):
        config_checks.integers(self, vocab_size=2, n_mels=1, dim=1, heads=1, encoder_layers=1, decoder_layers=1,
                               conv_filters=1, postnet_layers=1, postnet_channels=1, postnet_kernel=1, num_speakers=0)
        config_checks.divisible(self, "dim", "heads")
        if (not isinstance(self.conv_kernels, tuple) or len(self.conv_kernels) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.conv_kernels)):
            raise ConfigError(f"FastSpeech2Config.conv_kernels must be two integers >= 1, got {self.conv_kernels!r}")
        config_checks.fraction(self, "dropout")
        config_checks.fraction(self, "attention_dropout", none_ok=True)
        if not isinstance(self.predictor, VariancePredictorConfig):
            raise ConfigError(f"FastSpeech2Config.predictor must be a VariancePredictorConfig, got {self.predictor!r}")
        if self.aligner is not None and not isinstance(self.aligner, AlignerConfig):
            raise ConfigError(f"FastSpeech2Config.aligner must be None or an AlignerConfig, got {self.aligner!r}")
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))
        config_checks.choice(self, "variance_level", ("token", "frame"))
        config_checks.choice(self, "conv_algorithm", ALGORITHMS)
        config_checks.flag(self, "remat")

    @classmethod
    def from_dict(cls, data: dict) -> "FastSpeech2Config":
        """Inverse of `dataclasses.asdict` (config.json)."""
        data = dict(data)
        data["conv_kernels"] = tuple(data["conv_kernels"])
        data["predictor"] = VariancePredictorConfig(**data["predictor"])
        data["aligner"] = AlignerConfig(**data["aligner"]) if data.get("aligner") else None
        return cls(**data)

    @property
    def block(self) -> FFTBlockConfig:
        """The `FFTBlockConfig` of each encoder and decoder block."""
        return FFTBlockConfig(self.dim, self.heads, self.conv_filters, self.conv_kernels, self.dropout,
                              self.attention_dropout, self.remat, self.conv_algorithm)


def preset(name: str, vocab_size: int, **overrides) -> FastSpeech2Config:
    """`tiny` (tests), `base` (default CPU run), `ljspeech` (paper / ESPnet LJSpeech size: 4+4 blocks, 384, 2 heads, 1536)."""
    presets = {
        "tiny": dict(dim=32, heads=2, encoder_layers=1, decoder_layers=1, conv_filters=64, conv_kernels=(3, 1),
                     dropout=0.0, predictor=VariancePredictorConfig(32, 3, 0.0), postnet_layers=2, postnet_channels=32,
                     aligner=AlignerConfig(dim=32, text_hidden=32, mel_hidden=32)),
        # No dropout in the body: at the CPU budget (a few epochs) the model is far from overfitting, and dropout
        # slowed learning (benchmarks/RESULTS.md, TTS default run: 56.9 % -> 11.5 % CER with it off).
        "base": dict(dim=192, heads=2, encoder_layers=3, decoder_layers=3, conv_filters=768, conv_kernels=(3, 1),
                     dropout=0.0, attention_dropout=0.0, predictor=VariancePredictorConfig(192, 3, 0.1),
                     postnet_channels=256),
        # ESPnet's LJSpeech FastSpeech2: kernel-3 position-wise convs, 256-channel postnet; 36.3 M parameters here.
        "ljspeech": dict(dim=384, heads=2, encoder_layers=4, decoder_layers=4, conv_filters=1536, conv_kernels=(3, 3),
                         dropout=0.2, predictor=VariancePredictorConfig(256, 3, 0.5), postnet_channels=256),
    }
    if name not in presets:
        raise ConfigError(f"unknown FastSpeech2 preset {name!r}; choose one of {', '.join(presets)}")
    return FastSpeech2Config(vocab_size=vocab_size, **{**presets[name], **overrides})


INPUT_KEYS = ("tokens", "token_mask", "token_lengths", "mel", "frame_mask", "frame_lengths", "pitch", "energy")


def model_inputs(batch: dict, config: FastSpeech2Config) -> dict:
    """Host side: the pipeline batch keys the model reads, plus the aligner's `log_prior` (aligner on) or the
    batch's `durations` (aligner off). The batch is checked first (`check_batch`)."""
    check_batch(batch, config)
    inputs = {k: batch[k] for k in INPUT_KEYS}
    if config.aligner is None:
        return {**inputs, "durations": batch["durations"]}
    return with_alignment_prior(inputs, config.aligner.prior_scale)


def check_has_prior(batch: dict) -> None:
    """The training forward pass with the aligner on needs the batch's `log_prior` (B, T, N): without it the aligner
    used to train silently without its prior. `FeatureError` (one line) naming the fix."""
    if "log_prior" not in batch:
        raise FeatureError("the batch has no log_prior for the aligner: pass it through "
                           "fastspeech2.model_inputs(batch, config) (or aligner.with_alignment_prior) first")


def check_batch(batch: dict, config: FastSpeech2Config) -> None:
    """A host batch (NumPy arrays, e.g. one built in a notebook or by an external aligner) is one the model can
    train on, else `FeatureError` with one line naming the key and the first bad row: every key present; tokens
    and masks (B, N), mel (B, T, n_mels), contours and frame mask (B, T); lengths equal to their masks' sums (the
    aligner's prior is built from the lengths, which were silently clipped when they exceeded the padded size);
    with `aligner=None`, durations (B, N) >= 0, zero on padding tokens and summing to each row's frame length, so
    the length regulator never cuts or pads a row; token ids inside the symbol table (`vocab_size`) and, for a
    multi-speaker model, `speaker` ids inside its speaker table."""
    layout = {"tokens": "BN", "token_mask": "BN", "token_lengths": "B", "mel": "BTM", "frame_mask": "BT",
              "frame_lengths": "B", "pitch": "BT", "energy": "BT"}
    if config.aligner is None:
        layout["durations"] = "BN"
    if config.num_speakers and "speaker" in batch:
        layout["speaker"] = "B"
    hint = (" (aligner=None takes durations from the batch; this corpus has none, so keep the built-in aligner)"
            if config.aligner is None and "durations" not in batch else "")
    arrays = batch_arrays(batch, layout, "FastSpeech2", sizes={"M": config.n_mels}, hint=hint)
    lengths_match_masks(arrays, {"token_lengths": "token_mask", "frame_lengths": "frame_mask"}, "FastSpeech2")
    check_ids(arrays["tokens"], config.vocab_size, "token", context="FastSpeech2 batch: ")
    if "speaker" in layout:
        check_ids(arrays["speaker"], config.num_speakers, "speaker", context="FastSpeech2 batch: ")
    if config.aligner is None:
        durations = arrays["durations"]
        total = np.where(arrays["token_mask"], durations, 0).sum(axis=1)
        bad = np.flatnonzero((total != arrays["frame_lengths"]) | (durations < 0).any(axis=1)
                             | ((durations != 0) & ~arrays["token_mask"].astype(bool)).any(axis=1))
        if bad.size:
            r = int(bad[0])
            raise FeatureError(f"FastSpeech2 batch row {r}: durations sum to {int(total[r])} frames over its "
                               f"{int(arrays['token_lengths'][r])} tokens (min {int(durations[r].min())}), "
                               f"frame_lengths is {int(arrays['frame_lengths'][r])}; they must agree, with zeros on "
                               f"padding tokens")


def variance_targets(batch: dict, durations, level: str):
    """Teacher-forced pitch and energy: token averages over each token's frames (level "token", (B, N)) or the
    frame contours as they are (level "frame", (B, T))."""
    if level == "frame":
        return batch["pitch"], batch["energy"]
    frame_mask, token_mask = batch["frame_mask"], batch["token_mask"]
    return (token_average(batch["pitch"] * frame_mask, durations) * token_mask,
            token_average(batch["energy"] * frame_mask, durations) * token_mask)


class Postnet(nn.Module):
    """5 conv layers (tanh between, none after the last), residual. (B, T, M) -> (B, T, M)."""

    config: FastSpeech2Config

    @nn.compact
    def __call__(self, mel, frame_mask, *, train: bool):
        c = self.config
        dtype = jnp.dtype(c.compute_dtype)
        mel = mel.astype(dtype)
        m = frame_mask[..., None].astype(dtype)
        h = mel
        for i in range(c.postnet_layers):
            last = i == c.postnet_layers - 1
            h = Conv1D(c.n_mels if last else c.postnet_channels, c.postnet_kernel, dtype, c.conv_algorithm,
                       name=f"conv_{i}")(h * m)
            h = nn.LayerNorm(dtype=dtype, name=f"norm_{i}")(h)
            if not last:
                h = Dropout(c.dropout, deterministic=not train)(jnp.tanh(h))
        return (mel + h) * m


class FastSpeech2(nn.Module):
    """FastSpeech2 with its own aligner. Training: `model.apply({"params": p}, model_inputs(batch, config),
    train=True, rngs={"dropout": key})` -> (outputs {"mel", "mel_post": (B, T, M), ...}, aux {durations, predictions,
    alignments}); `model_inputs` adds the aligner's prior and checks the batch. Inference: `method=FastSpeech2.generate`
    with tokens (B, N) int32 (0 = padding), token_mask (B, N) bool and a static max_frames -> (mel (B, max_frames, M),
    frame_mask, durations (B, N)); `generate` is `prepare` (encoder and durations) then `render` (at a frame length
    chosen from those durations). Parts: `encode`, `align`, `adapt`, `decode`."""
    config: FastSpeech2Config

    def setup(self):
        c = self.config
        dtype = jnp.dtype(c.compute_dtype)
        self.embedding = nn.Embed(c.vocab_size, c.dim, name="token_embedding")
        self.encoder = FFTStack(c.block, c.encoder_layers, dtype, name="encoder")
        self.variance_adaptor = VarianceAdaptor(VarianceAdaptorConfig(c.predictor, c.variance_level, c.conv_algorithm), dtype,
                                                name="variance_adaptor")
        self.decoder = FFTStack(c.block, c.decoder_layers, dtype, name="decoder")
        self.mel_out = nn.Dense(c.n_mels, dtype=dtype, name="mel_out")
        self.postnet = Postnet(c, name="postnet")
        if c.num_speakers:
            self.speaker_embedding = nn.Embed(c.num_speakers, c.dim, name="speaker_embedding")
        if c.aligner is not None:
            self.aligner = AlignmentEncoder(c.aligner, c.conv_algorithm, name="aligner")

    def encode(self, tokens, token_mask, speaker=None, *, train: bool = False, adapters: dict | None = None):
        """tokens (B, N) int, token_mask (B, N) -> (B, N, D). `adapters`: one per encoder block (`FFTStack`)."""
        token_shapes(tokens, token_mask, "FastSpeech2")
        x = (self.embed_tokens(tokens) * token_mask[..., None]).astype(self.config.compute_dtype)
        h = self.encoder(x, token_mask, train=train, adapters=adapters)
        if self.config.num_speakers and speaker is not None:
            speaker = table_ids(speaker, self.config.num_speakers, "speaker")
            h = h + self.speaker_embedding(speaker)[:, None, :] * token_mask[..., None]
        return h

    def embed_tokens(self, tokens):
        """tokens (B, N) int -> (B, N, D); an id outside the symbol table raises (or is NaN under jit, `table_ids`)."""
        return self.embedding(table_ids(tokens, self.config.vocab_size, "token"))

    def align(self, tokens, token_mask, mel, frame_mask, log_prior=None):
        """Learned alignment: (log soft (B, T, N), hard (B, T, N), durations (B, N)). Hard path has no gradient."""
        log_soft = self.aligner(self.embed_tokens(tokens), token_mask, mel, frame_mask, log_prior)
        hard = monotonic_alignment_search(jax.lax.stop_gradient(log_soft), token_mask, frame_mask,
                                          self.config.aligner.recurrence)
        return log_soft, hard, durations_from_alignment(hard)

    def adapt(self, h, token_mask, max_frames: int, *, train: bool = False, durations=None, pitch=None,
              energy=None, controls: Controls = Controls()):
        """Variance adaptor: encoder output h (B, N, D), token_mask (B, N) -> length-regulated frames (B, max_frames, D)
        with pitch and energy added, and the predictions; given durations/pitch/energy (training) they are used
        instead of the predictions. `controls` scale speed, pitch and energy at inference."""
        return self.variance_adaptor(h, token_mask, max_frames, train=train, durations=durations, pitch=pitch,
                                     energy=energy, controls=controls)

    def decode(self, frames, frame_mask, *, train: bool = False, adapters: dict | None = None):
        """(B, T, D) -> (mel before postnet, mel after postnet), each (B, T, M). `adapters`: one per decoder block."""
        h = self.decoder(frames.astype(self.config.compute_dtype), frame_mask, train=train, adapters=adapters)
        mel = self.mel_out(h) * frame_mask[..., None].astype(h.dtype)
        return mel.astype(jnp.float32), self.postnet(mel, frame_mask, train=train).astype(jnp.float32)

    def __call__(self, batch, *, train: bool = True):
        """Training forward pass on a pipeline batch (+ `log_prior` (B, T, N) when the aligner is on)."""
        tokens, token_mask = batch["tokens"], batch["token_mask"]
        frame_mask, max_frames = batch["frame_mask"], batch["frame_mask"].shape[1]
        h = self.encode(tokens, token_mask, batch.get("speaker"), train=train)
        aux = {}
        if self.config.aligner is not None:
            check_has_prior(batch)
            log_soft, hard, durations = self.align(tokens, token_mask, batch["mel"], frame_mask, batch["log_prior"])
            aux.update(log_alignment=log_soft, hard_alignment=hard)
        else:
            durations = batch["durations"]
        pitch, energy = variance_targets(batch, durations, self.config.variance_level)
        frames, out_mask, variance = self.adapt(h, token_mask, max_frames, train=train, durations=durations,
                                                pitch=pitch, energy=energy)
        mel, mel_post = self.decode(frames, out_mask, train=train)
        aux.update(variance, durations=durations, pitch_target=pitch, energy_target=energy)
        return {"mel": mel, "mel_post": mel_post, "frame_mask": out_mask}, aux

    def generate(self, tokens, token_mask, max_frames: int, speaker=None, controls: Controls = Controls(),
                 variance: bool = False):
        """Inference: (mel_post (B, T, M), frame_mask (B, T), durations (B, N)) with T = max_frames (static). With
        `variance` (static), a fourth element {"pitch", "energy"}: the predictions, z-scored, (B, N) at token level
        or (B, T) at frame level."""
        h, durations = self.prepare(tokens, token_mask, speaker, controls)
        return self.render(h, token_mask, durations, max_frames, speaker, controls, variance)

    def prepare(self, tokens, token_mask, speaker=None, controls: Controls = Controls()):
        """Inference, first half (no frame length needed): tokens (B, N) int32, token_mask (B, N) -> (encoder output
        h (B, N, D) in the compute dtype, predicted durations (B, N) int32 frames, `controls.speed` applied). A
        batch's frame count is known from here, so `render` can run at the length that holds it."""
        h = self.encode(tokens, token_mask, speaker, train=False)
        return h, self.variance_adaptor.predict_durations(h, token_mask, controls)

    def render(self, h, token_mask, durations, max_frames: int, speaker=None, controls: Controls = Controls(),
               variance: bool = False):
        """Inference, second half: `prepare`'s h (B, N, D) and durations (B, N), a static max_frames -> `generate`'s
        outputs (frames past max_frames are cut: choose it from durations.sum(-1)). `speaker` is unused here (it
        is in h already); it keeps the signature of the conditioned models' `render`."""
        del speaker
        frames, frame_mask, aux = self.adapt(h, token_mask, max_frames, train=False, durations=durations,
                                             controls=controls)
        _, mel_post = self.decode(frames, frame_mask, train=False)
        if variance:
            return mel_post, frame_mask, durations, {"pitch": aux["pitch"], "energy": aux["energy"]}
        return mel_post, frame_mask, durations
