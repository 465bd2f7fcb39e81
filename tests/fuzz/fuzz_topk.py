"""Fuzz harness: top-k of rows, of whole arrays and unified top-k against the
NumPy reference (tests/conftest.py), every method, both dtypes, non-contiguous
views, NaN, infinities, signed zeros and ties.

    python tests/fuzz/fuzz_topk.py -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import METHODS, reference_topk, reference_topk_rows, reference_topk_unified

import meprop_native as mp
from fuzz._bytes import Bytes, fuzz_main


def check(data: bytes) -> None:
    source = Bytes(data)
    rows, n = source.int_in(1, 6), source.int_in(1, 40)
    k = source.int_in(1, n)
    dtype = source.choice((np.float32, np.float64))
    method = source.choice(METHODS)
    if source.int_in(0, 1):  # a strided view: every other column of a wider array
        A = source.floats((rows, 2 * n), dtype)[:, ::2]
    else:
        A = source.floats((rows, n), dtype)
    got = np.sort(mp.topk_rows(A, k, method), axis=1)
    want = reference_topk_rows(A, k)
    assert np.array_equal(got, want), (method, A, k, got, want)
    got = np.sort(mp.topk_unified(A, k, method))
    want = reference_topk_unified(A, k)
    assert np.array_equal(got, want), ("unified", method, A, k, got, want)
    got = np.sort(mp.topk(A[0], k, method))
    assert np.array_equal(got, reference_topk(A[0], k)), ("topk", method, A[0], k, got)


if __name__ == "__main__":
    fuzz_main(check)
