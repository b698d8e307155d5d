"""Host memory for XLA on CPU: keep freed memory instead of handing it back to the kernel after every step.

XLA's CPU runtime allocates each train step's temporaries as large blocks (13.6 GB for the `conformer_s` ASR step,
3.3 GB for the `ljspeech` TTS step at batch 16). glibc serves blocks over 32 MB with a fresh `mmap` and unmaps them
on free, so every step touches all of that memory anew: 3.6 million page faults and ~19 s of kernel time per ASR
step on a 2-core machine (benchmarks/RESULTS.md, "Host memory"). With these glibc settings every thread allocates
from the main heap, large blocks included, and the heap is never trimmed, so the pages faulted in by the first
step are reused by every later one (the resident size stays at the peak, as with jemalloc or tcmalloc).

Importing `mmspeech_jax` does not call it: a process-wide setting is the program's choice. The training entry points
call `keep_freed_memory()` first (`experiments.flags.run_command`, the benchmarks); your own training program may too.
The `mmspeech` CLI does not: with one heap XLA compiles ~1.5x slower (its threads wait on the heap's lock), and the CLI's
inference calls are mostly compilation. It only takes effect if it runs before JAX starts its CPU backend (before the first
computation or `jax.devices()`): threads created earlier keep their own heaps.
Set `MMSPEECH_HOST_MEMORY=system` to leave glibc's defaults alone. A no-op on systems without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
    """Tell glibc's malloc: one heap for all threads (M_ARENA_MAX=1), no mmap for large blocks (M_MMAP_MAX=0), never
    trim the heap (M_TRIM_THRESHOLD=max). Returns True if glibc accepted all three."""
    if os.environ.get("MMSPEECH_HOST_MEMORY", "keep") == "system":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # -1 as the trim threshold is SIZE_MAX once glibc widens it to size_t: the heap is never trimmed.
    return all(mallopt(option, value) == 1
               for option, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))
