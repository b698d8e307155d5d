"""Long-form windows (mmspeech_jax/long_form.py): the kept ranges tile the whole output once, each kept frame has its
context inside its window, and a frame-local model run window by window and stitched equals the whole pass exactly
(the model here is the frontend's own receptive field, written in float64 NumPy, independent of the code under
test). The real recognizer run in windows is tested in tests/test_timestamps.py."""

import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.layers.subsampling import FACTORS
from mmspeech_jax.long_form import stitch, windows


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
