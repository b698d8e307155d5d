"""The machine's description for benchmark entries, read without JAX (so ESPnet's environment can use it too)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """'<CPU model>, <n> cores, <OS>' from /proc/cpuinfo ('unknown CPU' where there is none)."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
