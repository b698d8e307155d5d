"""Look at the data: PNG plots of log-mel, F0 (voiced frames only) and the ground-truth phoneme boundaries.

    python -m mmspeech_jax.data.inspect --out plots/ --num 4        # the embedded corpus (generated if needed)

Each PNG has three aligned panels: the log-mel spectrogram with token boundaries, the F0 contour (unvoiced frames
left blank, never plotted as 0 Hz), and the frame energy. Token labels come from the feature cache's symbol table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def plot_item(item: dict, symbols, title: str, path) -> Path:
    """One cache item (FeatureCache[i]) -> PNG at `path`."""
    from mmspeech_jax.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    mel, f0, voiced, energy = item["mel"], item["f0_hz"], item["voiced"], item["energy"]
    frames = np.arange(mel.shape[0])
    fig, axes = plt.subplots(3, 1, figsize=(max(8, mel.shape[0] / 40), 7), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.4, 1]})
    axes[0].imshow(mel.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    axes[0].set_ylabel("mel bin")
    axes[0].set_title(title, fontsize=9, loc="left")
    if "durations" in item:
        bounds = np.concatenate([[0], np.cumsum(item["durations"])])
        labels = [symbols[int(t)] for t in item["tokens"]]
        for start, stop, label in zip(bounds[:-1], bounds[1:], labels):
            axes[0].axvline(start - 0.5, color="white", lw=0.5, alpha=0.7)
            axes[0].text((start + stop) / 2 - 0.5, mel.shape[1] - 3, label, color="white", fontsize=6,
                         ha="center", va="top", rotation=90)
    axes[1].plot(frames, np.where(voiced, f0, np.nan), color="tab:blue", lw=1.2)
    axes[1].set_ylabel("F0 (Hz)")
    if voiced.any():
        lo, hi = np.percentile(f0[voiced], [1, 99])
        axes[1].set_ylim(max(lo * 0.8, 40), hi * 1.2)
    axes[2].plot(frames, energy, color="tab:green", lw=1)
    axes[2].set_ylabel("energy")
    axes[2].set_xlabel("frame")
    return save_figure(fig, path, dpi=90)


def plot_cache(cache, out_dir, indices) -> list[Path]:
    """One PNG per utterance index of `cache` (log-mel with phoneme boundaries, F0, energy) into `out_dir`; returns
    the paths."""
    symbols = cache.table.symbols
    return [plot_item(cache[int(i)], symbols, f"{cache.ids[int(i)]}: {cache.texts[int(i)]}",
                      Path(out_dir) / f"{cache.ids[int(i)]}.png") for i in indices]


def main(argv=None):
    """`python -m mmspeech_jax.data.inspect`: plot the first `--num` utterances of a split of the embedded corpus."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="plots", help="output directory for the PNG files")
    parser.add_argument("--num", type=int, default=4, help="how many utterances to plot")
    parser.add_argument("--split", default="validation", choices=["train", "validation", "test"])
    args = parser.parse_args(argv)
    from mmspeech_jax.data import embedded_feature_cache

    cache = embedded_feature_cache()
    paths = plot_cache(cache, args.out, cache.indices(args.split)[: args.num])
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
