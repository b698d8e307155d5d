"""Inspection plots are written as real PNG images of the expected size."""

import numpy as np

from mmspeech_jax.data.inspect import plot_cache


def test_plot_cache_writes_pngs(small_cache, tmp_path):
    paths = plot_cache(small_cache, tmp_path / "plots", small_cache.indices("validation")[:2])
    assert len(paths) == 2
    import matplotlib.image

    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert np.std(image[..., :3]) > 0.05  # not a blank canvas
