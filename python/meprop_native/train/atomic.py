"""Atomic file writes: a reader sees the old file or the new one, never half.

Write to a temporary file in the same directory, flush and fsync it, rename it
over the target (atomic on POSIX), then fsync the directory so the rename
itself survives a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np


class OutputWriteError(OSError):
    """A result or checkpoint could not be written (no space, an I/O error, ...).

    The file that was there before, if any, is unchanged: the error happened
    before the rename that would have replaced it.
    """

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(error.errno, error.strerror or str(error), str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"could not write {self.path}: {self.strerror}; the file there before, if any, is unchanged"


# mkstemp's names: the prefix, eight characters of its alphabet, the suffix.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(directory: Path) -> list[str]:
    """Deletes the temporary files that writes into ``directory`` left when
    the process was killed mid-write (they are never read); returns their names.
    Call it only where no other process is writing to ``directory``."""
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in Path(directory).iterdir():
            if _TEMPORARY.match(entry.name) and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry.name)
    return removed


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A handle whose content replaces ``path`` atomically when the block ends without error.

    A failure of the file system (ENOSPC, EIO, ...) at any point raises
    :class:`OutputWriteError` naming ``path``; ``path`` is then unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise OutputWriteError(path, error) from error
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
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, OutputWriteError):
            raise OutputWriteError(path, error) from error
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
