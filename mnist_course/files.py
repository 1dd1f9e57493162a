"""Writing files safely: one atomic writer and one lock (blocking, or try_locked: never waits), for every
file the course writes.

A crash or a full disk never leaves half a file under the real name, and no temporary file stays
behind on error; an existing file keeps its permissions, a new one gets the usual 0666 less umask.
Used by checkpoints, training histories, the results file, the ONNX export, the notebook runner and
the README generator (no notebook teaches it; nothing else from the package is imported here).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[str], object],
                 overwrite: bool = True) -> Path:
    """Replace `path` in one step by `data`: text, bytes, or a function that writes the temporary
    file whose name it is given (e.g. ``lambda tmp: torch.save(state, tmp)``). With overwrite=False an
    existing file raises FileExistsError. Returns the path written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # created like any file (mode 0666 & ~umask), unlike mkstemp's 0600
            if isinstance(data, str):
                f.write(data.encode())
            elif isinstance(data, bytes):
                f.write(data)
        if callable(data):
            data(str(tmp))
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files of atomic_write(path) beside `path` (.<name>.<8 hex digits>.tmp): what a
    writer killed with SIGKILL leaves. Remove them only while no other process writes `path` (locked)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


@contextlib.contextmanager
def locked(path: str | os.PathLike):
    """An exclusive lock on <path>.lock for the duration of the block (POSIX; elsewhere no lock,
    writes are still atomic). Two processes that read, change and rewrite one file take it first."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class LockHeldError(BlockingIOError):
    """try_locked found the lock held by another process; `holder` is what that process wrote (or '')."""

    def __init__(self, lock_path: Path, holder: str):
        super().__init__(errno.EWOULDBLOCK, f"{lock_path} is held by {holder or 'another process'}", str(lock_path))
        self.holder = holder


@contextlib.contextmanager
def try_locked(path: str | os.PathLike, holder: str = ""):
    """Like locked(path), but never waits: LockHeldError when another process holds <path>.lock. While held,
    the lock file says `holder` (e.g. "pid 12 on host, since ..."), which the refused process reports."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as lock:  # "a+": never truncates what the holder wrote
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(lock_path, _holder(lock)) from None
        try:
            lock.truncate(0)
            lock.write(holder)
            lock.flush()
        except OSError:  # a full disk: the lock holds all the same, only unnamed
            pass
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _holder(lock, wait_s: float = 0.5) -> str:
    """What the holder wrote into the open lock file; waits up to wait_s for a holder that has just taken it."""
    deadline = time.monotonic() + wait_s
    while True:
        lock.seek(0)
        text = lock.read().strip()
        if text or time.monotonic() > deadline:
            return text[:300]
        time.sleep(0.02)
