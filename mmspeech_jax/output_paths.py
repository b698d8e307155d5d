"""Output paths checked before any model loads or any work starts: a file to write, a folder to fill.

Every CLI command and experiment calls these on what the user named, so a bad path (a folder where a file goes, a
parent that is a file or missing, no permission) is one line at once, not a traceback after the work is done and
its results lost.
"""

from __future__ import annotations

import os
from pathlib import Path

from mmspeech_jax.errors import OutputPathError


def _writable_dir(directory: Path, what: str) -> None:
    if not directory.exists():
        raise OutputPathError(f"{what}: folder {directory} does not exist")
    if not directory.is_dir():
        raise OutputPathError(f"{what}: {directory} is a file, not a folder")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what}: folder {directory} is not writable")


def check_output_file(path, *, overwrite: bool = False, what: str = "output", create_parents: bool = False) -> Path:
    """A file about to be written: not a folder, not an existing file unless `overwrite`, in an existing writable
    folder (with `create_parents`: under a writable nearest existing folder, the writer creating the rest).
    Returns it as a Path; raises `OutputPathError` (one line) otherwise."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; name a file")
    if path.exists() and not overwrite:
        raise OutputPathError(f"{what} {path} exists; pass --overwrite to replace it")
    parent = path.absolute().parent
    if create_parents:
        parent = next(p for p in [parent, *parent.parents] if p.exists())
    _writable_dir(parent, f"{what} {path}")
    return path


def check_output_dir(path, *, what: str = "output folder") -> Path:
    """A folder about to be filled (created if missing, with its parents): not a file, writable, or creatable under
    the nearest existing folder. Raises `OutputPathError` (one line) otherwise."""
    path = Path(path)
    if path.exists():
        _writable_dir(path, what)
        return path
    parent = next(p for p in path.absolute().parents if p.exists())
    _writable_dir(parent, f"{what} {path}")
    return path
