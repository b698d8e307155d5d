"""PNG plots of a TTS prediction: target vs predicted mel, the learned alignment, pitch contours."""

from __future__ import annotations

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


def plot_tts_example(path, target_mel, predicted_mel, alignment=None, pitch_target=None, pitch_predicted=None,
                     title: str = "") -> Path:
    """target_mel (T, M), predicted_mel (T', M), alignment (T, N) probabilities, pitch contours (T,) or (N,) in z-units."""
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
    return save_figure(fig, path)
