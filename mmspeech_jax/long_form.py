"""Long recordings through a recognizer trained on short utterances: windows cut in pauses or overlapping, stitched
output frames; pauses silenced.

A CTC recognizer's output frame j (after the frontend's subsampling by `factor`) is computed from all input frames
(self-attention is global), but it depends mostly on the frames near j * factor. `windows` cuts an input of
`length` frames into windows of `window` frames that overlap by 2 x `context`; each window supplies the output
frames of its core (the window less `context` frames at each side, except at the input's own ends), so every kept
output frame was computed with `context` input frames on each side of the frames it is centred on (less the
frontend's few frames of receptive field), and the kept ranges tile the whole output, in order, once. `stitch` joins
the windows' outputs. Decoding (greedy, beam, LM, timestamps) then runs on the stitched log-probabilities as on one
utterance's. Given the input's pauses (`pauses`: stretches of quiet frames), `windows` cuts in them instead where it
can, with no context needed there, and `silenced` sets the pauses to the features' silence beforehand (a recognizer
trained on clean speech writes letters into background noise).

    plan = windows(mel.shape[0], factor=4, window=860, context=172)
    outputs = [model_output(mel[w.start:w.end]) for w in plan]      # (subsampled_length(w.end - w.start), V) each
    log_probs = stitch(outputs, plan, factor=4)                      # (subsampled_length(mel.shape[0]), V)

Used by `transcribe.Transcriber` (`transcribe_many`, `log_probs_many`, and so `transcribe` and `mmspeech
transcribe`): windows for log-mels longer than its `chunk_seconds`, pauses of `pause_seconds` silenced in all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmspeech_jax.errors import ConfigError

# `transcribe.Transcriber`'s defaults (and `mmspeech transcribe`'s): recordings longer than CHUNK_SECONDS run as
# windows of at most that length (cut in pauses, else overlapping by 2 x CONTEXT_SECONDS), up to MAX_AUDIO_SECONDS
# a recording. The ASR default trains on utterances of at most 8 s; on the natural set joined into long recordings,
# 10 s windows with 2 s of context came out best of 8/2 ... 60/4 s, at about the same speed (`benchmarks.long_form`,
# benchmarks/RESULTS.md, 2026-12-07): 4.25 % CER on 1-minute recordings (4.45 % in one 60 s pass; 4.24 % each
# sentence alone).
CHUNK_SECONDS = 10.0
CONTEXT_SECONDS = 2.0
MAX_AUDIO_SECONDS = 2 * 3600.0
# `pauses`: a frame is quiet below floor + PAUSE_LEVEL x (loud - floor) of its input's frame levels (log of the mean
# mel magnitude), and an input whose loud and floor lie less than PAUSE_RANGE apart (natural log of magnitude: 2.0 ~
# 17 dB) has no pause. `transcribe.Transcriber.pause_seconds` (the quiet stretch a pause needs) is PAUSE_SECONDS;
# `silenced` leaves PAUSE_EDGE_SECONDS at each edge of a pause. With the ASR default (`benchmarks.long_form`,
# benchmarks/RESULTS.md, 2026-12-07) on the natural set with white noise 20 dB under the speech: joined into a
# 10-minute recording, 13.4 % CER in windows cut in silenced pauses against 18.3 % in overlapping windows (means of 4
# offsets; 1.6-2.0x faster); each sentence alone after 0.5 s of that noise, 13.8 % against 22.2 %. In digital
# silence sentences alone are unchanged (4.24 %) and the long recording 0.05 points worse.
PAUSE_LEVEL = 0.25
PAUSE_RANGE = 2.0
PAUSE_SECONDS = 0.2
PAUSE_EDGE_SECONDS = 0.025


@dataclasses.dataclass(frozen=True)
class Window:
    """Input frames [start, end) run as one utterance; it supplies output frames [keep_start, keep_end) of the whole
    input (global indices; its own output frame k is global frame start // factor + k)."""
    start: int
    end: int
    keep_start: int
    keep_end: int


def pauses(log_mel: np.ndarray, width: int) -> np.ndarray:
    """A log-mel (T, M) -> (T,) bool: True at frame t when every frame of [t - width // 2, t - width // 2 + width)
    (inside the input) is quiet, so a cut at t has at least width // 2 quiet frames on each side (fewer at the
    input's ends). A frame is quiet when its level, the log of its mean mel magnitude (exp of the log-mel), is below
    floor + PAUSE_LEVEL x (loud - floor), floor and loud being the input's 1st and 98th percentiles of the levels; an
    input whose loud and floor are less than PAUSE_RANGE apart (no silence to tell from speech) has no quiet frame.
    `width` < 1 gives no pause."""
    log_mel = np.asarray(log_mel, np.float64)
    if log_mel.ndim != 2:
        raise ValueError(f"expected a log-mel of shape (T, M), got shape {log_mel.shape}")
    if log_mel.shape[0] == 0:
        return np.zeros(0, bool)
    peak = log_mel.max(axis=1)
    level = peak + np.log(np.exp(log_mel - peak[:, None]).mean(axis=1))
    none = np.zeros(level.shape, bool)
    if width < 1:
        return none
    floor, loud = np.percentile(level, 1), np.percentile(level, 98)
    if loud - floor < PAUSE_RANGE:
        return none
    loud_frame = level >= floor + PAUSE_LEVEL * (loud - floor)
    return ~_any_near(loud_frame, width // 2, width - width // 2 - 1)


def silenced(log_mel: np.ndarray, quiet: np.ndarray, floor: float, reach: int) -> np.ndarray:
    """A log-mel (T, M) with every frame within `reach` frames of a `quiet` frame ((T,) bool, `pauses`) set to
    `floor` (the features' log of silence, log(MelConfig.log_floor)): the pauses as they would be without background
    noise, which a recognizer trained on clean speech writes letters into. A copy, same dtype. With `pauses`' width
    w, `reach` <= w // 2 leaves every frame outside the quiet runs of at least w frames (speech) as it is, and
    w // 2 - k keeps k frames of each pause's edges."""
    log_mel = np.array(log_mel)
    quiet = np.asarray(quiet, bool)
    reach = max(int(reach), 0)
    log_mel[_any_near(quiet, reach, reach)] = floor
    return log_mel


def _any_near(flags: np.ndarray, before: int, after: int) -> np.ndarray:
    """(T,) bool -> (T,) bool: whether any of `flags` in [t - before, t + after] (clipped to the input) is True; a
    running sum over the zero-padded indicator."""
    padded = np.concatenate([np.zeros(before, int), flags.astype(int), np.zeros(after + 1, int)])
    sums = np.concatenate([[0], np.cumsum(padded)])
    span = before + after + 1
    return (sums[span:span + flags.size] - sums[:flags.size]) > 0


def windows(length: int, factor: int, window: int, context: int, quiet: np.ndarray | None = None) -> list[Window]:
    """An input of `length` frames -> the windows that cover it: one [0, length) when it fits in `window` frames,
    else consecutive cuts, each window running from its cut less `context` frames to its next cut plus `context`
    (at most `window` frames; the input's ends need no context). `window` and `context` are rounded down to
    multiples of `factor` (so that a window's output frames fall on the whole input's); a ConfigError when less than
    2 x `context` + 2 x `factor` would be left for the cores or `context` is under 4 x `factor` (4 output frames).

    Without `quiet` the cuts fall every `window` - 2 x `context` frames. With `quiet` ((length,) bool, `pauses`), a
    window ends at the middle (a multiple of `factor`) of the last quiet run that leaves it at least a quarter of
    `window` (and as much to the input's end) and needs no context there, only the few frames the frontend's
    convolutions drop at a window's end: the next window starts at that cut, in the pause, so no window edge falls
    inside speech where a pause allows; where none does, the cut falls as without `quiet`."""
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
    if quiet is not None and np.shape(quiet) != (length,):
        raise ValueError(f"quiet must have shape ({length},), got {np.shape(quiet)}")
    total = int(subsampled_length(length, factor))
    # a window ending `overhang` frames past a cut in a pause has output frames up to that cut (the frontend's
    # VALID convolutions drop frames at the window's end)
    overhang = next(d for d in range(0, 8 * factor, factor)
                    if subsampled_length(window + d, factor) >= window // factor)
    plan, cut, left = [], 0, 0  # the next kept range starts at input frame `cut`, with `left` frames of context
    while length - (cut - left) > window:
        start = cut - left
        end = start + window
        pause = _last_pause(quiet, cut + window // 4, min(end - overhang, length - window // 4), factor)
        if pause is not None:
            plan.append(Window(start, pause + overhang, cut // factor, pause // factor))
            cut, left = pause, 0
        else:
            plan.append(Window(start, end, cut // factor, (end - context) // factor))
            cut, left = end - context, context
    plan.append(Window(cut - left, length, cut // factor, total))
    return plan


def _last_pause(quiet, low: int, high: int, factor: int) -> int | None:
    """The multiple of `factor` nearest the middle of the last run of quiet frames in [low, high] that holds one
    (the run bounded to [low, high]); None without `quiet` or when no quiet frame there is a multiple of `factor`."""
    if quiet is None or high < low:
        return None
    inside = np.asarray(quiet[low:high + 1], bool)
    found = np.flatnonzero(inside & ((np.arange(low, high + 1) % factor) == 0))
    if found.size == 0:
        return None
    first = end = int(found[-1])
    while first > 0 and inside[first - 1]:
        first -= 1
    while end + 1 < inside.size and inside[end + 1]:
        end += 1
    lowest, highest = -(-(low + first) // factor) * factor, (low + end) // factor * factor
    return min(max(round((2 * low + first + end) / (2 * factor)) * factor, lowest), highest)


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
