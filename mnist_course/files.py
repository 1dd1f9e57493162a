"""Writing files safely: one atomic writer and one lock, for every file the course writes.

A crash or a full disk never leaves half a file under the real name, and no temporary file stays
behind on error; an existing file keeps its permissions, a new one gets the usual 0666 less umask.
Used by checkpoints, training histories, the results file, the ONNX export, the notebook runner and
the README generator (no notebook teaches it; nothing else from the package is imported here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
