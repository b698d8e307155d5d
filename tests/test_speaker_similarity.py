"""The speaker-similarity judge learns to tell voices apart (synthetic "voices" with different spectra)."""

import jax
import numpy as np

from mmspeech_jax.evaluate.speaker_similarity import cosine, train_speaker_classifier


def voice_batches(seed, batch=8, frames=64, mels=20):
    """Voice v: log-mel with a formant-like bump at bin 4 + 5 v, plus noise; random lengths (padded, masked)."""
    rng = np.random.default_rng(seed)
    while True:
        speaker = rng.integers(0, 3, batch)
        bins = np.arange(mels)
        mel = -6 + 4 * np.exp(-0.5 * ((bins[None, None] - 4 - 5 * speaker[:, None, None]) / 1.5) ** 2)
        mel = (mel + rng.normal(0, 0.8, (batch, frames, mels))).astype(np.float32)
        lengths = rng.integers(20, frames + 1, batch)
        mask = np.arange(frames)[None] < lengths[:, None]
        mel[~mask] = 50.0  # padding garbage must not matter
        yield {"mel": mel, "frame_mask": mask, "speaker": speaker.astype(np.int32), "example_mask": np.ones(batch, bool)}


def test_classifier_separates_voices_and_embeddings_cluster():
    classifier = train_speaker_classifier(voice_batches(0), 3, 60, jax.random.PRNGKey(0))
    test = next(voice_batches(1, batch=30))
    probs = classifier.probabilities(test["mel"], test["frame_mask"])
    assert np.mean(probs.argmax(-1) == test["speaker"]) == 1.0
    emb = classifier.embed(test["mel"], test["frame_mask"])
    same = test["speaker"][:, None] == test["speaker"][None]
    sims = emb @ emb.T
    assert sims[same].mean() > sims[~same].mean() + 0.2


def test_cosine():
    a, b = np.array([1.0, 2.0, 2.0]), np.array([2.0, 0.0, 1.0])
    assert abs(cosine(a, b) - 4 / (3 * np.sqrt(5))) < 1e-12
