"""Checkpoints: named arrays plus JSON metadata in one .npz, written atomically.

The metadata travels as a uint8 array of UTF-8 JSON, so loading never needs
pickle (``allow_pickle=False``): a checkpoint cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_arrays

_META_KEY = "__meta__"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the run."""


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically writes the named arrays and JSON-serialisable meta to one .npz."""
    if _META_KEY in arrays:
        raise ValueError(f"{_META_KEY!r} is reserved")
    payload = dict(arrays)
    payload[_META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    write_arrays(path, payload)


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a checkpoint; CheckpointError if missing, unreadable or foreign."""
    try:
        # Open the file ourselves: np.load leaks its handle when zipfile fails.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint to resume from") from None
    except MemoryError:
        raise
    except Exception as error:
        # A damaged archive fails inside zipfile, zlib or NumPy's format
        # reader in many ways (BadZipFile, EOFError, NotImplementedError for a
        # flipped compression byte, zlib.error, ValueError, ...): all of them
        # mean the same to the user.
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from error
    if _META_KEY not in arrays:
        raise CheckpointError(f"{path}: not a meprop checkpoint (no metadata)")
    try:
        meta = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({error})") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata (not a JSON object)")
    return arrays, meta
