"""Validation metrics over a whole split are exact (sum, count) ratios (train/evaluation.py): checked against a
float64 NumPy masked mean over the concatenated split, for a toy ratio loss and for the real FastSpeech2 loss."""

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.losses.ratios import masked_total, ratio
from mmspeech_jax.train.evaluation import evaluate_split
from mmspeech_jax.train.state import TrainState
from mmspeech_jax.train.step import make_eval_counts, make_eval_step


def toy_loss(params, batch, rng, train, step, counts=None):
    """Squared error of a scale times x against y over valid frames (a masked mean), plus an additive count."""
    err = (params["w"] * batch["x"] - batch["y"]) ** 2
    total, count = masked_total(err, batch["mask"])
    mse = ratio(total, count, "frames", counts)
    return mse, {"mse": mse, "padded": jnp.sum(~batch["mask"]), "counts": {"frames": count}}


def toy_batches():
    rng = np.random.default_rng(0)
    out = []
    for rows, frames, valid in ((4, 10, 10), (4, 6, 2), (1, 30, 25)):  # very different valid counts per batch
        mask = np.zeros((rows, frames), bool)
        for r in range(rows):
            mask[r, : rng.integers(1, valid + 1)] = True
        out.append({"x": rng.normal(size=(rows, frames)).astype(np.float32),
                    "y": rng.normal(size=(rows, frames)).astype(np.float32), "mask": mask})
    return out


def test_split_loss_is_the_whole_split_masked_mean():
    params = {"w": jnp.float32(0.7)}
    state = TrainState.create(params, __import__("optax").sgd(0.1))
    batches = toy_batches()
    val, exact = evaluate_split(jax.jit(make_eval_step(toy_loss)), jax.jit(make_eval_counts(toy_loss)), state,
                                lambda: iter(batches), jax.random.key(0))
    err = np.concatenate([((0.7 * b["x"].astype(np.float64) - b["y"]) ** 2)[b["mask"]] for b in batches])
    assert exact
    np.testing.assert_allclose(val["mse"], err.mean(), rtol=1e-5)
    np.testing.assert_allclose(val["loss"], err.mean(), rtol=1e-5)
    assert val["padded"] == sum(int((~b["mask"]).sum()) for b in batches)  # additive parts add up
    batch_means = np.mean([((0.7 * b["x"].astype(np.float64) - b["y"]) ** 2)[b["mask"]].mean() for b in batches])
    assert abs(batch_means - err.mean()) > 1e-2 * err.mean()  # the old average would have failed the check above


def test_loss_without_counts_falls_back_to_batch_means_and_says_so():
    def no_counts(params, batch, rng, train, step, counts=None):
        loss, parts = toy_loss(params, batch, rng, train, step)
        return loss, {"mse": parts["mse"]}

    state = TrainState.create({"w": jnp.float32(0.7)}, __import__("optax").sgd(0.1))
    batches = toy_batches()
    val, exact = evaluate_split(jax.jit(make_eval_step(no_counts)), jax.jit(make_eval_counts(no_counts)), state,
                                lambda: iter(batches), jax.random.key(0))
    means = [((0.7 * b["x"].astype(np.float64) - b["y"]) ** 2)[b["mask"]].mean() for b in batches]
    assert not exact
    np.testing.assert_allclose(val["mse"], np.mean(means), rtol=1e-5)
