"""CTC speech recognition: Conv2d subsampling (4x) -> Conformer (or plain Transformer) encoder -> CTC head.

    features (B, T, M) normalized log-mel, frame_mask (B, T)
      -> frontend (Conv2dSubsampling) -> (B, T', D) -> encoder -> (B, T', D) -> ctc_head -> log-probs (B, T', V)

Pure entry points: `encode` (frontend + encoder, used by BEST-RQ pretraining and fine-tuning) and `__call__`
(log-probabilities + mask). Targets are characters of the `characters` symbol table without clause marks
(letters, space, apostrophe; `asr_targets` makes them from a pipeline batch); blank is id 0 (`<pad>`).

Presets: `tiny` (tests), `base` (default CPU run), `conformer_s` (ESPnet LibriSpeech-100 Conformer-CTC size:
18 blocks, 256 wide, 4 heads, 1024 FFN units, conv kernel 31; about 30 M parameters).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.batch_checks import batch_arrays
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.gain_augment import GainAugmentConfig, gain_augment
from mmspeech_jax.audio.noise_augment import NoiseAugmentConfig, noise_augment, noise_bank
from mmspeech_jax.audio.spec_augment import SpecAugmentConfig, spec_augment
from mmspeech_jax.errors import ConfigError, FeatureError
from mmspeech_jax.layers.conformer import ConformerBlockConfig, ConformerStack
from mmspeech_jax.layers.subsampling import FACTORS as SUBSAMPLING_FACTORS
from mmspeech_jax.layers.subsampling import Conv2dSubsampling
from mmspeech_jax.layers.transformer import FFTBlockConfig, FFTStack
from mmspeech_jax.layers.winograd import ALGORITHMS as CONV_ALGORITHMS
from mmspeech_jax.losses.ctc import ctc_feasible, ctc_total
from mmspeech_jax.losses.recurrence import ALGORITHMS as RECURRENCES
from mmspeech_jax.losses.ratios import ratio
from mmspeech_jax.text.alphabet import PUNCTUATION
from mmspeech_jax.text.symbols import character_table

ENCODERS = ("conformer", "transformer")


@dataclasses.dataclass(frozen=True)
class CTCASRConfig:
    """CTC speech recognizer: vocabulary, mel channels, encoder kind ("conformer" or "transformer"), width, heads,
    feed-forward width, layers, depthwise kernel, frontend channels and subsampling factor, dropout, SpecAugment, gain
    and noise augmentation, adapters/LoRA, compute dtype, remat, CTC recurrence and convolution algorithm. Checked
    when built."""
    vocab_size: int = len(character_table())
    n_mels: int = 80
    encoder: str = "conformer"
    dim: int = 144
    heads: int = 4
    ffn_dim: int = 576
    layers: int = 4
    conv_kernel: int = 15
    subsampling_channels: int = 32
    subsampling: int = 2  # time subsampling factor of the frontend: 4 or 2 (see layers/subsampling.py)
    # The frontend's strided 3x3 convolutions: "auto" (Winograd for float32 on CPU from 16 input channels, else the
    # patch matmul), "winograd" or "direct" (layers/subsampling.py). Same parameters; outputs equal within float32.
    conv_algorithm: str = "auto"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    adapter_dim: int = 0
    lora_rank: int = 0
    spec_augment: SpecAugmentConfig | None = SpecAugmentConfig()
    # Training utterances at random levels (audio/gain_augment.py); the loss function then needs the feature
    # statistics (`make_ctc_loss_fn(model, stats)`). None: off (configs written before it existed).
    gain_augment: GainAugmentConfig | None = None
    # Training utterances over stationary noise (audio/noise_augment.py); the loss function then needs the feature
    # statistics and the features' `MelConfig` (`make_ctc_loss_fn(model, stats, mel=...)`). None: off.
    noise_augment: NoiseAugmentConfig | None = None
    # "bfloat16": frontend and encoder compute in bf16; params, the CTC head, log-probabilities and losses stay
    # float32.
    compute_dtype: str = "float32"
    remat: bool = False  # recompute encoder block activations in the backward pass (less memory)
    ctc_recurrence: str = "auto"  # CTC over frames: "sequential" (optax), "blocked" or "auto" (losses/ctc.py)

    def __post_init__(self):
        config_checks.integers(self, vocab_size=2, n_mels=1, dim=1, heads=1, ffn_dim=1, layers=1, conv_kernel=1,
                               subsampling_channels=1, adapter_dim=0, lora_rank=0)
        config_checks.divisible(self, "dim", "heads")
        config_checks.choice(self, "encoder", ENCODERS)
        config_checks.choice(self, "subsampling", tuple(SUBSAMPLING_FACTORS))
        config_checks.choice(self, "conv_algorithm", CONV_ALGORITHMS)
        config_checks.fraction(self, "dropout", "attention_dropout")
        if self.spec_augment is not None and not isinstance(self.spec_augment, SpecAugmentConfig):
            raise ConfigError(f"CTCASRConfig.spec_augment must be None or a SpecAugmentConfig, got {self.spec_augment!r}")
        if self.gain_augment is not None and not isinstance(self.gain_augment, GainAugmentConfig):
            raise ConfigError(f"CTCASRConfig.gain_augment must be None or a GainAugmentConfig, got {self.gain_augment!r}")
        if self.noise_augment is not None and not isinstance(self.noise_augment, NoiseAugmentConfig):
            raise ConfigError(f"CTCASRConfig.noise_augment must be None or a NoiseAugmentConfig, got "
                              f"{self.noise_augment!r}")
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))
        config_checks.flag(self, "remat")
        config_checks.choice(self, "ctc_recurrence", RECURRENCES)

    @classmethod
    def from_dict(cls, data: dict) -> "CTCASRConfig":
        """Inverse of `dataclasses.asdict` (config.json)."""
        data = dict(data)
        if data.get("spec_augment") is not None:
            data["spec_augment"] = SpecAugmentConfig(**data["spec_augment"])
        if data.get("gain_augment") is not None:
            data["gain_augment"] = GainAugmentConfig(**data["gain_augment"])
        if data.get("noise_augment") is not None:
            data["noise_augment"] = NoiseAugmentConfig(**data["noise_augment"])
        return cls(**data)

    @property
    def block(self) -> ConformerBlockConfig:
        """The `ConformerBlockConfig` of each encoder block."""
        return ConformerBlockConfig(dim=self.dim, heads=self.heads, ffn_dim=self.ffn_dim, conv_kernel=self.conv_kernel,
                                    dropout=self.dropout, attention_dropout=self.attention_dropout,
                                    adapter_dim=self.adapter_dim, lora_rank=self.lora_rank, remat=self.remat)


PRESETS = {
    "tiny": dict(dim=32, heads=2, ffn_dim=64, layers=2, conv_kernel=7, subsampling_channels=8),
    # base: 2x subsampling because the embedded corpus speaks fast (~17 characters/s) at a coarse hop (11.6 ms).
    "base": dict(),
    "conformer_s": dict(dim=256, heads=4, ffn_dim=1024, layers=18, conv_kernel=31, subsampling_channels=256,
                        subsampling=4),
}


def preset(name: str, **overrides) -> CTCASRConfig:
    """`tiny` (tests), `base` (default CPU run), `conformer_s` (ESPnet LibriSpeech-100 Conformer-CTC size)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown ASR preset {name!r}; choose one of {sorted(PRESETS)}")
    return CTCASRConfig(**{**PRESETS[name], **overrides})


def frontend_and_encoder(c: CTCASRConfig):
    """The (frontend, encoder) modules shared by `CTCASR` and BEST-RQ pretraining (call inside `setup`)."""
    dtype = jnp.dtype(c.compute_dtype)
    frontend = Conv2dSubsampling(c.dim, c.subsampling_channels, c.subsampling, dtype, c.conv_algorithm)
    if c.encoder == "conformer":
        return frontend, ConformerStack(c.block, c.layers, dtype)
    block = FFTBlockConfig(dim=c.dim, heads=c.heads, conv_filters=c.ffn_dim, conv_kernels=(1, 1), dropout=c.dropout,
                           attention_dropout=c.attention_dropout, remat=c.remat)
    return frontend, FFTStack(block, c.layers, dtype)


class CTCASR(nn.Module):
    """Conformer-CTC (or Transformer-CTC) recognizer. `model.apply({"params": p}, features, frame_mask, train=...)`:
    features (B, T, M) float32 (normalized log-mel), frame_mask (B, T) bool (True = valid) -> (log-probabilities
    (B, T', V) float32 over the character table, blank = 0; mask (B, T')), T' = T / subsampling. `encode` returns
    the hidden states instead."""
    config: CTCASRConfig

    def setup(self):
        c = self.config
        self.frontend, self.encoder = frontend_and_encoder(c)
        self.ctc_head = nn.Dense(c.vocab_size, dtype=jnp.float32)  # float32 logits for the log-softmax and CTC

    def encode(self, features, frame_mask, *, train: bool = False):
        """(B, T, M), (B, T) -> hidden (B, T', D), mask (B, T')."""
        h, mask = self.frontend(features, frame_mask)
        return self.encoder(h, mask, train=train), mask

    def __call__(self, features, frame_mask, *, train: bool = False):
        """(B, T, M), (B, T) -> log-probabilities (B, T', V) float32, mask (B, T')."""
        h, mask = self.encode(features, frame_mask, train=train)
        return jax.nn.log_softmax(self.ctc_head(h.astype(jnp.float32)), axis=-1), mask


def asr_targets(transcript_ids: np.ndarray, transcript_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Character ids without clause marks, left-packed and re-padded: (B, L) ids, (B, L) mask (host, NumPy)."""
    table = character_table()
    drop = np.asarray([table.id(p) for p in PUNCTUATION])
    keep = transcript_mask & ~np.isin(transcript_ids, drop)
    out = np.zeros_like(transcript_ids)
    for i in range(transcript_ids.shape[0]):
        ids = transcript_ids[i][keep[i]]
        # Clause marks sit next to spaces ("a, b"): dropping them must not leave double or edge spaces.
        text = " ".join("".join(table.lookup(ids)).split())
        ids = np.asarray(table.ids(text), np.int32)
        out[i, : ids.size] = ids
    return out, out > 0


def normalize_features(mel: np.ndarray, frame_mask: np.ndarray, stats: dict) -> np.ndarray:
    """Z-score log-mel with the corpus's training statistics; padding stays 0."""
    mean, std = np.asarray(stats["mel_mean"], np.float32), np.asarray(stats["mel_std"], np.float32)
    return ((mel - mean) / std * frame_mask[..., None]).astype(np.float32)


def model_inputs(batch: dict, stats: dict) -> dict:
    """Host side: a pipeline batch -> the ASR model's inputs (normalized features, frame mask, targets), after
    `check_batch`."""
    check_batch(batch, stats)
    labels, label_mask = asr_targets(batch["transcript_ids"], batch["transcript_mask"])
    return {"features": normalize_features(batch["mel"], batch["frame_mask"], stats),
            "frame_mask": batch["frame_mask"], "labels": labels, "label_mask": label_mask,
            "example_mask": batch["example_mask"]}


def check_batch(batch: dict, stats: dict) -> None:
    """A host batch the ASR can use, else one-line `FeatureError`: mel (B, T, M) with the M channels of the corpus
    statistics `stats`, frame mask (B, T), transcript ids and mask (B, L), example mask (B,), and ids on valid
    positions that are characters of the table (they used to fail in NumPy's broadcasting or an IndexError)."""
    arrays = batch_arrays(batch, {"mel": "BTM", "frame_mask": "BT", "transcript_ids": "BL", "transcript_mask": "BL",
                                  "example_mask": "B"}, "ASR", sizes={"M": len(stats["mel_mean"])})
    ids, mask, vocab = arrays["transcript_ids"], arrays["transcript_mask"].astype(bool), len(character_table())
    outside = mask & ((ids < 0) | (ids >= vocab))
    if outside.any():
        r, i = (int(x[0]) for x in np.nonzero(outside))
        raise FeatureError(f"ASR batch row {r}: transcript id {int(ids[r, i])} at position {i} is not one of the "
                           f"{vocab} character ids")


def make_ctc_loss_fn(model: CTCASR, stats: dict | None = None, log_floor: float | None = None,
                     mel: MelConfig | None = None):
    """`loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts)` for the shared trainer (noise
    augmentation, then gain augmentation, then SpecAugment, when train and configured); `counts`: see
    `losses/ratios.py`. Gain and noise augmentation need the features' statistics `stats` ({"mel_mean", "mel_std"},
    as `model_inputs` normalized with) and their `log_floor` (default `mel.log_floor`, else `MelConfig().log_floor`);
    noise augmentation also needs the features' `mel` config (its noise bank is made with it). Missing either is a
    one-line `ConfigError`."""
    gain, noise = model.config.gain_augment, model.config.noise_augment
    if (gain is not None or noise is not None) and stats is None:
        raise ConfigError("gain and noise augmentation need the feature statistics: "
                          "make_ctc_loss_fn(model, stats, log_floor, mel)")
    if noise is not None and mel is None:
        raise ConfigError("noise augmentation needs the features' MelConfig: make_ctc_loss_fn(model, stats, mel=...)")
    if log_floor is None:
        log_floor = (mel or MelConfig()).log_floor
    elif mel is not None and log_floor != mel.log_floor:
        raise ConfigError(f"make_ctc_loss_fn: log_floor {log_floor} is not the MelConfig's {mel.log_floor}")
    if noise is not None and mel.n_mels != model.config.n_mels:
        raise ConfigError(f"make_ctc_loss_fn: the MelConfig has {mel.n_mels} mel bands, the model "
                          f"{model.config.n_mels}")
    bank = noise_bank(noise, mel) if noise is not None else None

    def loss_fn(params, batch, rng, train, step, counts=None):
        features = batch["features"]
        augment_key, dropout_key = jax.random.split(rng)
        if train and noise is not None:
            features = noise_augment(features, batch["frame_mask"], jax.random.fold_in(augment_key, 2), bank,
                                     stats["mel_mean"], stats["mel_std"], log_floor, noise)
        if train and gain is not None:
            features = gain_augment(features, batch["frame_mask"], jax.random.fold_in(augment_key, 1),
                                    stats["mel_mean"], stats["mel_std"], log_floor, gain)
        if train and model.config.spec_augment is not None:
            features = spec_augment(features, batch["frame_mask"], augment_key, model.config.spec_augment)
        log_probs, mask = model.apply({"params": params}, features, batch["frame_mask"], train=train,
                                      rngs={"dropout": dropout_key})
        total, utterances = ctc_total(log_probs, mask, batch["labels"], batch["label_mask"], batch["example_mask"],
                                      algorithm=model.config.ctc_recurrence)
        loss = ratio(total, utterances, "utterances", counts)
        infeasible = ~ctc_feasible(mask, batch["labels"], batch["label_mask"]) & batch["example_mask"]
        return loss, {"ctc": loss, "ctc_infeasible": infeasible.sum(), "counts": {"utterances": utterances}}

    return loss_fn
