"""Where dataset files live, and fetching them when they are missing.

Search order for a dataset's files (first hit wins, file by file):

1. the directory passed explicitly (the ``--data-dir`` flag / ``data_dir=``),
2. the directory in the ``MEPROP_DATA`` environment variable,
3. the per-user cache, ``$XDG_CACHE_HOME/meprop-native`` or
   ``~/.cache/meprop-native``.

Each of these roots may hold the files directly or in a per-dataset
subdirectory (``<root>/mnist``); both are checked, so pointing ``--data-dir``
at either the dataset directory or its parent works.

Missing files are downloaded into ``<explicit dir>/<subdir>`` if a directory
was given, else into ``<cache>/<subdir>``, trying mirrors in order. A download
goes to a temporary file in the destination directory and is renamed into
place only after its md5 matched, so an interrupted or corrupt download never
leaves a file that a later run would pick up.

Standard library only: no dependency on the compiled core or on NumPy.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

__all__ = [
    "ENV_VAR",
    "ChecksumError",
    "DataFile",
    "DatasetNotFoundError",
    "DownloadError",
    "candidate_dirs",
    "default_cache_dir",
    "download_dir",
    "download_file",
    "file_md5",
    "find_file",
    "locate_files",
    "search_roots",
    "verify_file",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable naming a data root (second in the search order).
ENV_VAR = "MEPROP_DATA"
#: Name of this package's directory inside the user cache directory.
CACHE_NAME = "meprop-native"
#: Seconds urlopen waits for a connection or for each read. Short, so that a
#: machine without network fails within seconds rather than minutes.
DEFAULT_TIMEOUT = 15.0
_CHUNK = 1 << 20


class DatasetNotFoundError(FileNotFoundError):
    """Dataset files are missing and could not be downloaded.

    The message lists the missing files, the directories searched, and how to
    provide the files (``--data-dir`` / ``MEPROP_DATA``).
    """


class ChecksumError(ValueError):
    """A file's md5 is not the expected one; the message names the file."""


class DownloadError(OSError):
    """Every mirror failed for one file. ``reasons`` has one line per mirror."""

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons: list[str] = list(reasons)


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, as published on the mirrors.

    Attributes:
        name: the published (normally gzipped) file name, e.g.
            ``train-images-idx3-ubyte.gz``.
        md5: md5 hex digest of the published file.
        raw_md5: md5 of its decompressed content, so that a user who gunzipped
            the file can still have it verified; ``None`` if unknown.
    """

    name: str
    md5: str
    raw_md5: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Accepted local names: the published one, then without ``.gz``."""
        if self.name.endswith(".gz"):
            return (self.name, self.name[: -len(".gz")])
        return (self.name,)

    def accepts(self, digest: str) -> bool:
        """Whether ``digest`` is the md5 of this file, gzipped or not."""
        return digest in (self.md5, self.raw_md5)


# ---- directories -------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/meprop-native``, else ``~/.cache/meprop-native``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec requires.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / CACHE_NAME


def search_roots(data_dir: PathLike | None = None) -> list[Path]:
    """Data roots in search order: explicit dir, ``$MEPROP_DATA``, user cache.

    Unset or empty entries are skipped; ``~`` is expanded.
    """
    roots: list[Path] = []
    if data_dir is not None and os.fspath(data_dir) != "":
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR, "")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_cache_dir())
    return roots


def candidate_dirs(data_dir: PathLike | None = None, subdir: str = "mnist") -> list[Path]:
    """Directories to look in, in order: each root, then ``root/subdir``."""
    dirs: list[Path] = []
    for root in search_roots(data_dir):
        for d in (root, root / subdir):
            if d not in dirs:  # the same root may be given twice
                dirs.append(d)
    return dirs


def download_dir(data_dir: PathLike | None = None, subdir: str = "mnist") -> Path:
    """Where missing files are downloaded to: ``<data_dir or cache>/subdir``."""
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir).expanduser() / subdir
    return default_cache_dir() / subdir


def find_file(spec: DataFile, dirs: Iterable[Path]) -> Path | None:
    """First existing ``dir/name`` over ``dirs``, then over ``spec.names``."""
    for d in dirs:
        for name in spec.names:
            p = d / name
            if p.is_file():
                return p
    return None


# ---- checksums ---------------------------------------------------------------


def _copy_hashing(src: BinaryIO, dst: BinaryIO | None = None) -> str:
    """Reads ``src`` to the end in chunks (copying into ``dst``); its md5."""
    h = hashlib.md5()
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)


def file_md5(path: PathLike) -> str:
    """md5 hex digest of a file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        return _copy_hashing(f)


def verify_file(path: Path, spec: DataFile) -> None:
    """Raises :class:`ChecksumError` unless ``path`` has ``spec``'s md5.

    The file is never modified or deleted: it belongs to the user.
    """
    digest = file_md5(path)
    if spec.accepts(digest):
        return
    expected = spec.md5
    if spec.raw_md5 is not None:
        expected = f"{spec.md5} (gzipped) or {spec.raw_md5} (gunzipped)"
    raise ChecksumError(
        f"{path}: md5 mismatch: expected {expected}, found {digest}. The file was left "
        f"untouched; replace it with the published {spec.name} (or delete it to have it "
        f"downloaded again), or use it as is: verify=False in Python, --no-verify on the meprop "
        f"command line."
    )


# ---- download ----------------------------------------------------------------


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> Path:
    """Downloads ``url`` to ``dest`` atomically, if its md5 is ``md5``."""
    # Open the URL before creating the directory and the temporary file, so
    # that a machine without network leaves nothing behind.
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _copy_hashing(resp, out)
                out.flush()
                os.fsync(out.fileno())  # content on disk before the rename
            if digest != md5:
                raise ChecksumError(f"md5 mismatch: expected {md5}, got {digest}")
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; data files are not secret
            os.replace(tmp, dest)  # atomic within one directory
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return dest


def download_file(
    spec: DataFile,
    dest_dir: PathLike,
    mirrors: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Downloads ``spec.name`` into ``dest_dir`` from the first mirror that works.

    A mirror fails on any network or HTTP error or on an md5 mismatch (the
    partial file is deleted), and the next one is tried.

    Returns:
        The path of the installed file, ``dest_dir / spec.name``.

    Raises:
        DownloadError: every mirror failed (network or HTTP error, md5
            mismatch, or ``dest_dir`` not writable); ``reasons`` says why for
            each mirror.
    """
    dest_dir = Path(dest_dir)
    reasons: list[str] = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + spec.name
        try:
            return _fetch(url, dest_dir / spec.name, spec.md5, timeout)
        # URLError, HTTPError and timeouts are OSErrors; IncompleteRead and
        # other protocol errors are HTTPExceptions.
        except (OSError, http.client.HTTPException, ChecksumError) as e:
            reasons.append(f"{url}: {type(e).__name__}: {e}")
    raise DownloadError(f"{spec.name}: every mirror failed", reasons)


# ---- putting it together -----------------------------------------------------


def locate_files(
    files: Sequence[DataFile],
    data_dir: PathLike | None = None,
    *,
    subdir: str,
    mirrors: Sequence[str],
    download: bool = True,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    dataset: str = "dataset",
) -> dict[str, Path]:
    """Finds every file of a dataset, downloading the missing ones.

    Args:
        files: the files to find.
        data_dir: explicit data directory (checked first), or ``None``.
        subdir: per-dataset subdirectory of each root, e.g. ``"mnist"``.
        mirrors: base URLs to download from, in order.
        download: if false, never touch the network.
        verify: check the md5 of files found locally (downloads are always
            checked).
        timeout: seconds for each network connect / read.
        dataset: name used in error messages.

    Returns:
        ``{spec.name: path}`` for every spec in ``files``.

    Raises:
        DatasetNotFoundError: some files are missing and could not be
            downloaded; the message says which files to put where.
        ChecksumError: a local file has the wrong md5 (``verify=True``).
    """
    dirs = candidate_dirs(data_dir, subdir)
    found: dict[str, Path] = {}
    missing: list[DataFile] = []
    for spec in files:
        path = find_file(spec, dirs)
        if path is None:
            missing.append(spec)
            continue
        if verify:
            verify_file(path, spec)
        found[spec.name] = path
    if not missing:
        return found
    target = download_dir(data_dir, subdir)
    if not download:
        raise DatasetNotFoundError(_not_found_message(dataset, files, missing, dirs, target, None))
    for i, spec in enumerate(missing):
        try:
            found[spec.name] = download_file(spec, target, mirrors, timeout=timeout)
        except DownloadError as e:
            # Stop at the first file no mirror could serve: without network
            # the others would fail the same way, only slower.
            raise DatasetNotFoundError(_not_found_message(dataset, files, missing[i:], dirs, target, e.reasons)) from e
    return found


def _not_found_message(
    dataset: str,
    files: Sequence[DataFile],
    missing: Sequence[DataFile],
    dirs: Sequence[Path],
    target: Path,
    download_reasons: Sequence[str] | None,
) -> str:
    lines = [f"{dataset} data not found: missing {', '.join(s.name for s in missing)}."]
    lines.append("Looked for each file (also without the .gz suffix) in:")
    lines += [f"  {d}" for d in dirs]
    if download_reasons is None:
        lines.append("Downloading is disabled (download=False).")
    else:
        lines.append(f"Downloading into {target} failed:")
        lines += [f"  {r}" for r in download_reasons]
    lines.append(f"To fix, put these {len(files)} files (gzipped as published, or gunzipped without the .gz suffix):")
    width = max(len(s.name) for s in files)
    lines += [f"  {s.name:<{width}}  md5 {s.md5}" for s in files]
    lines.append(
        f"into {target}, or into a directory DIR of your choice (the files directly in DIR or "
        f"in DIR/{target.name}) and pass --data-dir DIR or set {ENV_VAR}=DIR."
    )
    return "\n".join(lines)
