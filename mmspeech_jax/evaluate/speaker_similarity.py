"""Speaker similarity by an independent judge: a small speaker classifier trained on the corpus's ground truth.

    classifier = train_speaker_classifier(cache, rows, num_speakers, steps=300, key=...)
    embeddings = classifier.embed(mels, masks)        # (B, E), L2-normalised
    probabilities = classifier.probabilities(mels, masks)

The classifier (x-vector style: convs + statistics pooling) has a linear head over every voice of the corpus
(held-out voices included: it is an evaluator, never part of the TTS). Generated speech is scored by the cosine
between its embedding and the mean embedding of the voice's real recordings, and by whether the classifier names
the intended voice.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmspeech_jax.train.init import init_params



class SpeakerClassifierModel(nn.Module):
    """An x-vector-style judge (Snyder et al., 2018, simplified): per-frame conv layers, masked mean and standard
    deviation over time (statistics pooling), an embedding layer and a linear head over the voices."""

    num_speakers: int
    dim: int = 64
    channels: int = 128

    @nn.compact
    def __call__(self, mel, mask):
        """mel (B, T, M), mask (B, T) -> (embedding (B, E) unit norm, logits (B, num_speakers))."""
        m = mask[..., None].astype(mel.dtype)
        h = (mel + 5.0) / 3.0  # log-mel of speech spans about -11..2: bring it near zero mean, unit scale
        for i, kernel in enumerate((5, 3, 1)):
            h = nn.relu(nn.Conv(self.channels, (kernel,), padding="SAME", name=f"conv_{i}")(h * m))
        count = jnp.maximum(jnp.sum(m, axis=1), 1)
        mean = jnp.sum(h * m, axis=1) / count
        std = jnp.sqrt(jnp.maximum(jnp.sum(((h - mean[:, None]) * m) ** 2, axis=1) / count, 1e-6))
        vector = nn.Dense(self.dim, name="embedding")(jnp.concatenate([mean, std], axis=-1))
        embedding = vector / jnp.maximum(jnp.linalg.norm(vector, axis=-1, keepdims=True), 1e-6)
        return embedding, nn.Dense(self.num_speakers, name="head")(nn.relu(vector))


@dataclasses.dataclass
class SpeakerClassifier:
    """A trained speaker classifier (module + params): call it on mels (B, T, M) and masks (B, T) for (unit-norm
    embeddings (B, E), voice probabilities (B, S))."""
    model: SpeakerClassifierModel
    params: dict

    def __post_init__(self):
        self._apply = jax.jit(lambda p, m, k: self.model.apply({"params": p}, m, k))

    def __call__(self, mels, masks) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (B, E) unit norm, voice probabilities (B, num_speakers)) from one forward pass."""
        embedding, logits = self._apply(self.params, mels, masks)
        return np.asarray(embedding), np.asarray(jax.nn.softmax(logits, axis=-1))

    def embed(self, mels, masks) -> np.ndarray:
        """mels (B, T, M), masks (B, T) -> unit-norm embeddings (B, E)."""
        return self(mels, masks)[0]

    def probabilities(self, mels, masks) -> np.ndarray:
        """mels (B, T, M), masks (B, T) -> voice probabilities (B, S)."""
        return self(mels, masks)[1]


def train_speaker_classifier(batches, num_speakers: int, steps: int, key, learning_rate: float = 2e-3) -> SpeakerClassifier:
    """Cross-entropy training on pipeline batches (`mel`, `frame_mask`, `speaker`, `example_mask`)."""
    model = SpeakerClassifierModel(num_speakers)
    first = next(batches)
    params = init_params(model, key, first["mel"], first["frame_mask"])
    tx = optax.adam(learning_rate)

    def loss_fn(p, batch):
        _, logits = model.apply({"params": p}, batch["mel"], batch["frame_mask"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["speaker"])
        weights = batch["example_mask"].astype(jnp.float32)
        return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1)

    @jax.jit
    def step(p, opt_state, batch):
        grads = jax.grad(loss_fn)(p, batch)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state

    opt_state = tx.init(params)
    batch = first
    for _ in range(steps):
        params, opt_state = step(params, opt_state, {k: batch[k] for k in ("mel", "frame_mask", "speaker", "example_mask")})
        batch = next(batches)
    return SpeakerClassifier(model, params)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
