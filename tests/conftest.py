"""Shared helpers for the meprop_native test suite.

Everything here is plain NumPy and deliberately independent of the library:
the reference top-k is a stable lexicographic sort, the reference backward is
the dense float64 gradient computed with dy masked to the reference top-k.
"""

from __future__ import annotations

import contextlib
import warnings
import zlib

import numpy as np
import pytest

import meprop_native

# When a hypothesis test fails, its pytest plugin imports libcst to suggest a
# patch; in some environments that import emits a DeprecationWarning (from
# mypy_extensions), which filterwarnings=error turns into an INTERNALERROR that
# hides the real failure. Import it once here with warnings silenced.
with contextlib.suppress(ImportError), warnings.catch_warnings():  # libcst is optional
    warnings.simplefilter("ignore")
    import hypothesis.extra._patching  # noqa: F401

METHODS = ("auto", "heap", "radix", "threshold")
MODES = ("per_example", "unified", "dense")
BIAS_GRADS = ("dense", "sparse")
DTYPES = (np.float32, np.float64)

# Relative tolerances of float results against the float64 reference. The
# absolute part of the tolerance is scaled by the sum of the magnitudes of the
# terms (|a| @ |b|), which bounds the rounding error of any summation order.
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


# ---- reference top-k ---------------------------------------------------------


def reference_topk(a, k: int) -> np.ndarray:
    """The k largest |a[i]| of a 1-D float array, ascending indices.

    Order: NaN (any payload, any sign) above everything incl. inf, all NaNs tie;
    larger magnitude first; ties to the lower index; -0 == +0. Magnitudes of
    float32 values are exactly representable in float64, so the order is the
    order in the array's own dtype.
    """
    a = np.asarray(a)
    assert a.ndim == 1
    n = a.shape[0]
    assert 1 <= k <= n
    with np.errstate(all="ignore"):  # signalling NaNs warn on cast
        mag = np.abs(a.astype(np.float64))
    is_nan = np.isnan(mag)
    neg_mag = -np.where(is_nan, 0.0, mag)  # -0.0 and 0.0 compare equal in the sort
    idx = np.arange(n)
    # np.lexsort: the LAST key is the primary one. NaN first, then by magnitude
    # descending, then by index ascending.
    order = np.lexsort((idx, neg_mag, ~is_nan))
    return np.sort(order[:k]).astype(np.int64)


def reference_topk_rows(A, k: int) -> np.ndarray:
    A = np.asarray(A)
    assert A.ndim == 2
    out = np.empty((A.shape[0], k), dtype=np.int64)
    for r in range(A.shape[0]):
        out[r] = reference_topk(A[r], k)
    return out


def unified_sums(A) -> np.ndarray:
    """sum_b |A[b, j]| accumulated in A's dtype, row by row (the library's order)."""
    A = np.asarray(A)
    with np.errstate(all="ignore"):  # inf + inf overflow, signalling NaNs
        s = np.abs(A[0]).copy()
        for r in range(1, A.shape[0]):
            s += np.abs(A[r])
    return s


def reference_topk_unified(A, k: int) -> np.ndarray:
    return reference_topk(unified_sums(A), k)


# ---- reference backward ------------------------------------------------------


def reference_mask(dy, k, mode: str) -> np.ndarray:
    """Boolean (B, n_out) mask of the entries of dy that meProp keeps."""
    dy = np.asarray(dy)
    B, n_out = dy.shape
    mask = np.zeros((B, n_out), dtype=bool)
    if mode == "dense":
        mask[:] = True
    elif mode == "per_example":
        ids = reference_topk_rows(dy, k)
        mask[np.arange(B)[:, None], ids] = True
    elif mode == "unified":
        mask[:, reference_topk_unified(dy, k)] = True
    else:  # pragma: no cover
        raise AssertionError(mode)
    return mask


class Reference:
    """Float64 reference gradients plus the error scales for the comparison."""

    def __init__(self, dy, x, W, k, mode="per_example", bias_grad="dense"):
        dy = np.asarray(dy)
        self.mask = reference_mask(dy, k, mode)
        dy64 = dy.astype(np.float64)
        x64 = np.asarray(x).astype(np.float64)
        W64 = np.asarray(W).astype(np.float64)
        mdy = np.where(self.mask, dy64, 0.0)
        self.masked_dy = mdy
        self.dx = mdy @ W64
        self.dW = mdy.T @ x64
        self.db = dy64.sum(0) if bias_grad == "dense" else mdy.sum(0)
        self.rows = np.flatnonzero(self.mask.any(axis=0)).astype(np.int64)
        # error scales: sums of |terms|
        self.dx_scale = np.abs(mdy) @ np.abs(W64)
        self.dW_scale = np.abs(mdy).T @ np.abs(x64)
        self.db_scale = (np.abs(dy64) if bias_grad == "dense" else np.abs(mdy)).sum(0)


def assert_close(got, ref, scale, dtype, what=""):
    """|got - ref| <= tol * (|ref| + scale) elementwise, tol by dtype."""
    got = np.asarray(got)
    tol = TOL[np.dtype(dtype)]
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = np.abs(got.astype(np.float64) - ref)
    bound = tol * (np.abs(ref) + scale)
    bad = ~(err <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} entries out of tolerance; first at {i}: "
            f"got {got[i]!r}, expected {ref[i]!r}, bound {bound[i]!r}"
        )


def check_backward(result, ref: Reference, dtype):
    """Checks a (dx, dW, db) triple against a Reference."""
    dx, dW, db = result
    for arr in (dx, dW, db):
        assert isinstance(arr, np.ndarray)
        assert arr.dtype == np.dtype(dtype)
    assert_close(dx, ref.dx, ref.dx_scale, dtype, "dx")
    assert_close(dW, ref.dW, ref.dW_scale, dtype, "dW")
    assert_close(db, ref.db, ref.db_scale, dtype, "db")
    untouched = np.ones(ref.dW.shape[0], dtype=bool)
    untouched[ref.rows] = False
    # untouched rows of dW are exactly zero
    assert not np.any(dW[untouched]), "dW has nonzero entries in untouched rows"


def check_compact(result, ref: Reference, dtype):
    dx, rows, dW_rows, db = result
    assert rows.dtype == np.int64
    assert rows.ndim == 1
    np.testing.assert_array_equal(rows, ref.rows)
    assert dW_rows.dtype == np.dtype(dtype)
    assert dW_rows.shape == (ref.rows.size, ref.dW.shape[1])
    assert_close(dx, ref.dx, ref.dx_scale, dtype, "dx")
    assert_close(dW_rows, ref.dW[ref.rows], ref.dW_scale[ref.rows], dtype, "dW_rows")
    assert_close(db, ref.db, ref.db_scale, dtype, "db")


def bitwise_equal(a, b) -> bool:
    a = np.asarray(a)
    b = np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def random_problem(rng, B, n_in, n_out, dtype):
    dy = rng.standard_normal((B, n_out)).astype(dtype)
    x = rng.standard_normal((B, n_in)).astype(dtype)
    W = (rng.standard_normal((n_out, n_in)) / np.sqrt(max(n_in, 1))).astype(dtype)
    return dy, x, W


# ---- fixtures ----------------------------------------------------------------


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so every test is reproducible."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(autouse=True)
def _restore_threads():
    """No test leaks a changed thread count into the next."""
    before = meprop_native.get_num_threads()
    yield
    meprop_native.set_num_threads(before)
