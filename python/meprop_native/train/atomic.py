"""Atomic file writes: a reader sees the old file or the new one, never half.

Write to a temporary file in the same directory, flush and fsync it, rename it
over the target (atomic on POSIX), then fsync the directory so the rename
itself survives a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A handle whose content replaces ``path`` atomically when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it the mode an ordinary open()
        # would, 0666 less the umask, so results are as shareable as the
        # user's other files.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    # Linux reports it without changing it; elsewhere reading the umask means
    # setting it, so set it straight back (another thread creating a file in
    # that instant would get 022).
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system allows it
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """Atomically writes obj as indented, key-sorted JSON."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")


def write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically writes the named arrays as an uncompressed .npz."""
    named: dict[str, Any] = dict(arrays)  # names, never np.savez's own keywords
    write_with(path, lambda handle: np.savez(handle, **named))


def write_with(path: Path, writer: Callable[[IO[bytes]], object]) -> None:
    """Atomically writes whatever ``writer`` writes to the binary handle."""
    with atomic_open(path, "wb") as handle:
        writer(handle)
