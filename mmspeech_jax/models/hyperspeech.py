"""HyperSpeech: FastSpeech2 conditioned on other modalities, adapted to a new voice through a hypernetwork.

    condition = mean of the available of {speaker table[id], ReferenceEncoder(reference mel), VectorEncoder(vector)}
    tokens -> backbone encoder (adapter after each block)
           -> fusion(h, condition)                          (FiLM by default; any module of layers/fusion.py)
           -> adapter -> backbone variance adaptor -> backbone decoder (adapter after each block) -> mel

Adapter weights come from `AdapterHypernetwork(condition, site)` (`adapters="hyper"`, after HyperTTS, Li et al.,
2024), or are absent (`"none"`); `plain_adapters=True` adds ordinary learned adapters after them (the baseline a
frozen backbone is usually adapted with). With the hypernetwork's `up` head at zero and an identity-at-init fusion
(`film`, `gated_cross_attention`) the model equals its backbone: a trained FastSpeech2's params placed under
"backbone" give the same output (tested).

Batch keys beyond FastSpeech2's: `speaker` (B,) int (-1 = unknown), optional `reference_mel` (B, R, M) with
`reference_mask` (B, R) (training without them uses each utterance's own mel as its reference, as GST training
does), optional `condition_vector` (B, C) when `vector_dim > 0`. In training, `speaker_dropout` of the examples
lose their speaker id, so the model also works from the reference alone (how unseen voices are conditioned).

Parameter-efficient adaptation (`trainable_mask`): "hyper" trains the hypernetwork, the conditioning encoders and
the fusion layer; "plain_adapters" only the plain adapters; "full" everything.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.adapter import PlainAdapters, adapter_at, adapter_forward, split_sites
from mmspeech_jax.layers.conditioning import ReferenceEncoder, SpeakerEmbedding, VectorEncoder, combine_conditions
from mmspeech_jax.layers.fusion import FiLM, ConcatFusion, CrossAttentionFusion, GatedCrossAttention
from mmspeech_jax.layers.hypernetwork import AdapterHypernetwork
from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config, variance_targets
from mmspeech_jax.models.variance_adaptor import Controls

FUSIONS = ("film", "concat", "sum", "cross_attention", "gated_cross_attention")
STRATEGIES = ("full", "hyper", "plain_adapters")


@dataclasses.dataclass(frozen=True)
class HyperSpeechConfig:
    backbone: FastSpeech2Config
    condition_dim: int = 128
    num_speakers: int = 0  # speaker table size; 0: no table
    reference: bool = True  # reference-audio encoder
    vector_dim: int = 0  # width of an external condition vector; 0: none
    fusion: str = "film"
    adapters: str = "hyper"  # "hyper" or "none"
    plain_adapters: bool = False
    adapter_dim: int = 16
    hyper_hidden: int = 128
    site_dim: int = 32
    speaker_dropout: float = 0.5

    def __post_init__(self):
        if not isinstance(self.backbone, FastSpeech2Config):
            raise ConfigError(f"HyperSpeechConfig.backbone must be a FastSpeech2Config, got {self.backbone!r}")
        config_checks.integers(self, condition_dim=1, num_speakers=0, vector_dim=0, adapter_dim=1, hyper_hidden=1,
                               site_dim=1)
        config_checks.choice(self, "fusion", FUSIONS)
        config_checks.choice(self, "adapters", ("hyper", "none"))
        config_checks.flag(self, "reference", "plain_adapters")
        config_checks.number(self, "speaker_dropout", 0, 1)  # the share of examples trained without their speaker
        if not (self.num_speakers or self.reference or self.vector_dim):
            raise ConfigError("HyperSpeechConfig: enable at least one condition (num_speakers, reference, vector_dim)")
        if self.backbone.num_speakers:
            raise ConfigError("HyperSpeechConfig: the backbone must have num_speakers=0 (speakers are a condition here)")

    @property
    def sites(self) -> tuple[int, int, int]:
        """Adapter sites: (encoder blocks, variance adaptor input, decoder blocks)."""
        return self.backbone.encoder_layers, 1, self.backbone.decoder_layers

    @classmethod
    def from_dict(cls, data: dict) -> "HyperSpeechConfig":
        return cls(**{**data, "backbone": FastSpeech2Config.from_dict(data["backbone"])})


class HyperSpeech(nn.Module):
    config: HyperSpeechConfig

    def setup(self):
        c = self.config
        self.backbone = FastSpeech2(c.backbone, name="backbone")
        if c.num_speakers:
            self.speaker_embedding = SpeakerEmbedding(c.num_speakers, c.condition_dim, name="speaker_embedding")
        if c.reference:
            self.reference_encoder = ReferenceEncoder(c.condition_dim, name="reference_encoder")
        if c.vector_dim:
            self.vector_encoder = VectorEncoder(c.condition_dim, name="vector_encoder")
        self.fusion = {"film": lambda: FiLM(name="fusion"), "concat": lambda: ConcatFusion("concat", name="fusion"),
                       "sum": lambda: ConcatFusion("sum", name="fusion"),
                       "cross_attention": lambda: CrossAttentionFusion(c.backbone.heads, name="fusion"),
                       "gated_cross_attention": lambda: GatedCrossAttention(c.backbone.heads, name="fusion")}[c.fusion]()
        if c.adapters == "hyper":
            self.hypernetwork = AdapterHypernetwork(sum(c.sites), c.backbone.dim, c.adapter_dim, c.site_dim,
                                                    c.hyper_hidden, name="hypernetwork")
        if c.plain_adapters:
            self.plain = PlainAdapters(sum(c.sites), c.backbone.dim, c.adapter_dim, name="plain_adapters")

    def condition(self, speaker=None, reference_mel=None, reference_mask=None, vector=None):
        """The conditioning vector (B, E) and whether any condition was available per example (B,)."""
        c = self.config
        vectors, flags = [], []
        if c.num_speakers and speaker is not None:
            v, f = self.speaker_embedding(speaker)
            vectors.append(v), flags.append(f)
        if c.reference and reference_mel is not None:
            v, f = self.reference_encoder(reference_mel, reference_mask)
            vectors.append(v), flags.append(f)
        if c.vector_dim and vector is not None:
            v, f = self.vector_encoder(vector)
            vectors.append(v), flags.append(f)
        if not vectors:
            raise ConfigError("HyperSpeech needs a condition: a speaker id, a reference mel or a condition vector")
        return combine_conditions(vectors, flags)

    def adapter_weights(self, condition):
        """[(encoder, adaptor, decoder) stacked dicts] for each adapter kind in use (hyper first, then plain)."""
        kinds = []
        if self.config.adapters == "hyper":
            kinds.append(self.hypernetwork(condition))
        if self.config.plain_adapters:
            kinds.append(self.plain(condition.shape[0]))
        return [split_sites(w, self.config.sites) for w in kinds]

    def _conditioned_frames(self, tokens, token_mask, condition, max_frames, *, train, **adapt_kwargs):
        kinds = self.adapter_weights(condition)
        encoder = [k[0] for k in kinds]
        h = self.backbone.encode(tokens, token_mask, train=train, adapters=encoder or None)
        h = self.fusion(h, token_mask, condition, train=train)
        for k in kinds:
            h = adapter_forward(h, token_mask, adapter_at(k[1], 0))
        frames, frame_mask, aux = self.backbone.adapt(h, token_mask, max_frames, train=train, **adapt_kwargs)
        return frames, frame_mask, aux, [k[2] for k in kinds] or None

    def __call__(self, batch, *, train: bool = True):
        """Training forward pass, same outputs as `FastSpeech2.__call__` (so its losses apply unchanged)."""
        c = self.config
        tokens, token_mask = batch["tokens"], batch["token_mask"]
        frame_mask = batch["frame_mask"]
        speaker = batch.get("speaker")
        if speaker is not None and train and c.speaker_dropout > 0:
            keep = jax.random.bernoulli(self.make_rng("dropout"), 1 - c.speaker_dropout, speaker.shape)
            speaker = jnp.where(keep, speaker, -1)
        reference = batch.get("reference_mel", batch["mel"])
        reference_mask = batch.get("reference_mask", frame_mask)
        condition, _ = self.condition(speaker, reference, reference_mask, batch.get("condition_vector"))
        aux = {}
        if c.backbone.aligner is not None:
            log_soft, hard, durations = self.backbone.align(tokens, token_mask, batch["mel"], frame_mask,
                                                            batch.get("log_prior"))
            aux.update(log_alignment=log_soft, hard_alignment=hard)
        else:
            durations = batch["durations"]
        pitch, energy = variance_targets(batch, durations, c.backbone.variance_level)
        frames, out_mask, variance, decoder = self._conditioned_frames(
            tokens, token_mask, condition, frame_mask.shape[1], train=train, durations=durations, pitch=pitch,
            energy=energy)
        mel, mel_post = self.backbone.decode(frames, out_mask, train=train, adapters=decoder)
        aux.update(variance, durations=durations, pitch_target=pitch, energy_target=energy, condition=condition)
        return {"mel": mel, "mel_post": mel_post, "frame_mask": out_mask}, aux

    def generate(self, tokens, token_mask, max_frames: int, speaker=None, reference_mel=None, reference_mask=None,
                 vector=None, controls: Controls = Controls()):
        """Inference: (mel_post (B, T, M), frame_mask (B, T), durations (B, N)), T = max_frames (static)."""
        condition, _ = self.condition(speaker, reference_mel, reference_mask, vector)
        frames, frame_mask, aux, decoder = self._conditioned_frames(tokens, token_mask, condition, max_frames,
                                                                    train=False, controls=controls)
        _, mel_post = self.backbone.decode(frames, frame_mask, train=False, adapters=decoder)
        return mel_post, frame_mask, aux["durations"]


def trainable_mask(params, strategy: str):
    """Pytree of bools like `params`: which leaves train under an adaptation `strategy` (see STRATEGIES)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown adaptation strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    conditioning = {"hypernetwork", "speaker_embedding", "reference_encoder", "vector_encoder", "fusion"}

    def trainable(path, _):
        top = str(getattr(path[0], "key", path[0]))
        if strategy == "full":
            return True
        if strategy == "hyper":
            return top in conditioning
        return top == "plain_adapters"

    return jax.tree_util.tree_map_with_path(trainable, params)
