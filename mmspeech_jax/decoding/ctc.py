"""CTC decoding: greedy (best path) and prefix beam search (Hannun et al., 2014, "First-Pass LVCSR...").

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
    log_probs = np.asarray(log_probs)
    length = log_probs.shape[0] if length is None else int(length)
    return collapse(np.argmax(log_probs[:length], axis=-1), blank_id)


def _logaddexp(a: float, b: float) -> float:
    return float(np.logaddexp(a, b))


def prefix_beam_search(log_probs, length: int | None = None, beam_width: int = 8, blank_id: int = 0,
                       prune_log_prob: float = -12.0) -> list[int]:
    """Most probable labelling found with a beam of `beam_width` prefixes.

    At each frame only symbols with log-probability above `prune_log_prob` (and always the best one) extend the
    beam, which keeps the search fast on peaky CTC outputs without changing the result in practice.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    log_probs = np.asarray(log_probs, np.float64)
    length = log_probs.shape[0] if length is None else int(length)
    neg_inf = -np.inf
    beams = {(): (0.0, neg_inf)}  # prefix -> (log p ending in blank, log p ending in non-blank)
    for t in range(length):
        frame = log_probs[t]
        candidates = np.flatnonzero(frame >= prune_log_prob)
        if candidates.size == 0:
            candidates = np.array([int(np.argmax(frame))])
        nxt: dict[tuple, list[float]] = {}

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
                if prefix and prefix[-1] == s:
                    add(extended, neg_inf, p_b + lp)  # a repeat needs a blank in between
                    add(prefix, neg_inf, p_nb + lp)  # or it merges into the same symbol
                else:
                    add(extended, neg_inf, total + lp)
        ranked = sorted(nxt.items(), key=lambda item: _logaddexp(*item[1]), reverse=True)
        beams = dict(ranked[:beam_width])
    best = max(beams.items(), key=lambda item: _logaddexp(*item[1]))
    return list(best[0])


def decode_batch(log_probs, lengths, method: str = "greedy", beam_width: int = 8, blank_id: int = 0):
    """(B, T, V) log-probs + (B,) lengths -> list of B id lists."""
    log_probs, lengths = np.asarray(log_probs), np.asarray(lengths)
    if method == "greedy":
        return [greedy_decode(log_probs[i], lengths[i], blank_id) for i in range(log_probs.shape[0])]
    if method == "beam":
        return [prefix_beam_search(log_probs[i], lengths[i], beam_width, blank_id) for i in range(log_probs.shape[0])]
    raise ValueError(f"unknown decoding method {method!r} (greedy or beam)")
