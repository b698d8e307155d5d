"""TensorBoard summaries of an evaluation hook: what is written is what was given (read back from the event file's
records and decoded with PIL and soundfile, not with the writer), bad values are refused with one line, and the
trainer calls the hook after every evaluation with the parameters it evaluated."""

import io
import struct

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import soundfile
from PIL import Image as PILImage
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2

from mmspeech_jax.errors import SummaryError
from mmspeech_jax.audio.io import clip_protected
from mmspeech_jax.train.summaries import Audio, Image, Scalar, Text, figure_pixels, write_summaries
from mmspeech_jax.train.trainer import TrainerConfig, fit
from tests.test_trainer import Endless


def read_summaries(log_dir) -> dict:
    """Every summary value in the TFRecord event files under log_dir -> {(tag, step): Summary.Value}. TFRecord
    framing: uint64 length, uint32 length CRC, the record, uint32 record CRC."""
    found = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found[(value.tag, event.step)] = value
    return found


def decoded_image(value) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(value.image.encoded_image_string)).convert("RGB"))


def test_written_images_audio_and_text_read_back(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    t = np.arange(1600) / 16000
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    writer = SummaryWriter(str(tmp_path))
    write_summaries(writer, 7, {"a/plot": Image(pixels), "a/speech": Audio(wave, 16000), "a/text": Text("ref: hi"),
                                "a/cer": Scalar(np.float32(0.125))})
    writer.close()
    found = read_summaries(tmp_path)
    # tensorboardX files text under the text plugin's tag suffix
    assert set(found) == {("validation/a/plot", 7), ("validation/a/speech", 7), ("validation/a/text/text_summary", 7),
                          ("validation/a/cer", 7)}
    assert found["validation/a/cer", 7].simple_value == 0.125
    np.testing.assert_array_equal(decoded_image(found["validation/a/plot", 7]), pixels)  # PNG: lossless
    audio = found["validation/a/speech", 7].audio
    samples, rate = soundfile.read(io.BytesIO(audio.encoded_audio_string))
    assert rate == audio.sample_rate == 16000 and samples.shape == (1600,)
    np.testing.assert_allclose(samples, wave, atol=1.5 / 32768)  # 16-bit PCM
    assert found["validation/a/text/text_summary", 7].tensor.string_val[0].decode() == "ref: hi"


@pytest.mark.parametrize("make, message", [
    (lambda: Image(np.zeros((4, 4, 3), np.float32)), "an Image needs (H, W, 3) uint8 RGB pixels, got (4, 4, 3) float32"),
    (lambda: Image(np.zeros((4, 4), np.uint8)), "an Image needs (H, W, 3) uint8 RGB pixels, got (4, 4) uint8"),
    (lambda: Image(np.zeros((0, 4, 3), np.uint8)), "got (0, 4, 3) uint8"),
    (lambda: Audio(np.zeros((2, 100)), 16000), "Audio needs a non-empty (S,) waveform, got shape (2, 100)"),
    (lambda: Scalar(float("nan")), "Scalar needs a finite number, got nan"),
    (lambda: Scalar("0.5"), "Scalar needs a finite number"),
    (lambda: Audio(np.zeros(0), 16000), "got shape (0,)"),
    (lambda: Audio(np.array([0.0, np.nan]), 16000), "Audio samples must be finite and within [-1, 1]"),
    (lambda: Audio(np.array([0.0, 1.5]), 16000), "Audio samples must be finite and within [-1, 1]"),
    (lambda: Audio(np.zeros(10), 0), "Audio sample_rate must be an integer >= 1, got 0"),
    (lambda: Audio(np.zeros(10), 22050.0), "got 22050.0"),
    (lambda: Text(3), "Text needs a str, got int"),
])
def test_bad_values_are_refused_in_one_line(make, message):
    with pytest.raises(SummaryError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(SummaryError, match="summary 'x' is a float; an evaluation hook returns Image, Audio, Text or Scalar"):
        write_summaries(SummaryWriter(str(tmp_path)), 1, {"x": 0.5})


def test_clip_protected_keeps_the_level_and_figure_pixels():
    wave = np.array([0.1, -0.4, 0.2])
    np.testing.assert_array_equal(clip_protected(wave), wave.astype(np.float32))  # the model's level is kept
    loud = np.array([0.5, -2.0, 1.0])
    np.testing.assert_allclose(clip_protected(loud), loud / 2.0 * 0.99, rtol=1e-6)  # only past the ceiling
    np.testing.assert_array_equal(clip_protected(np.zeros(4)), np.zeros(4))  # silence stays silence
    from mmspeech_jax.evaluate.plots import pyplot

    fig = pyplot().figure(figsize=(2.0, 1.0), facecolor=(1.0, 0.0, 0.0))
    pixels = figure_pixels(fig, dpi=50)
    assert pixels.shape == (50, 100, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels.reshape(-1, 3), np.tile([255, 0, 0], (5000, 1)))


def test_trainer_calls_the_hook_after_each_evaluation(tmp_path):
    """eval_every 3 over 7 steps: evaluations at steps 3, 6 and 7 (the last); the hook sees NumPy parameters equal
    to the state's at that step (w after k SGD steps on mean((2w - 1)^2), from w = 0), and its images land there."""
    calls = []

    def on_eval(params, step):
        assert isinstance(params["w"], np.ndarray)
        calls.append((step, float(params["w"])))
        return {"w": Image(np.full((2, 2, 3), step, np.uint8))}

    loss_fn = lambda params, batch, rng, train, step, counts=None: (jnp.mean((params["w"] * batch["x"] - 1) ** 2), {})
    config = TrainerConfig(steps=7, log_every=1, eval_every=3, checkpoint_every=1000, progress=False)
    result = fit(tmp_path, {"w": jnp.zeros(())}, optax.sgd(0.1), loss_fn, Endless(), config,
                 eval_batches=lambda: [{"x": np.full((4,), 2.0, np.float32)}], on_eval=on_eval)
    w, expected = 0.0, {}
    for step in range(1, 8):
        w -= 0.1 * 4.0 * (2.0 * w - 1.0)
        expected[step] = w
    assert [s for s, _ in calls] == [3, 6, 7]
    for step, value in calls:
        np.testing.assert_allclose(value, expected[step], rtol=1e-6)
    np.testing.assert_allclose(float(result.state.params["w"]), expected[7], rtol=1e-6)
    found = read_summaries(tmp_path / "tensorboard")
    for step in (3, 6, 7):
        np.testing.assert_array_equal(decoded_image(found["validation/w", step]), np.full((2, 2, 3), step))
