"""Read every stored byte of one Orbax checkpoint item before Orbax restores it.

Orbax restores the arrays of a step concurrently on its own asyncio event loop. When one read fails (a truncated
data file), it closes that loop while TensorStore is still completing the other reads, and each of those then prints
`RuntimeError: Event loop is closed` with a traceback from a TensorStore thread: dozens of tracebacks after the
one-line report of the damaged step, at no fault of the user's. Reading the item's keys first through TensorStore's
own futures (no asyncio loop involved) finds the damage in a few milliseconds per megabyte, so Orbax is only asked
to restore steps whose bytes read.
"""

from __future__ import annotations

from pathlib import Path


def unreadable_reason(item: Path, prefix: str = "") -> str | None:
    """None when every key of the OCDBT checkpoint item at `item` (e.g. `<step>/state`) that starts with `prefix`
    (e.g. "train.params." for the parameters alone) reads, else one line naming what does not. Items stored
    without OCDBT (no `manifest.ocdbt`) are not checked here (None): Orbax reads them without the issue above."""
    import tensorstore as ts

    item = Path(item).absolute()
    if not (item / "manifest.ocdbt").is_file():
        return None if item.is_dir() else f"{item} is missing"
    try:
        store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{item}/"}).result()
        keys = [key for key in store.list().result() if key.startswith(prefix.encode())]
        reads = [(key, store.read(key)) for key in keys]  # all issued at once, then waited for in turn
        problem = None
        for key, read in reads:
            try:
                read.result()
            except Exception as exc:  # noqa: BLE001 - any failure: the first one is the reason
                problem = problem or f"{key.decode(errors='replace')}: {' '.join(str(exc).split())}"
    except Exception as exc:  # noqa: BLE001 - the manifest or the tree itself does not read
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    if not keys:
        return f"no stored key under {prefix!r}" if prefix else "the item stores no keys"
    return problem
