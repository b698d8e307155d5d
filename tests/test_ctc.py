"""CTC loss against a brute-force sum over alignments (both recurrence algorithms: optax's scan and the blocked
banded recurrence); decoding against brute-force search over labellings."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmspeech_jax.decoding.ctc import collapse, decode_batch, greedy_decode, prefix_beam_search
from mmspeech_jax.losses.ctc import ctc_loss, ctc_nll


def brute_force_nll(log_probs, labels):
    """-log sum over every length-T path that collapses to `labels` of prod_t p(path_t) (float64)."""
    t, v = log_probs.shape
    total = 0.0
    for path in itertools.product(range(v), repeat=t):
        if collapse(path) == list(labels):
            total += np.exp(sum(log_probs[i, s] for i, s in enumerate(path)))
    return -np.log(total)


def brute_force_best_labelling(log_probs):
    t, v = log_probs.shape
    scores = {}
    for path in itertools.product(range(v), repeat=t):
        key = tuple(collapse(path))
        scores[key] = scores.get(key, 0.0) + np.exp(sum(log_probs[i, s] for i, s in enumerate(path)))
    return list(max(scores, key=scores.get)), scores


def random_log_probs(rng, t, v, peaky=1.0):
    logits = rng.normal(size=(t, v)) * peaky
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


ALGORITHMS = ("sequential", "unrolled", "blocked")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("labels", [[1], [1, 2], [2, 2], [1, 2, 1]])
def test_ctc_nll_matches_brute_force(labels, algorithm):
    rng = np.random.default_rng(len(labels))
    t, v = 5, 3
    lp = random_log_probs(rng, t, v)
    got = ctc_nll(jnp.asarray(lp[None], jnp.float32), jnp.ones((1, t), bool), jnp.asarray([labels]),
                  jnp.ones((1, len(labels)), bool), algorithm=algorithm)
    np.testing.assert_allclose(float(got[0]), brute_force_nll(lp, labels), rtol=1e-5)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ctc_loss_is_invariant_to_padding_and_ignores_empty_rows(algorithm):
    rng = np.random.default_rng(0)
    lp = random_log_probs(rng, 6, 4)
    labels = [1, 3]
    single = ctc_loss(jnp.asarray(lp[None], jnp.float32), jnp.ones((1, 6), bool), jnp.asarray([labels]),
                      jnp.ones((1, 2), bool), algorithm=algorithm)
    # Pad frames (with junk), labels, and add an empty batch row.
    padded = np.concatenate([lp, rng.normal(size=(4, 4))], 0)
    logits = jnp.asarray(np.stack([padded, rng.normal(size=(10, 4))]), jnp.float32)
    frame_mask = jnp.asarray([[True] * 6 + [False] * 4, [False] * 10])
    lab = jnp.asarray([[1, 3, 0, 0], [0, 0, 0, 0]])
    lab_mask = jnp.asarray([[True, True, False, False], [False] * 4])
    batched = ctc_loss(logits, frame_mask, lab, lab_mask, jnp.asarray([True, False]), algorithm=algorithm)
    np.testing.assert_allclose(float(batched), float(single), rtol=1e-5)
    np.testing.assert_allclose(float(single), brute_force_nll(lp, labels) / 2, rtol=1e-5)


def test_greedy_decoding_collapses_repeats_and_blanks():
    assert collapse([1, 1, 0, 1, 2, 2, 0, 0]) == [1, 1, 2]
    lp = np.log(np.full((6, 3), 0.01))
    for t, s in enumerate([1, 1, 0, 2, 2, 1]):
        lp[t, s] = 0.0
    assert greedy_decode(lp) == [1, 2, 1]
    assert greedy_decode(lp, length=3) == [1]


def test_prefix_beam_search_finds_the_exact_best_labelling():
    # Greedy and exact can disagree: summing paths matters. Wide beam = exhaustive on these sizes.
    disagreements = 0
    for seed in range(12):
        lp = random_log_probs(np.random.default_rng(seed), 5, 3, peaky=0.7)
        best, scores = brute_force_best_labelling(lp)
        found = prefix_beam_search(lp, beam_width=500, prune_log_prob=-np.inf)
        assert np.isclose(scores[tuple(found)], scores[tuple(best)], rtol=1e-9), (seed, found, best)
        disagreements += greedy_decode(lp) != best
    assert disagreements > 0  # the test covers cases where beam search must beat greedy


def test_decode_batch_methods_and_errors():
    lp = np.stack([random_log_probs(np.random.default_rng(s), 7, 4, peaky=3.0) for s in range(2)])
    greedy = decode_batch(lp, [7, 4], "greedy")
    beam = decode_batch(lp, [7, 4], "beam", beam_width=1)
    assert len(greedy) == 2 and len(beam) == 2
    with pytest.raises(ValueError, match="unknown decoding"):
        decode_batch(lp, [7, 4], "viterbi")
    with pytest.raises(ValueError, match="beam_width"):
        prefix_beam_search(lp[0], beam_width=0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ctc_loss_gradient_is_finite_under_jit(algorithm):
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 12, 5)), jnp.float32)
    g = jax.jit(jax.grad(lambda x: ctc_loss(jax.nn.log_softmax(x), jnp.ones((2, 12), bool),
                                            jnp.asarray([[1, 2, 3], [4, 4, 0]]),
                                            jnp.asarray([[True] * 3, [True, True, False]]), algorithm=algorithm)))(logits)
    assert np.isfinite(np.asarray(g)).all()


def test_blocked_ctc_values_and_gradients_equal_optax_on_a_padded_batch():
    """Repeats, padding, an empty row and an infeasible row (left out by ctc_loss): the blocked recurrence gives
    optax's NLL and gradients (float32, 1e-4 relative), sequential, unrolled, and blocked in blocks (7, 5) that do
    not divide T (one block, and blocks that do: tests/test_recurrence.py)."""
    from mmspeech_jax.losses.ctc import ctc_feasible, ctc_nll_recurrence

    rng = np.random.default_rng(7)
    b, t, v, n = 6, 41, 7, 9
    logits = jnp.asarray(rng.normal(size=(b, t, v)) * 2, jnp.float32)
    labels = jnp.asarray(rng.integers(1, v, (b, n)), jnp.int32).at[0, 4].set(3).at[0, 5].set(3)
    frames, lengths = np.array([41, 30, 17, 9, 0, 6]), np.array([9, 6, 8, 3, 0, 9])  # row 5: infeasible
    frame_mask = jnp.arange(t)[None] < frames[:, None]
    label_mask = jnp.arange(n)[None] < lengths[:, None]
    feasible = ctc_feasible(frame_mask, labels, label_mask)
    assert np.asarray(feasible).tolist() == [True] * 5 + [False]

    def total(x, algorithm, block=None):
        nll = (ctc_nll(x, frame_mask, labels, label_mask, algorithm="sequential") if algorithm == "optax"
               else ctc_nll_recurrence(x, frame_mask, labels, label_mask, 0, algorithm, block))
        return jnp.sum(jnp.where(feasible, nll, 0.0)), nll

    (ref_total, ref_nll), ref_grad = jax.jit(jax.value_and_grad(total, has_aux=True), static_argnums=1)(logits,
                                                                                                      "optax")
    for algorithm, block in (("sequential", None), ("unrolled", None), ("blocked", None), ("blocked", 5)):
        (got_total, got_nll), grad = jax.jit(jax.value_and_grad(total, has_aux=True), static_argnums=(1, 2))(
            logits, algorithm, block)
        np.testing.assert_allclose(np.asarray(got_nll)[:5], np.asarray(ref_nll)[:5], rtol=1e-5)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-4, atol=1e-5)
        assert np.isfinite(np.asarray(grad)).all() and float(got_nll[5]) > 1e4  # infeasible: large, finite


def test_infeasible_utterances_are_detected_and_left_out():
    from mmspeech_jax.losses.ctc import ctc_feasible

    rng = np.random.default_rng(3)
    lp = np.stack([random_log_probs(rng, 4, 4) for _ in range(2)])
    # Row 0: [1, 2] fits 4 frames. Row 1: [3, 3, 3] needs 5 frames (two blanks between repeats): infeasible.
    labels = jnp.asarray([[1, 2, 0], [3, 3, 3]])
    label_mask = jnp.asarray([[True, True, False], [True] * 3])
    frames = jnp.ones((2, 4), bool)
    np.testing.assert_array_equal(np.asarray(ctc_feasible(frames, labels, label_mask)), [True, False])
    both = ctc_loss(jnp.asarray(lp, jnp.float32), frames, labels, label_mask)
    np.testing.assert_allclose(float(both), brute_force_nll(lp[0], [1, 2]) / 2, rtol=1e-5)
