"""Long-form windows (mmspeech_jax/long_form.py): the kept ranges tile the whole output once, each kept frame has its
context inside its window, and a frame-local model run window by window and stitched equals the whole pass exactly
(the model here is the frontend's own receptive field, written in float64 NumPy, independent of the code under
test); with pauses, windows end and start in them and need no context there, and `pauses` finds exactly the frames a
brute-force scan of the definition finds. The real recognizer run in windows is tested in tests/test_timestamps.py."""

import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.subsampling import FACTORS
from mmspeech_jax.long_form import PAUSE_LEVEL, PAUSE_RANGE, pauses, silenced, stitch, windows


def frontend_like(x: np.ndarray, factor: int) -> np.ndarray:
    """(T, M) -> (T', M): two VALID 3-tap convolutions over time with the frontend's strides and a nonlinearity
    between them, so output frame j reads exactly the input frames the Conformer frontend's frame j reads."""
    s1, s2 = FACTORS[factor]
    w1, w2 = np.array([0.3, -1.1, 0.7]), np.array([1.3, 0.2, -0.6])
    h = np.stack([np.tanh(w1 @ x[i:i + 3]) for i in range(0, x.shape[0] - 2, s1)]) if x.shape[0] >= 3 else x[:0]
    return np.stack([w2 @ h[i:i + 3] for i in range(0, h.shape[0] - 2, s2)]) if h.shape[0] >= 3 else x[:0]


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_kept_ranges_tile_the_output_and_keep_their_context(factor):
    s1, s2 = FACTORS[factor]
    span = 2 * s1 + 3  # input frames one output frame reads
    for window, context in ((64, 16), (100, 20), (150, 40)):
        w_frames, c_frames = window // factor * factor, context // factor * factor
        for length in range(1, 700, 7):
            total = frontend_like(np.zeros((length, 1)), factor).shape[0]
            plan = windows(length, factor, window, context)
            assert plan[0].keep_start == 0 and plan[-1].keep_end == total
            assert all(a.keep_end == b.keep_start for a, b in zip(plan, plan[1:]))
            assert all(w.keep_start < w.keep_end for w in plan) or total == 0
            assert plan[-1].end == length and all(w.end - w.start == w_frames for w in plan[:-1])
            if length <= w_frames:
                assert len(plan) == 1
            for w in plan:
                assert w.start % factor == 0 and w.end - w.start > min(2 * c_frames, length - 1)
                for g in range(w.keep_start, w.keep_end):
                    first, last = g * factor, g * factor + span - 1  # the input frames frame g reads
                    assert w.start <= first and last < w.end
                    if w.start > 0:
                        assert first - w.start >= c_frames
                    if w.end < length:
                        assert w.end - 1 - last >= c_frames - span


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_a_frame_local_model_in_windows_equals_the_whole_pass(factor):
    rng = np.random.default_rng(factor)
    for length in (5, 63, 64, 65, 251, 640, 1203):
        x = rng.normal(size=(length, 3))
        plan = windows(length, factor, 64, 16)
        got = stitch([frontend_like(x[w.start:w.end], factor) for w in plan], plan, factor)
        np.testing.assert_array_equal(got, frontend_like(x, factor))  # same arithmetic on the same frames: exact


def test_bad_windows_are_one_line_errors():
    with pytest.raises(ConfigError, match="context: 12 frames, need at least 16"):
        windows(1000, 4, 200, 12)
    with pytest.raises(ConfigError, match="window: 36 frames, need at least"):
        windows(1000, 4, 36, 16)
    with pytest.raises(ConfigError, match="factor"):
        windows(1000, 3, 200, 32)
    plan = windows(300, 4, 64, 16)
    with pytest.raises(ValueError, match="output frames"):
        stitch([np.zeros((2, 1))] * len(plan), plan, 4)


def random_pauses(rng, length: int, spacing: int) -> np.ndarray:
    """(length,) bool: quiet runs of 1-40 frames about every `spacing` frames."""
    quiet = np.zeros(length, bool)
    for start in rng.integers(0, length, size=max(1, length // spacing)):
        quiet[start:start + rng.integers(1, 41)] = True
    return quiet


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_windows_cut_in_pauses_tile_the_output_and_keep_context_where_they_cut_speech(factor):
    s1, s2 = FACTORS[factor]
    span = 2 * s1 + 3
    rng = np.random.default_rng(10 + factor)
    window, context = 100, 20
    w_frames, c_frames = window // factor * factor, context // factor * factor
    cuts_in_pauses = 0
    for length in range(1, 900, 11):
        for spacing in (30, 90, 400):
            quiet = random_pauses(rng, length, spacing)
            total = frontend_like(np.zeros((length, 1)), factor).shape[0]
            plan = windows(length, factor, window, context, quiet)
            assert plan[0].keep_start == 0 and plan[-1].keep_end == total and plan[-1].end == length
            assert all(a.keep_end == b.keep_start for a, b in zip(plan, plan[1:]))
            assert all(w.keep_start < w.keep_end for w in plan) or total == 0
            for a, b in zip(plan, plan[1:]):
                cut = b.keep_start * factor  # where a's kept output ends and b's begins (input frames)
                if b.start == cut:  # a cut in a pause: both windows end / start there, no context
                    assert quiet[cut] and a.end - cut < c_frames
                    cuts_in_pauses += 1
                else:
                    assert cut - b.start == c_frames and a.end - cut == c_frames
            for w in plan:
                assert w.start % factor == 0 and 0 < w.end - w.start <= w_frames
                for g in range(w.keep_start, w.keep_end):
                    first, last = g * factor, g * factor + span - 1
                    assert w.start <= first and last < w.end  # every kept frame reads only its window's frames
    assert cuts_in_pauses > 100


def test_where_pauses_are_frequent_every_cut_falls_in_one():
    quiet = np.zeros(5000, bool)
    for start in range(150, 5000, 300):
        quiet[start:start + 20] = True
    plan = windows(5000, 4, 400, 40, quiet)
    for a, b in zip(plan, plan[1:]):
        assert b.start == b.keep_start * 4 and quiet[b.start - 8:b.start + 8].all()  # the middle of a pause
        assert a.end - b.start <= 16  # past the cut only the frames the convolutions drop
    assert len(plan) == 17  # two pauses (600 frames) per window of 400 fit ... one cut per 300 frames


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_a_frame_local_model_in_windows_cut_in_pauses_equals_the_whole_pass(factor):
    rng = np.random.default_rng(20 + factor)
    cuts_in_pauses = 0
    for length in (65, 251, 640, 1203, 2000):
        x = rng.normal(size=(length, 3))
        quiet = random_pauses(rng, length, 60)
        plan = windows(length, factor, 64, 16, quiet)
        cuts_in_pauses += sum(b.start == b.keep_start * factor for b in plan[1:])
        got = stitch([frontend_like(x[w.start:w.end], factor) for w in plan], plan, factor)
        np.testing.assert_array_equal(got, frontend_like(x, factor))
    assert cuts_in_pauses >= 10


def test_pauses_are_the_frames_whose_neighbourhood_is_quiet():
    rng = np.random.default_rng(3)
    level = np.where(rng.random(3000) < 0.5, -4.0, -11.5)
    level[rng.integers(0, 3000, 40)] = -11.5  # single quiet frames, too short for a pause
    level[500:560] = level[1800:1817] = level[2990:] = -11.5  # pauses of 60, 17 and 10 (at the end) frames
    level[1000:1400] = -4.0
    log_mel = level[:, None] + rng.normal(0, 0.1, (3000, 8))
    level = np.log(np.exp(log_mel.astype(np.float64)).mean(axis=1))  # log of the mean mel magnitude
    floor, loud = np.percentile(level, 1), np.percentile(level, 98)
    quiet_frame = level < floor + PAUSE_LEVEL * (loud - floor)
    for width in (1, 8, 17, 18):
        expected = np.array([quiet_frame[max(0, t - width // 2):t - width // 2 + width].all() for t in range(3000)])
        got = pauses(log_mel, width)
        assert got.dtype == bool and got.shape == (3000,)
        np.testing.assert_array_equal(got, expected)
    assert pauses(log_mel, 17)[[508, 530, 551, 1808]].all() and not pauses(log_mel, 17)[1000:1400].any()
    assert not pauses(log_mel, 0).any()
    flat = rng.normal(-4.0, PAUSE_RANGE / 20, (500, 8))  # no silence: nothing to tell a pause from speech by
    assert not pauses(flat, 8).any()
    with pytest.raises(ValueError, match="shape"):
        pauses(np.zeros(10), 4)
    with pytest.raises(ValueError, match="shape"):
        windows(100, 4, 64, 16, np.zeros(99, bool))


def test_silenced_sets_the_frames_near_quiet_ones_to_the_floor():
    rng = np.random.default_rng(4)
    log_mel = rng.normal(size=(300, 5)).astype(np.float32)
    quiet = rng.random(300) < 0.05
    for reach in (0, 1, 6, 40):
        got = silenced(log_mel, quiet, -11.5, reach)
        near = np.array([quiet[max(0, t - reach):t + reach + 1].any() for t in range(300)])
        assert got.dtype == np.float32 and got.shape == log_mel.shape
        np.testing.assert_array_equal(got[near], -11.5)
        np.testing.assert_array_equal(got[~near], log_mel[~near])
    assert (silenced(log_mel, quiet, -11.5, -3) == silenced(log_mel, quiet, -11.5, 0)).all()
    assert not np.shares_memory(silenced(log_mel, quiet, -11.5, 0), log_mel)
