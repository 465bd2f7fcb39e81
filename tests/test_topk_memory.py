"""Top-k scratch that would not fit in memory is refused up front, with a
MemoryError that says how much is needed and what to use instead; `auto`
falls back to the heap, which needs scratch for k entries only.

MEPROP_MEMORY_AVAILABLE stands for a machine with little free memory. Rows
from 2^24 entries on are checked (below that the scratch is at most 128 MB).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_topk_rows

import meprop_native as mp

N = 1 << 24  # the shortest row that is checked


@pytest.fixture(scope="module")
def long_row():
    row = np.random.default_rng(3).standard_normal((1, N)).astype(np.float32)
    return row, reference_topk_rows(row, 7)


def test_auto_falls_back_to_the_heap_when_scratch_does_not_fit(long_row, monkeypatch):
    row, want = long_row
    monkeypatch.setenv("MEPROP_MEMORY_AVAILABLE", str(1 << 20))
    assert np.array_equal(np.sort(mp.topk_rows(row, 7), axis=1), want)
    assert np.array_equal(np.sort(mp.topk(row[0], 7)), want[0])


@pytest.mark.parametrize("method", ["radix", "threshold"])
def test_an_explicit_method_that_does_not_fit_is_refused_naming_the_sizes(long_row, monkeypatch, method):
    monkeypatch.setenv("MEPROP_MEMORY_AVAILABLE", str(1 << 20))
    with pytest.raises(MemoryError, match=rf"'{method}' needs {8 * N} bytes .* {1 << 20} bytes are available.*'heap'"):
        mp.topk_rows(long_row[0], 7, method)
    with pytest.raises(MemoryError, match="bytes of scratch"):
        mp.topk(long_row[0][0], 7, method)


def test_unified_top_k_whose_sums_do_not_fit_is_refused(long_row, monkeypatch):
    monkeypatch.setenv("MEPROP_MEMORY_AVAILABLE", str(1 << 20))
    with pytest.raises(MemoryError, match=rf"unified top-k needs {4 * N} bytes for its column sums"):
        mp.topk_unified(long_row[0], 7)


def test_with_enough_memory_every_method_runs(long_row, monkeypatch):
    row, want = long_row
    monkeypatch.setenv("MEPROP_MEMORY_AVAILABLE", str(1 << 40))
    for method in ("auto", "radix", "threshold"):
        assert np.array_equal(np.sort(mp.topk_rows(row, 7, method), axis=1), want), method
