"""What an evaluation hook hands the trainer to show in TensorBoard besides the losses: images, audio, text and
scalars of its own (a CER measured by decoding, say).

    def on_eval(params, step):          # numpy params of the state just evaluated
        return {"sample_0/mel": Image(figure_pixels(fig)), "sample_0/audio": Audio(wave, 22050),
                "sample_0/text": Text("ref: ...  hyp: ...")}

`fit(..., on_eval=on_eval)` calls it after every evaluation and writes each value under `validation/<tag>` at that
step (`write_summaries`). The values are plain data, checked when made: a wrong shape, dtype or a non-finite sample
raises `SummaryError` naming the tag's value, instead of a TensorBoard that silently shows a black image or nothing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmspeech_jax.errors import SummaryError


@dataclasses.dataclass(frozen=True)
class Image:
    """A TensorBoard image: (H, W, 3) uint8 RGB pixels, checked when made."""
    pixels: np.ndarray  # (H, W, 3) uint8 RGB

    def __post_init__(self):
        pixels = np.asarray(self.pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[-1] != 3 or 0 in pixels.shape:
            raise SummaryError(f"an Image needs (H, W, 3) uint8 RGB pixels, got {pixels.shape} {pixels.dtype}")
        object.__setattr__(self, "pixels", pixels)


@dataclasses.dataclass(frozen=True)
class Audio:
    """A TensorBoard audio clip: (S,) float samples in [-1, 1] and an integer sample rate, checked when made."""
    samples: np.ndarray  # (S,) float, in [-1, 1]
    sample_rate: int

    def __post_init__(self):
        samples = np.asarray(self.samples, np.float32)
        if samples.ndim != 1 or samples.size == 0:
            raise SummaryError(f"Audio needs a non-empty (S,) waveform, got shape {samples.shape}")
        if not np.all(np.isfinite(samples)) or np.max(np.abs(samples)) > 1.0:
            raise SummaryError("Audio samples must be finite and within [-1, 1] (scale the waveform first)")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) \
                or self.sample_rate < 1:
            raise SummaryError(f"Audio sample_rate must be an integer >= 1, got {self.sample_rate!r}")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))


@dataclasses.dataclass(frozen=True)
class Text:
    """A TensorBoard text entry."""
    text: str

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise SummaryError(f"Text needs a str, got {type(self.text).__name__}")


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A TensorBoard scalar (finite; stored as float)."""
    value: float

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.number)) \
                or not np.isfinite(self.value):
            raise SummaryError(f"Scalar needs a finite number, got {self.value!r}")
        object.__setattr__(self, "value", float(self.value))


def figure_pixels(fig, dpi: int = 80) -> np.ndarray:
    """A matplotlib figure -> its (H, W, 3) uint8 RGB rendering (tight layout, as `plots.save_figure` writes it);
    the figure is closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.set_dpi(dpi)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def write_summaries(writer, step: int, summaries: dict, prefix: str = "validation/") -> None:
    """Each value of `summaries` (tag -> Image | Audio | Text | Scalar) to a tensorboardX `SummaryWriter` at
    `step`."""
    for tag, value in summaries.items():
        name = prefix + tag
        if isinstance(value, Image):
            writer.add_image(name, value.pixels, step, dataformats="HWC")
        elif isinstance(value, Audio):
            writer.add_audio(name, value.samples, step, sample_rate=value.sample_rate)
        elif isinstance(value, Text):
            writer.add_text(name, value.text, step)
        elif isinstance(value, Scalar):
            writer.add_scalar(name, value.value, step)
        else:
            raise SummaryError(f"summary {tag!r} is a {type(value).__name__}; an evaluation hook returns "
                               f"Image, Audio, Text or Scalar values")
