"""One process at a time on a run folder: an advisory lock (flock) held while a command works in it.
A second `retable adapt` on the same --out would repeat every LLM call the first is making; instead it
stops at once with one line naming the other process. The kernel drops the lock when the holder exits,
even when it is killed, so a crashed run never leaves the folder locked."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from retable.errors import UserError
from retable.files import remove_stale_temps
from retable.runfiles import LOCK, LOCK_SUFFIX, owns_temp


@contextmanager
def locked_run(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the block; then clean the temporary files a killed run left."""
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock the run folder {run_dir} ({exc.strerror}) — choose a writable --out") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise UserError(f"run folder {run_dir} is in use by another retable process (pid {other}) — wait for it to finish, "
                            "or pass another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temps(run_dir, owns_temp)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def adapter_lock(folder: Path, *, write: bool) -> Iterator[None]:
    """An adapter folder's own lock, `<folder>.lock` beside it: its writer holds it exclusively while it
    writes the folder's files, a reader shared while it loads them, so a reader (`retable search`,
    `load_adapter`) sees the old adapter or the new one, never a mix. A reader of a folder no writer
    ever locked (no lock file, or none it may open) reads without it."""
    path = folder.with_name(folder.name + LOCK_SUFFIX)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if write else os.open(path, os.O_RDONLY)
    except OSError as exc:
        if write:
            raise UserError(f"cannot lock the adapter {folder} ({exc.strerror}) — check that its run folder is writable") from None
        fd = None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            os.close(fd)
