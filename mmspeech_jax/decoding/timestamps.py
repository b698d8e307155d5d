"""Character and word timestamps of a CTC transcript: the Viterbi (best-path) forced alignment of the decoded
labels against the CTC log-probabilities, then each label's first and last frame in seconds.

The forced alignment works for any decoded labelling (greedy, beam, beam with an LM): it finds the single most
probable CTC path that collapses to exactly those labels (blanks between and around them, a blank required between
repeated labels). Each label then owns the frames where that path emits it (at least one), so spans never overlap
and follow the transcript's order. Output frame j of the recognizer covers input frames [j*f + o, (j+1)*f + o)
with f the subsampling factor and o its receptive-field offset (`frame_times`), at the mel hop.
"""

from __future__ import annotations

import numpy as np


def forced_alignment(log_probs, length: int, labels, blank_id: int = 0) -> np.ndarray | None:
    """log_probs (T, V) float, the valid length, labels (L,) ids without blanks -> (length,) int: for each frame the
    index of the label it emits (0..L-1), or -1 for blank, along the most probable CTC path that collapses to
    `labels`; None when no path fits (fewer frames than labels plus the blanks repeats need)."""
    log_probs = np.asarray(log_probs, np.float64)[: int(length)]
    labels = [int(x) for x in labels]
    t_max, n = log_probs.shape[0], len(labels)
    if n == 0:
        return np.full(t_max, -1, np.int64)
    extended = np.full(2 * n + 1, blank_id, np.int64)  # blank, l1, blank, l2, ..., ln, blank
    extended[1::2] = labels
    states = extended.size
    skip = np.zeros(states, bool)  # s may come from s - 2: a label after a blank, different from the label before
    skip[3::2] = extended[3::2] != extended[1:-2:2]
    score = np.full(states, -np.inf)
    score[0], score[1] = log_probs[0, blank_id] if t_max else -np.inf, log_probs[0, labels[0]] if t_max else -np.inf
    back = np.zeros((t_max, states), np.int8)  # 0: stay, 1: from s - 1, 2: from s - 2
    for t in range(1, t_max):
        stay, step = score, np.concatenate([[-np.inf], score[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        candidates = np.stack([stay, step, jump])
        back[t] = np.argmax(candidates, axis=0)
        score = candidates[back[t], np.arange(states)] + log_probs[t, extended]
    if t_max == 0 or not np.isfinite(max(score[-1], score[-2])):
        return None
    state = states - 1 if score[-1] >= score[-2] else states - 2
    path = np.empty(t_max, np.int64)
    for t in range(t_max - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    return np.where(path % 2 == 1, (path - 1) // 2, -1)


def label_spans(frame_labels: np.ndarray, count: int) -> list[tuple[int, int]]:
    """(first frame, last frame) of each of `count` labels in a `forced_alignment` result (every label has one)."""
    spans = []
    for i in range(count):
        frames = np.flatnonzero(frame_labels == i)
        spans.append((int(frames[0]), int(frames[-1])))
    return spans


def frame_times(factor: int, first_stride: int, hop_seconds: float) -> tuple[float, float]:
    """(seconds per output frame, offset in seconds of output frame 0) for a frontend that subsamples by `factor`
    with two valid 3-tap convolutions, the first of stride `first_stride`: output frame j is centred on input frame
    j * factor + first_stride + 1."""
    return factor * hop_seconds, (first_stride + 1 - factor / 2) * hop_seconds


def timestamps(log_probs, length: int, labels, symbols, frame_seconds: float, offset_seconds: float = 0.0,
               blank_id: int = 0) -> dict:
    """The decoded `labels` (ids) of one utterance with times: {"chars": [{"char", "start", "end"}], "words":
    [{"word", "start", "end"}]} in seconds (rounded to ms); words are the runs of characters between spaces.
    `symbols`: id -> character. Empty lists when no CTC path fits the labels (they cannot be placed)."""
    labels = [int(x) for x in labels]
    frame_labels = forced_alignment(log_probs, length, labels, blank_id)
    if frame_labels is None:
        return {"chars": [], "words": []}
    to_seconds = lambda frame: round(offset_seconds + frame * frame_seconds, 3)
    chars = [{"char": symbols[label], "start": to_seconds(first), "end": to_seconds(last + 1)}
             for label, (first, last) in zip(labels, label_spans(frame_labels, len(labels)))]
    words, current = [], []
    for entry in chars + [{"char": " "}]:
        if entry["char"] == " ":
            if current:
                words.append({"word": "".join(c["char"] for c in current), "start": current[0]["start"],
                              "end": current[-1]["end"]})
            current = []
        else:
            current.append(entry)
    return {"chars": chars, "words": words}
