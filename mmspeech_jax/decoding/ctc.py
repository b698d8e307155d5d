"""CTC decoding: greedy (best path) and prefix beam search (Hannun et al., 2014, "First-Pass LVCSR..."), with
optional shallow fusion of a language model (e.g. `models/text_lm.py`) and a length bonus.

Inputs are log-probabilities (T, V) of one utterance (or (B, T, V) with lengths for the batch helpers); blank is
id 0. Both return symbol ids with repeats merged and blanks removed. Beam search keeps, for every prefix, the
log-probability of all paths ending in blank and in non-blank, and sums paths that collapse to the same prefix, so
with a beam wide enough to keep every prefix it returns the exact most probable labelling.
"""

from __future__ import annotations

import numpy as np


def collapse(path, blank_id: int = 0) -> list[int]:
    """Merge repeats, then drop blanks: [a, a, 0, a, b, b] -> [a, a, b]."""
    out, previous = [], None
    for s in (int(x) for x in path):
        if s != previous and s != blank_id:
            out.append(s)
        previous = s
    return out


def greedy_decode(log_probs, length: int | None = None, blank_id: int = 0) -> list[int]:
    """log_probs (T, V) of one utterance, its valid length -> label ids: the best label per frame, repeats merged,
    blanks (`blank_id`) removed."""
    log_probs = np.asarray(log_probs)
    length = log_probs.shape[0] if length is None else int(length)
    return collapse(np.argmax(log_probs[:length], axis=-1), blank_id)


def _logaddexp(a: float, b: float) -> float:
    return float(np.logaddexp(a, b))


def prefix_beam_search(log_probs, length: int | None = None, beam_width: int = 8, blank_id: int = 0,
                       prune_log_prob: float = -12.0, lm=None, lm_weight: float = 0.0,
                       length_bonus: float = 0.0) -> list[int]:
    """Most probable labelling found with a beam of `beam_width` prefixes, with optional shallow fusion.

    At each frame only symbols with log-probability above `prune_log_prob` (and always the best one) extend the
    beam, which keeps the search fast on peaky CTC outputs without changing the result in practice.

    Shallow fusion: a labelling y is scored log p_ctc(y) + lm_weight * log p_lm(y) + length_bonus * |y|, where
    log p_lm(y) sums log p(y_i | y_<i) and the end of sentence log p(blank_id | y). `lm(prefixes)` takes a list of
    symbol-id tuples and returns (len, V) log-probabilities of the next symbol (`blank_id` = end of sentence;
    `models/text_lm.lm_scorer`); each prefix is scored once per search (cached). With `lm=None` only the length
    bonus applies; with a beam wide enough to keep every prefix the result is the exact best labelling.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    log_probs = np.asarray(log_probs, np.float64)
    length = log_probs.shape[0] if length is None else int(length)
    neg_inf = -np.inf
    beams = {(): (0.0, neg_inf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
    fused = {(): 0.0}  # prefix -> lm_weight * log p_lm(prefix) + length_bonus * len(prefix)
    next_lm: dict[tuple, np.ndarray] = {}  # prefix -> log p_lm(next symbol | prefix), (V,)

    def lm_rows(prefixes):
        missing = [p for p in prefixes if p not in next_lm]
        if missing:
            next_lm.update(zip(missing, np.asarray(lm(missing), np.float64)))
        return [next_lm[p] for p in prefixes]

    def score(item):
        return _logaddexp(*item[1]) + fused[item[0]]

    for t in range(length):
        frame = log_probs[t]
        candidates = np.flatnonzero(frame >= prune_log_prob)
        if candidates.size == 0:
            candidates = np.array([int(np.argmax(frame))])
        nxt: dict[tuple, list[float]] = {}
        if lm is not None and any(int(s) != blank_id for s in candidates):
            lm_rows(list(beams))

        def add(prefix, blank_lp, nonblank_lp):
            b, nb = nxt.get(prefix, (neg_inf, neg_inf))
            nxt[prefix] = (_logaddexp(b, blank_lp), _logaddexp(nb, nonblank_lp))

        for prefix, (p_b, p_nb) in beams.items():
            total = _logaddexp(p_b, p_nb)
            for s in candidates:
                s = int(s)
                lp = float(frame[s])
                if s == blank_id:
                    add(prefix, total + lp, neg_inf)
                    continue
                extended = prefix + (s,)
                if extended not in fused:
                    lm_term = lm_weight * next_lm[prefix][s] if lm is not None else 0.0
                    fused[extended] = fused[prefix] + lm_term + length_bonus
                if prefix and prefix[-1] == s:
                    add(extended, neg_inf, p_b + lp)  # a repeat needs a blank in between
                    add(prefix, neg_inf, p_nb + lp)  # or it merges into the same symbol
                else:
                    add(extended, neg_inf, total + lp)
        ranked = sorted(nxt.items(), key=score, reverse=True)
        beams = dict(ranked[:beam_width])
    if lm is None:
        return list(max(beams.items(), key=score)[0])
    ends = dict(zip(beams, lm_rows(list(beams))))
    return list(max(beams.items(), key=lambda item: score(item) + lm_weight * ends[item[0]][blank_id])[0])


def memoized(lm):
    """`lm` with a memory: each prefix is scored once across every search that uses the returned scorer (e.g. one
    utterance decoded with several fusion weights)."""
    remembered: dict[tuple, np.ndarray] = {}

    def score(prefixes):
        missing = [p for p in prefixes if p not in remembered]
        if missing:
            remembered.update(zip(missing, np.asarray(lm(missing), np.float64)))
        return np.stack([remembered[p] for p in prefixes])

    return score


def decode_batch(log_probs, lengths, method: str = "greedy", beam_width: int = 8, blank_id: int = 0, lm=None,
                 lm_weight: float = 0.0, length_bonus: float = 0.0):
    """(B, T, V) log-probs + (B,) lengths -> list of B id lists (`lm`, `lm_weight`, `length_bonus`: shallow
    fusion in the beam search, see `prefix_beam_search`)."""
    log_probs, lengths = np.asarray(log_probs), np.asarray(lengths)
    if method == "greedy":
        return [greedy_decode(log_probs[i], lengths[i], blank_id) for i in range(log_probs.shape[0])]
    if method == "beam":
        return [prefix_beam_search(log_probs[i], lengths[i], beam_width, blank_id, lm=lm, lm_weight=lm_weight,
                                   length_bonus=length_bonus) for i in range(log_probs.shape[0])]
    raise ValueError(f"unknown decoding method {method!r} (greedy or beam)")
