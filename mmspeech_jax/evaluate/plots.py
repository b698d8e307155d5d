"""PNG plots of model predictions: for the TTS, target vs predicted mel, the learned alignment and pitch contours;
for the CTC ASR, the input log-mel over the frame-wise CTC posteriors of the symbols that matter, with the
reference and the decoded text."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot with the headless Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 80) -> Path:
    """tight_layout, create the folder, write the PNG, free the figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def plot_tts_example(path, *args, **kwargs) -> Path:
    """`tts_example_figure(*args, **kwargs)` written to the PNG `path`."""
    return save_figure(tts_example_figure(*args, **kwargs), path)


def tts_example_figure(target_mel, predicted_mel, alignment=None, pitch_target=None, pitch_predicted=None,
                       title: str = ""):
    """target_mel (T, M), predicted_mel (T', M), alignment (T, N) probabilities, pitch contours (T,) or (N,) in
    z-units -> a matplotlib figure (to `save_figure`, or `train.summaries.figure_pixels` for TensorBoard)."""
    plt = pyplot()
    rows = 2 + (alignment is not None) + (pitch_target is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.4 * rows))
    axes[0].imshow(np.asarray(target_mel).T, origin="lower", aspect="auto", cmap="magma")
    axes[0].set_title(f"target mel  {title}", fontsize=9, loc="left")
    axes[1].imshow(np.asarray(predicted_mel).T, origin="lower", aspect="auto", cmap="magma")
    axes[1].set_title("predicted mel (generate: predicted durations)", fontsize=9, loc="left")
    row = 2
    if alignment is not None:
        axes[row].imshow(np.asarray(alignment).T, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                         interpolation="nearest")
        axes[row].set_title("learned alignment P(token | frame) (tokens x frames)", fontsize=9, loc="left")
        row += 1
    if pitch_target is not None:
        axes[row].plot(np.asarray(pitch_target), label="target")
        if pitch_predicted is not None:
            axes[row].plot(np.asarray(pitch_predicted), label="predicted")
        axes[row].legend(fontsize=8)
        axes[row].set_title("pitch (z-scored log F0, per token)", fontsize=9, loc="left")
    return fig


def ctc_posteriogram(log_probs, reference_ids, blank_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """log_probs (T', V) of one utterance's valid frames and its reference ids -> (the symbol ids shown (K,),
    their probabilities (K, T')): the blank, every symbol of the reference and every frame-wise best symbol, in
    table order. The rest of the table (never the reference, never chosen) would only be empty rows."""
    log_probs = np.asarray(log_probs)
    shown = np.union1d(np.union1d([blank_id], np.asarray(reference_ids, int)), np.argmax(log_probs, axis=-1))
    return shown, np.exp(log_probs[:, shown]).T


def plot_ctc_example(path, *args, **kwargs) -> Path:
    """`ctc_example_figure(*args, **kwargs)` written to the PNG `path`."""
    return save_figure(ctc_example_figure(*args, **kwargs), path)


def ctc_example_figure(mel, log_probs, reference_ids, symbols, reference: str, hypothesis: str, title: str = "",
                       blank_id: int = 0):
    """mel (T, M) input log-mel; log_probs (T', V) CTC log-probabilities of the valid output frames; `symbols` the
    table's V symbols (for the row labels); reference and hypothesis text (for the title) -> a matplotlib figure."""
    plt = pyplot()
    shown, probs = ctc_posteriogram(log_probs, reference_ids, blank_id)
    labels = ["<blank>" if i == blank_id else {" ": "space"}.get(symbols[i], symbols[i]) for i in shown]
    fig, axes = plt.subplots(2, 1, figsize=(10, 2.6 + 0.14 * len(shown)), height_ratios=(1, max(1.0, len(shown) / 12)))
    axes[0].imshow(np.asarray(mel).T, origin="lower", aspect="auto", cmap="magma")
    text = "\n".join(textwrap.wrap(f"ref: {reference}", 130) + textwrap.wrap(f"hyp: {hypothesis}", 130))
    axes[0].set_title(f"{title}\n{text}" if title else text, fontsize=8, loc="left")
    axes[0].set_ylabel("mel bin", fontsize=8)
    # Output frames drawn over the input frames they cover, so a symbol's posterior sits under its sound.
    axes[1].imshow(probs, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                   extent=(-0.5, len(mel) - 0.5, -0.5, len(shown) - 0.5))
    axes[1].set_xlim(axes[0].get_xlim())
    axes[1].set_yticks(np.arange(len(shown)), labels, fontsize=6)
    axes[1].set_title("CTC posteriors P(symbol | output frame): the blank, the reference's and the chosen symbols",
                      fontsize=9, loc="left")
    axes[1].set_xlabel(f"input frame ({probs.shape[1]} output frames after subsampling)", fontsize=8)
    return fig
