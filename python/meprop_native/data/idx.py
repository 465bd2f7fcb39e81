"""Reader for the IDX file format (the format MNIST is published in).

An IDX file is a 4-byte big-endian magic number, ``ndim`` big-endian uint32
dimension sizes, then the row-major payload in big-endian byte order::

    byte 0-1   0x00 0x00           always zero
    byte 2     type code           0x08 uint8, 0x09 int8, 0x0B int16,
                                   0x0C int32, 0x0D float32, 0x0E float64
    byte 3     ndim                number of dimensions
    then       ndim x uint32 (BE)  the dimension sizes
    then       prod(dims) items    the data, big-endian

Files may be gzip-compressed (as MNIST is distributed). Compression is
detected from the gzip magic bytes ``1f 8b`` rather than the file name,
because downloads and manual copies often lose or gain the ``.gz`` suffix.

Every problem raises :class:`IdxFormatError` with a message that names the
file and the problem, so a corrupt download is diagnosed from the message
alone.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import NamedTuple, Union

import numpy as np
from numpy.typing import DTypeLike

__all__ = [
    "IDX_TYPES",
    "IdxFormatError",
    "IdxHeader",
    "parse_header",
    "parse_idx",
    "read_bytes",
    "read_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> NumPy dtype (big-endian, as stored in the file).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFormatError(ValueError):
    """An IDX file is malformed; the message names the file and the problem."""


class IdxHeader(NamedTuple):
    """The decoded header of an IDX file."""

    magic: int
    dtype: np.dtype  #: big-endian dtype of the payload items
    shape: tuple[int, ...]

    @property
    def header_size(self) -> int:
        """Bytes before the payload: magic plus one uint32 per dimension."""
        return 4 + 4 * len(self.shape)

    @property
    def payload_size(self) -> int:
        """Bytes the payload must have (Python ints: no overflow)."""
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.itemsize

    def describe(self) -> str:
        """E.g. ``60000x28x28 uint8 = 47040000 bytes``."""
        dims = "x".join(str(d) for d in self.shape)
        return f"{dims} {self.dtype.newbyteorder('=').name} = {self.payload_size} bytes"


def _type_name(code: int) -> str:
    dt = IDX_TYPES.get(code)
    return f"0x{code:02X} ({dt.newbyteorder('=').name})" if dt is not None else f"0x{code:02X}"


def _known_types() -> str:
    return ", ".join(_type_name(c) for c in IDX_TYPES)


def parse_header(data: bytes, name: str) -> IdxHeader:
    """Decodes and validates the magic number and dimensions of ``data``.

    ``name`` is only used in error messages. Raises :class:`IdxFormatError`.
    """
    if len(data) == 0:
        raise IdxFormatError(f"{name}: empty file (an IDX file starts with a 4-byte magic number)")
    if len(data) < 4:
        raise IdxFormatError(
            f"{name}: too short for an IDX header: the magic number needs 4 bytes, file has {len(data)}"
        )
    (magic,) = struct.unpack(">I", data[:4])
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{name}: bad magic number 0x{magic:08X}: the first two bytes must be zero (not an IDX file?)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise IdxFormatError(
            f"{name}: bad magic number 0x{magic:08X}: unknown type code 0x{code:02X} (known: {_known_types()})"
        )
    if ndim == 0:
        raise IdxFormatError(f"{name}: bad magic number 0x{magic:08X}: declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(
            f"{name}: header truncated: magic 0x{magic:08X} declares {ndim} dimension(s), "
            f"a {header_size}-byte header, file has {len(data)} bytes"
        )
    shape = tuple(int(d) for d in struct.unpack(f">{ndim}I", data[4:header_size]))
    # NumPy refuses a shape whose nonzero dimensions multiply past 2^63, even
    # when a zero dimension makes the array empty.
    nonzero_product = 1
    for d in shape:
        nonzero_product *= d or 1
    if nonzero_product >= 2**63:
        dims = "x".join(str(d) for d in shape)
        raise IdxFormatError(f"{name}: dimensions {dims} multiply past what an array can index")
    return IdxHeader(magic=magic, dtype=IDX_TYPES[code], shape=shape)


def parse_idx(
    data: bytes,
    name: str = "<bytes>",
    *,
    expect_dtype: DTypeLike | None = None,
    expect_ndim: int | None = None,
) -> np.ndarray:
    """Decodes the (already decompressed) bytes of an IDX file.

    Args:
        data: the whole file content, header included.
        name: shown in error messages (normally the file path).
        expect_dtype: if given, the item type the file must declare.
        expect_ndim: if given, the number of dimensions the file must declare.

    Returns:
        A new, writable array of shape ``header.shape`` in native byte order.

    Raises:
        IdxFormatError: bad magic, unexpected type or ndim, short header,
            truncated payload, or trailing bytes after the payload.
    """
    header = parse_header(data, name)
    _check_expected(header, name, expect_dtype, expect_ndim)
    have = len(data) - header.header_size
    need = header.payload_size
    if have < need:
        raise IdxFormatError(
            f"{name}: truncated: header says {header.describe()}, file has {have} "
            f"after the {header.header_size}-byte header"
        )
    if have > need:
        raise IdxFormatError(
            f"{name}: {have - need} unexpected trailing bytes: header says {header.describe()}, "
            f"file has {have} after the {header.header_size}-byte header"
        )
    arr = np.frombuffer(data, dtype=header.dtype, count=need // header.dtype.itemsize, offset=header.header_size)
    # astype copies: the result owns writable memory in native byte order
    # instead of aliasing the read-only bytes object.
    return arr.astype(header.dtype.newbyteorder("="), copy=True).reshape(header.shape)


def _check_expected(
    header: IdxHeader,
    name: str,
    expect_dtype: DTypeLike | None,
    expect_ndim: int | None,
) -> None:
    dtype_ok = expect_dtype is None or np.dtype(expect_dtype).newbyteorder(">") == header.dtype
    ndim_ok = expect_ndim is None or expect_ndim == len(header.shape)
    if dtype_ok and ndim_ok:
        return
    want = []
    if expect_ndim is not None:
        want.append(f"{expect_ndim}-D")
    if expect_dtype is not None:
        want.append(np.dtype(expect_dtype).name)
    got = f"{len(header.shape)}-D {header.dtype.newbyteorder('=').name}"
    raise IdxFormatError(
        f"{name}: unexpected magic number 0x{header.magic:08X}: expected a {' '.join(want)} IDX file, this one is {got}"
    )


def read_bytes(path: PathLike) -> bytes:
    """The content of ``path``, gunzipped if it starts with the gzip magic.

    Raises:
        FileNotFoundError / OSError: the file cannot be opened (unchanged).
        IdxFormatError: the gzip stream is corrupt or truncated.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    # BadGzipFile (an OSError) for a bad header or trailing garbage, EOFError
    # for a cut-off stream, zlib.error for corrupt deflate data.
    except (OSError, EOFError, zlib.error) as e:
        raise IdxFormatError(f"{os.fspath(path)}: corrupt gzip stream: {e}") from e


def read_idx(
    path: PathLike,
    *,
    expect_dtype: DTypeLike | None = None,
    expect_ndim: int | None = None,
) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or raw.

    Args:
        path: the file. Gzip is detected by content, not by the name.
        expect_dtype: if given, the item type the file must declare
            (e.g. ``np.uint8``).
        expect_ndim: if given, the number of dimensions the file must declare.

    Returns:
        A writable array in native byte order, shape and dtype as declared
        by the header (e.g. ``(60000, 28, 28) uint8`` for MNIST training
        images, ``(60000,) uint8`` for the labels).

    Raises:
        IdxFormatError: the file is not a well-formed IDX file; the message
            names the file and the problem.
        OSError: the file cannot be read.
    """
    data = read_bytes(path)
    return parse_idx(data, os.fspath(path), expect_dtype=expect_dtype, expect_ndim=expect_ndim)
