"""What every benchmark here needs: the machine's description and a median wall-clock time of a jitted call."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import jax
import numpy as np


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, jax {jax.__version__} on {jax.devices()[0].platform}"


def median_seconds(fn, *args, repeats: int = 3) -> float:
    """Median wall time of fn(*args) after one warm-up call (compilation excluded), results waited for."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))
