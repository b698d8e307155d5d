"""One writer per workdir: an OS-level lock held for the life of a training process, and a marker file.

`claim_workdir(workdir, task)` is what every training run calls before it writes anything (through
`workdir.write_run_config`):

  * The lock: `fcntl.flock` on `<workdir>/.lock`, exclusive and non-blocking. The kernel releases it when the
    process exits for any reason (SIGKILL included), so a stale lock cannot exist; the file keeps the holder's
    pid, host and start time, which a second writer's one-line `WorkdirBusyError` names. The returned
    `WorkdirLock` holds it until `release()` (an experiment's `main` releases it when it is done; a process that
    ends releases it anyway). Claiming a workdir this process already holds returns the same lock: the process's
    held locks are kept in `_HELD`, a mirror of what the kernel holds for it (the only module-level state here).
    Inference tools take no lock: they read only complete checkpoints.
  * The marker: `<workdir>/.mmspeech_workdir` (JSON: task, created), written first. A directory that holds files
    but no marker is refused (`NotAWorkdirError`: it may be the user's own folder, whose config.json or
    report.json a run would replace), except a workdir written before markers existed (config.json with
    checkpoints/ or metrics.jsonl), which is adopted.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

from mmspeech_jax.errors import NotAWorkdirError, WorkdirBusyError

LOCK_NAME, MARKER_NAME = ".lock", ".mmspeech_workdir"
MIN_FREE_BYTES = 64 * 2**20  # room for checkpoints and logs: a nearly full disk is refused at once
_HELD: dict[str, "WorkdirLock"] = {}  # resolved lock path -> this process's held lock


class WorkdirLock:
    """An acquired workdir lock (an open file with an exclusive flock). `release()` is idempotent."""

    def __init__(self, path: Path, handle):
        self.path, self._handle = path, handle

    @property
    def held(self) -> bool:
        """Whether this process still holds the lock."""
        return self._handle is not None

    def release(self) -> None:
        """Release the lock (idempotent); the lock file stays."""
        if self._handle is not None:
            _HELD.pop(str(self.path.resolve()), None)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "WorkdirLock":
        return self

    def __exit__(self, *_) -> None:
        self.release()


def holds(workdir) -> bool:
    """Whether this process holds `workdir`'s lock."""
    lock = _HELD.get(str((Path(workdir) / LOCK_NAME).resolve()))
    return lock is not None and lock.held


def _is_legacy_workdir(workdir: Path) -> bool:
    return (workdir / "config.json").is_file() and ((workdir / "checkpoints").is_dir()
                                                   or (workdir / "metrics.jsonl").is_file())


def check_workdir_path(workdir, *, require_marker: bool = True) -> Path:
    """Refuses, in one line and before anything is written, a workdir that cannot be one: a file, a location that
    cannot be written, and (with `require_marker`) a directory of someone else's files (no marker)."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise NotAWorkdirError(f"--workdir {workdir} is a file, not a directory")
    if workdir.is_dir():
        entries = [p.name for p in workdir.iterdir() if p.name != LOCK_NAME]
        if require_marker and entries and MARKER_NAME not in entries and not _is_legacy_workdir(workdir):
            shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
            raise NotAWorkdirError(f"{workdir} holds files ({shown}) but is not an mmspeech workdir (no "
                                   f"{MARKER_NAME}); pass an empty or new directory (nothing was changed)")
        if not os.access(workdir, os.W_OK | os.X_OK):
            raise NotAWorkdirError(f"workdir {workdir} is not writable")
    else:
        parent = next((p for p in workdir.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise NotAWorkdirError(f"cannot create workdir {workdir}: {parent} is not a writable directory")
    existing = workdir if workdir.is_dir() else next(p for p in workdir.absolute().parents if p.exists())
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise NotAWorkdirError(f"workdir {workdir}: only {free / 2**20:.0f} MB free on its file system (at least "
                               f"{MIN_FREE_BYTES // 2**20} MB needed for checkpoints and logs)")
    return workdir


def check_workdir_free(workdir) -> None:
    """Refuses at once (`WorkdirBusyError`, naming the holder) a workdir another process holds; takes nothing. The
    experiments call it when they parse their flags, so a second writer stops before loading any data."""
    path = Path(workdir) / LOCK_NAME
    if holds(workdir) or not path.is_file():
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WorkdirBusyError(f"workdir {workdir} is in use by {holder}; wait for it to finish or pass another "
                                   f"--workdir (nothing was changed)") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def claim_workdir(workdir, task: str) -> WorkdirLock:
    """Checks the path (`check_workdir_path`), takes the lock (else `WorkdirBusyError` naming the holder) and
    writes the marker if missing. Returns the held `WorkdirLock`."""
    workdir = check_workdir_path(workdir)
    held = _HELD.get(str((workdir / LOCK_NAME).resolve()))
    if held is not None and held.held:
        return held
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / LOCK_NAME
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        check_workdir_free(workdir)  # raises the one line naming the holder
        raise WorkdirBusyError(f"workdir {workdir} is in use by another process (nothing was changed)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    marker = workdir / MARKER_NAME
    if not marker.is_file():
        marker.write_text(json.dumps({"task": task, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    lock = WorkdirLock(path, handle)
    _HELD[str(path.resolve())] = lock
    return lock
