"""Turns a fuzzer's byte string into the small, bounded inputs of a harness.

Written for these harnesses rather than taken from atheris' FuzzedDataProvider
so that the harness logic also runs without atheris (tests/test_fuzz.py);
under atheris the coverage feedback steers the bytes.
"""

from __future__ import annotations

import struct

import numpy as np

# Values that break naive kernels: NaN (two payloads), infinities, signed
# zeros, subnormals, the largest floats, ties.
SPECIAL = (float("nan"), -float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 5e-324, 1e-40, 3.4e38, 1.0, -1.0)


class Bytes:
    """Consumes a byte string front to back; past its end everything reads as zero."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk.ljust(n, b"\0")

    def int_in(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int.from_bytes(self.take(2), "little") % (high - low + 1)

    def choice(self, options):
        return options[self.int_in(0, len(options) - 1)]

    def floats(self, shape: tuple[int, ...], dtype, finite: bool = False) -> np.ndarray:
        """Mostly ordinary values, with specials (only finite ones if ``finite``)
        and repeated values (ties) mixed in."""
        # finite: no NaN, infinities, huge values (overflow) or subnormals
        # (float32 products of those underflow, which a float64 reference
        # cannot mirror).
        specials = tuple(v for v in SPECIAL if v == 0 or 1e-30 < abs(v) < 1e30) if finite else SPECIAL
        count = int(np.prod(shape))
        out = np.empty(count, dtype=np.float64)
        for i in range(count):
            kind = self.int_in(0, 15)
            if kind == 0:
                out[i] = self.choice(specials)
            elif kind == 1 and i > 0:
                out[i] = out[self.int_in(0, i - 1)]  # a tie with an earlier value
            else:
                out[i] = struct.unpack("<h", self.take(2))[0] / 256.0
        with np.errstate(over="ignore"):
            return out.astype(dtype).reshape(shape)

    def rest(self) -> bytes:
        chunk = self.data[self.at :]
        self.at = len(self.data)
        return chunk


def fuzz_main(check) -> None:
    """Runs ``check`` under atheris with the command line's libFuzzer options."""
    import sys

    import atheris

    # Coverage of the Python code (the library's checks and readers, the
    # harness's own branches) steers the fuzzer; the native code is not
    # instrumented, so its branches do not.
    atheris.instrument_all()
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
