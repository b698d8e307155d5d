"""A character-level Transformer language model over the normalized-text alphabet (`character_table`).

tokens (B, N) int32, mask (B, N) bool (True = valid) -> logits (B, N, V) float32: position n predicts token n + 1.
Id 0 (the table's `<pad>`, also the CTC blank) is the sentence boundary: a sentence is encoded as
[0, c_1, ..., c_K, 0], so the model learns p(c_1 | start) and p(end | c_1..c_K). Causal pre-LN blocks with learned
absolute positions (at most `max_len` tokens, boundaries included).

Used as a text modality in the zoo (trained by the shared trainer: experiments/text_lm.py) and for shallow fusion
in the CTC prefix beam search (`decoding/ctc.py`; `lm_scorer` turns a trained model into the scorer it takes).
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax import config_checks
from mmspeech_jax.errors import ConfigError, FeatureError
from mmspeech_jax.losses.ratios import masked_total, ratio
from mmspeech_jax.text.symbols import character_table

BOUNDARY_ID = 0


@dataclasses.dataclass(frozen=True)
class TextLMConfig:
    """The character language model: vocabulary (the character table), width, heads, layers, MLP width, longest
    sequence and dropout. Checked when built."""
    vocab_size: int = len(character_table())
    dim: int = 192
    heads: int = 4
    layers: int = 3
    mlp_dim: int = 768
    max_len: int = 192
    dropout: float = 0.1

    def __post_init__(self):
        config_checks.integers(self, vocab_size=2, dim=1, heads=1, layers=1, mlp_dim=1, max_len=2)
        config_checks.number(self, "dropout")
        if self.dim % self.heads:
            raise ConfigError(f"TextLMConfig.dim {self.dim} must be a multiple of heads {self.heads}")

    @classmethod
    def from_dict(cls, data: dict) -> "TextLMConfig":
        """Inverse of `dataclasses.asdict` (config.json); unknown keys are ignored."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


PRESETS = {
    "tiny": dict(dim=32, heads=2, layers=1, mlp_dim=64, max_len=64),
    "base": dict(),
}


class CausalBlock(nn.Module):
    """Pre-LN causal self-attention + MLP. x (B, N, D), mask (B, N) -> (B, N, D); padded rows stay zero."""

    config: TextLMConfig

    @nn.compact
    def __call__(self, x, mask, *, train: bool):
        c = self.config
        b, n, d = x.shape
        h = nn.LayerNorm(name="attention_norm")(x)
        qkv = nn.Dense(3 * d, name="qkv")(h).reshape(b, n, 3, c.heads, d // c.heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // c.heads)
        allowed = jnp.tril(jnp.ones((n, n), bool))[None, None] & mask[:, None, None, :]
        weights = jax.nn.softmax(jnp.where(allowed, scores, jnp.finfo(scores.dtype).min), axis=-1)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d)
        x = x + nn.Dropout(c.dropout, deterministic=not train)(nn.Dense(d, name="out")(attended))
        h = nn.LayerNorm(name="mlp_norm")(x)
        h = nn.Dense(d, name="mlp_out")(nn.gelu(nn.Dense(c.mlp_dim, name="mlp_in")(h)))
        return (x + nn.Dropout(c.dropout, deterministic=not train)(h)) * mask[..., None]


class TextLM(nn.Module):
    """tokens (B, N) int32, mask (B, N) bool -> next-token logits (B, N, V) float32."""

    config: TextLMConfig

    @nn.compact
    def __call__(self, tokens, mask, *, train: bool = False):
        c = self.config
        chex.assert_rank(tokens, 2)
        chex.assert_equal_shape([tokens, mask])
        n = tokens.shape[1]
        if n > c.max_len:
            raise FeatureError(f"TextLM: {n} tokens, more than max_len {c.max_len}")
        x = nn.Embed(c.vocab_size, c.dim, name="embed")(tokens)
        x = x + self.param("positions", nn.initializers.normal(0.02), (c.max_len, c.dim))[None, :n]
        x = nn.Dropout(c.dropout, deterministic=not train)(x) * mask[..., None]
        for i in range(c.layers):
            x = CausalBlock(c, name=f"block_{i}")(x, mask, train=train)
        return nn.Dense(c.vocab_size, name="logits")(nn.LayerNorm(name="final_norm")(x)).astype(jnp.float32)


def encode_sentences(id_lists, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Symbol-id lists -> (tokens (B, length) int32 = [0, ids..., 0, pad...], mask (B, length) bool over
    [0, ids..., 0]). A sentence longer than length - 2 is cut (its end boundary then falls off)."""
    tokens = np.zeros((len(id_lists), length), np.int32)
    mask = np.zeros((len(id_lists), length), bool)
    for row, ids in enumerate(id_lists):
        ids = list(ids)[: length - 2]
        tokens[row, 1: 1 + len(ids)] = ids
        mask[row, : len(ids) + 2] = True
    return tokens, mask


def make_lm_loss_fn(model: TextLM):
    """`loss_fn(params, batch, rng, train, step, counts=None) -> (loss, parts)` for the shared trainer: mean
    next-token cross-entropy in nats over predicted tokens (batch: tokens (B, N), mask (B, N))."""

    def loss_fn(params, batch, rng, train, step, counts=None):
        tokens, mask = batch["tokens"], batch["mask"]
        logits = model.apply({"params": params}, tokens, mask, train=train, rngs={"dropout": rng})
        log_probs = jax.nn.log_softmax(logits[:, :-1])
        targets = tokens[:, 1:]
        nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        total, predicted = masked_total(nll, mask[:, 1:])
        loss = ratio(total, predicted, "tokens", counts)
        return loss, {"nll": loss, "counts": {"tokens": predicted}}

    return loss_fn


def lm_scorer(model: TextLM, params, length_quantum: int = 32):
    """A scorer for shallow fusion: `score(prefixes) -> (len(prefixes), V) float64` log p(next symbol | prefix)
    for symbol-id tuples (without boundaries; symbol 0 = end of sentence). Prefixes are padded to a multiple of
    `length_quantum` tokens and to a power-of-two batch, so a decoding session compiles a few shapes only."""
    forward = jax.jit(lambda p, t, m: jax.nn.log_softmax(model.apply({"params": p}, t, m, train=False)))
    limit = model.config.max_len

    def score(prefixes) -> np.ndarray:
        prefixes = [tuple(p)[-(limit - 1):] for p in prefixes]  # keep the latest context within max_len
        longest = max(len(p) for p in prefixes) + 1
        length = min(-(-longest // length_quantum) * length_quantum, limit)
        rows = 1 << max(len(prefixes) - 1, 0).bit_length()
        tokens = np.zeros((rows, length), np.int32)
        mask = np.zeros((rows, length), bool)
        for r, p in enumerate(prefixes):
            tokens[r, 1: 1 + len(p)], mask[r, : 1 + len(p)] = p, True
        mask[len(prefixes):, 0] = True
        out = np.asarray(forward(params, tokens, mask), np.float64)
        return np.stack([out[r, len(p)] for r, p in enumerate(prefixes)])

    return score
