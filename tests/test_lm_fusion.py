"""Shallow fusion in the CTC prefix beam search against brute-force rescoring of every labelling (float64)."""

import itertools

import numpy as np
import pytest

from mmspeech_jax.decoding.ctc import collapse, prefix_beam_search


def bigram_lm(vocab: int, seed: int):
    """A random bigram 'LM' over symbols 1..V-1 with 0 = sentence boundary: (prefixes) -> (len, V) log-probs."""
    table = np.random.default_rng(seed).normal(size=(vocab, vocab)) * 1.5
    table = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
    calls = []

    def lm(prefixes):
        calls.append(list(prefixes))
        return np.stack([table[p[-1] if p else 0] for p in prefixes])

    return lm, table, calls


def brute_force(log_probs, table, lm_weight, length_bonus):
    """Every path of T frames, collapsed; each labelling's CTC probability summed over its paths, then rescored."""
    t, v = log_probs.shape
    ctc = {}
    for path in itertools.product(range(v), repeat=t):
        y = tuple(collapse(path))
        ctc[y] = np.logaddexp(ctc.get(y, -np.inf), sum(log_probs[i, s] for i, s in enumerate(path)))

    def fused(y):
        context = (0,) + y
        lm = sum(table[a, b] for a, b in zip(context, y + (0,)))
        return ctc[y] + lm_weight * lm + length_bonus * len(y)

    return list(max(ctc, key=fused))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lm_weight, length_bonus", [(0.0, 0.0), (0.5, 0.0), (1.0, 0.7), (2.0, -0.5), (0.0, 1.5)])
def test_wide_beam_with_fusion_equals_brute_force(seed, lm_weight, length_bonus):
    rng = np.random.default_rng(seed)
    log_probs = rng.normal(size=(4, 4)) * 2.0
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    lm, table, _ = bigram_lm(4, seed + 100)
    expected = brute_force(log_probs, table, lm_weight, length_bonus)
    got = prefix_beam_search(log_probs, beam_width=10_000, prune_log_prob=-np.inf, lm=lm, lm_weight=lm_weight,
                             length_bonus=length_bonus)
    assert got == expected


def test_fusion_changes_the_result_when_the_lm_disagrees():
    """Acoustics slightly prefer [1]; an LM that strongly prefers [2] wins under fusion, not without it."""
    log_probs = np.log(np.array([[0.05, 0.5, 0.45], [0.9, 0.05, 0.05]]))
    table = np.log(np.array([[0.01, 0.01, 0.98], [0.98, 0.01, 0.01], [0.98, 0.01, 0.01]]))
    lm = lambda prefixes: np.stack([table[p[-1] if p else 0] for p in prefixes])
    assert prefix_beam_search(log_probs, beam_width=8) == [1]
    assert prefix_beam_search(log_probs, beam_width=8, lm=lm, lm_weight=1.0) == [2]


def test_each_prefix_is_scored_once():
    rng = np.random.default_rng(0)
    log_probs = rng.normal(size=(12, 5))
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    lm, _, calls = bigram_lm(5, 1)
    prefix_beam_search(log_probs, beam_width=4, prune_log_prob=-np.inf, lm=lm, lm_weight=0.5)
    scored = [p for call in calls for p in call]
    assert len(scored) == len(set(scored))


def test_memoized_scorer_scores_each_prefix_once_across_searches():
    from mmspeech_jax.decoding.ctc import memoized

    rng = np.random.default_rng(3)
    log_probs = rng.normal(size=(10, 5))
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    lm, _, calls = bigram_lm(5, 2)
    plain = [prefix_beam_search(log_probs, beam_width=4, lm=lm, lm_weight=w) for w in (0.3, 0.9)]
    calls.clear()
    shared = memoized(lm)
    assert [prefix_beam_search(log_probs, beam_width=4, lm=shared, lm_weight=w) for w in (0.3, 0.9)] == plain
    scored = [p for call in calls for p in call]
    assert len(scored) == len(set(scored))  # the second search re-used the first one's scores
