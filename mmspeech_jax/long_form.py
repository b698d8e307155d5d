"""Long recordings through a recognizer trained on short utterances: overlapping windows, stitched output frames.

A CTC recognizer's output frame j (after the frontend's subsampling by `factor`) is computed from all input frames
(self-attention is global), but it depends mostly on the frames near j * factor. `windows` cuts an input of
`length` frames into windows of `window` frames that overlap by 2 x `context`; each window supplies the output
frames of its core (the window less `context` frames at each side, except at the input's own ends), so every kept
output frame was computed with `context` input frames on each side of the frames it is centred on (less the
frontend's few frames of receptive field), and the kept ranges tile the whole output, in order, once. `stitch` joins
the windows' outputs. Decoding (greedy, beam, LM, timestamps) then runs on the stitched log-probabilities as on one
utterance's.

    plan = windows(mel.shape[0], factor=4, window=860, context=172)
    outputs = [model_output(mel[w.start:w.end]) for w in plan]      # (subsampled_length(w.end - w.start), V) each
    log_probs = stitch(outputs, plan, factor=4)                      # (subsampled_length(mel.shape[0]), V)

Used by `transcribe.Transcriber` (`transcribe_many`, `log_probs_many`, and so `transcribe` and `mmspeech
transcribe`) for log-mels longer than its `chunk_seconds`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmspeech_jax.errors import ConfigError

# `transcribe.Transcriber`'s defaults (and `mmspeech transcribe`'s): recordings longer than CHUNK_SECONDS run as
# windows of that length overlapping by 2 x CONTEXT_SECONDS, up to MAX_AUDIO_SECONDS a recording. The ASR default
# trains on utterances of at most 8 s; on the natural set joined into long recordings, 10 s windows with 2 s of
# context came out best of 8/2 ... 60/4 s, at about the same speed (`benchmarks.long_form`, benchmarks/RESULTS.md,
# 2026-12-07): 4.25 % CER on 1-minute recordings (4.45 % in one 60 s pass; 4.24 % each sentence alone).
CHUNK_SECONDS = 10.0
CONTEXT_SECONDS = 2.0
MAX_AUDIO_SECONDS = 2 * 3600.0


@dataclasses.dataclass(frozen=True)
class Window:
    """Input frames [start, end) run as one utterance; it supplies output frames [keep_start, keep_end) of the whole
    input (global indices; its own output frame k is global frame start // factor + k)."""
    start: int
    end: int
    keep_start: int
    keep_end: int


def windows(length: int, factor: int, window: int, context: int) -> list[Window]:
    """An input of `length` frames -> the windows that cover it: one [0, length) when it fits in `window` frames,
    else windows of `window` frames (the last may be shorter, never shorter than 2 x `context` + 1) starting every
    `window` - 2 x `context` frames. `window` and `context` are rounded down to multiples of `factor` (so that a
    window's output frames fall on the whole input's); a ConfigError when less than 2 x `context` + 2 x `factor`
    would be left for the cores or `context` is under 4 x `factor` (4 output frames)."""
    from mmspeech_jax.layers.subsampling import FACTORS, subsampled_length  # flax: not for the CLI's start-up

    if factor not in FACTORS:
        raise ConfigError(f"subsampling factor must be one of {sorted(FACTORS)}, got {factor}")
    length = int(length)
    if length < 1:
        raise ConfigError(f"an input needs at least one frame, got {length}")
    window, context = int(window) // factor * factor, int(context) // factor * factor
    if context < 4 * factor:
        raise ConfigError(f"long-form context: {context} frames, need at least {4 * factor} (4 output frames)")
    if window < 2 * context + 2 * factor:
        raise ConfigError(f"long-form window: {window} frames, need at least 2 x context + {2 * factor} = "
                          f"{2 * context + 2 * factor}")
    total = int(subsampled_length(length, factor))
    if length <= window:
        return [Window(0, length, 0, total)]
    stride = window - 2 * context
    count = 1 + -(-(length - window) // stride)
    plan = []
    for k in range(count):
        start = k * stride
        end = min(start + window, length)
        keep_start = 0 if k == 0 else (start + context) // factor
        keep_end = total if k == count - 1 else (start + context + stride) // factor
        plan.append(Window(start, end, keep_start, keep_end))
    return plan


def stitch(outputs: list[np.ndarray], plan: list[Window], factor: int) -> np.ndarray:
    """Each window's output (subsampled_length(end - start), ...) -> the kept frames joined, in order:
    (plan[-1].keep_end, ...) with the windows' dtype. A window whose output is too short for its kept range (not
    this plan's output) raises a ValueError."""
    if len(outputs) != len(plan):
        raise ValueError(f"{len(outputs)} window outputs for a plan of {len(plan)} windows")
    pieces = []
    for out, w in zip(outputs, plan):
        first, last = w.keep_start - w.start // factor, w.keep_end - w.start // factor
        if first < 0 or last > out.shape[0]:
            raise ValueError(f"the window [{w.start}, {w.end}) gave {out.shape[0]} output frames; its kept range "
                             f"needs local frames [{first}, {last})")
        pieces.append(np.asarray(out)[first:last])
    return np.concatenate(pieces, axis=0)
