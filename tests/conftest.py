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


# ---- reference LSTM ----------------------------------------------------------


def sigmoid(z):
    with np.errstate(over="ignore"):  # exp(-z) = inf for z << 0 gives the right limit, 0
        return 1.0 / (1.0 + np.exp(-z))


def reference_lstm(x, W_ih, W_hh, b, offsets, dh, k, per_gate=False, memory_decay=0.0, gaps=None, sizes=None):
    """Float64 forward and backward written from the equations; k=None is dense.

    per_gate: keep the k largest of each gate's H entries instead of k of all 4H.
    memory_decay: error feedback through time: what step t drops, times the
    decay, joins step t-1's gate gradient before its selection (per sequence).
    gaps: a list that, when given, receives each selection's gap between the
    smallest kept and the largest dropped magnitude (0 at an exact tie),
    relative to the size of what dz is computed from (dz, dc and dh of the
    step: a saturated gate's derivative rounds to zero in float32 but not in
    float64), so that a caller comparing a kernel that rounds differently can
    tell a clear selection from a coin toss. At a tie among exact zeros
    (decided by the tie rule) the gap is the smallest nonzero magnitude, which
    must not round to zero and join the tie (inf if there is none).
    sizes: a dict that, when given, receives for dx, dW_ih, dW_hh and db the
    largest sum of bounds on their terms' magnitudes: the scale of the
    rounding error, where the result itself may cancel or vanish.
    """
    x, W_ih, W_hh, b, dh = (np.asarray(a, dtype=np.float64) for a in (x, W_ih, W_hh, b, dh))
    N, H = x.shape[0], W_hh.shape[1]
    G = 4 * H
    a = np.zeros((N, G))
    c = np.zeros((N, H))
    h = np.zeros((N, H))
    for s in range(len(offsets) - 1):
        h_prev, c_prev = np.zeros(H), np.zeros(H)
        for t in range(offsets[s], offsets[s + 1]):
            z = W_ih @ x[t] + W_hh @ h_prev + b
            a[t] = np.concatenate(
                [sigmoid(z[:H]), sigmoid(z[H : 2 * H]), np.tanh(z[2 * H : 3 * H]), sigmoid(z[3 * H :])]
            )
            i, f, g, o = np.split(a[t], 4)
            c[t] = f * c_prev + i * g
            h[t] = o * np.tanh(c[t])
            h_prev, c_prev = h[t], c[t]
    dx = np.zeros_like(x)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(G)
    kept = np.zeros((N, G), dtype=bool)
    abs_dx, abs_dW_ih, abs_dW_hh, abs_db = np.zeros_like(x), np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(G)
    for s in range(len(offsets) - 1):
        dh_next, dc_next = np.zeros(H), np.zeros(H)
        memory = np.zeros(G)
        for t in range(offsets[s + 1] - 1, offsets[s] - 1, -1):
            first = t == offsets[s]
            i, f, g, o = np.split(a[t], 4)
            tc = np.tanh(c[t])
            c_prev = np.zeros(H) if first else c[t - 1]
            h_prev = np.zeros(H) if first else h[t - 1]
            dht = dh[t] + dh_next
            dc = dc_next + dht * o * (1 - tc**2)
            dz = np.concatenate(
                [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g**2), dht * tc * o * (1 - o)]
            )
            dc_next = dc * f
            if k is not None and memory_decay > 0:
                dz = dz + memory
            db += dz  # the bias gradient stays dense (with error feedback: of the corrected dz)
            if k is None:
                rows = np.arange(G)
            elif per_gate:
                rows = np.concatenate(
                    [gate * H + reference_topk(block, k) for gate, block in enumerate(np.split(dz, 4))]
                )
            else:
                rows = reference_topk(dz, k)
            kept[t, rows] = True
            if gaps is not None and len(rows) < G:
                blocks = np.split(np.arange(G), 4) if per_gate else [np.arange(G)]
                for block in blocks:
                    inside = np.isin(block, rows)
                    if not inside.all():
                        magnitude = np.abs(dz[block])
                        behind = (magnitude.max(), np.abs(dc).max(), np.abs(dht).max())
                        scale = max(float(max(behind)), np.finfo(np.float64).tiny)
                        smallest_kept, largest_dropped = magnitude[inside].min(), magnitude[~inside].max()
                        if smallest_kept == largest_dropped == 0:  # a tie among exact zeros
                            nonzero = magnitude[magnitude > 0]
                            gaps.append(nonzero.min() / scale if nonzero.size else np.inf)
                        else:
                            gaps.append((smallest_kept - largest_dropped) / scale)
            m = np.zeros(G)
            m[rows] = dz[rows]
            memory = memory_decay * (dz - m)
            dx[t] = W_ih.T @ m
            dW_ih += np.outer(m, x[t])
            dW_hh += np.outer(m, h_prev)
            # What each kept gate entry is computed from bounds it (the gate
            # derivatives are at most 1) and sets its rounding: a saturated
            # gate's derivative is exactly 0 in float32 and tiny in float64.
            bound = np.tile(np.maximum(np.abs(dc) * np.maximum(1.0, np.abs(c_prev)), np.abs(dht)), 4)
            bound = np.where(kept[t], np.maximum(bound, np.abs(dz)), 0.0)
            abs_dx[t] = np.abs(W_ih.T) @ bound
            abs_dW_ih += np.outer(bound, np.abs(x[t]))
            abs_dW_hh += np.outer(bound, np.abs(h_prev))
            abs_db += np.maximum(bound, np.abs(dz))
            dh_next = W_hh.T @ m
    if sizes is not None:
        for name, total in (("dx", abs_dx), ("dW_ih", abs_dW_ih), ("dW_hh", abs_dW_hh), ("db", abs_db)):
            sizes[name] = float(total.max(initial=0.0))
    return h, dx, dW_ih, dW_hh, db, kept


# ---- reference optimizers ----------------------------------------------------

B1, B2, ADAM_EPS, ADAGRAD_EPS = 0.9, 0.999, 1e-8, 1e-6


class NumpyOptimizer:
    """Straightforward NumPy versions of the three optimizers (dense state)."""

    def __init__(self, name, shapes, lr, clip, lazy=False):
        self.name, self.lr, self.clip, self.lazy = name, lr, clip, lazy
        self.t = 0
        self.s = [np.zeros(s) for s in shapes]
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def step(self, params, grads):
        """params: 2-D float64 arrays; grads: list of (rows, grad_rows) or None."""
        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            rows, gr = (np.zeros(0, np.int64), np.zeros((0, p.shape[1]))) if g is None else g
            if self.clip > 0:
                gr = np.clip(gr, -self.clip, self.clip)
            if self.name == "sgd":
                p[rows] -= self.lr * gr
            elif self.name == "adagrad":
                self.s[i][rows] += gr**2
                p[rows] -= self.lr * gr / (np.sqrt(self.s[i][rows]) + ADAGRAD_EPS)
            else:
                upd = rows if self.lazy else np.arange(p.shape[0])
                full = np.zeros_like(p)
                full[rows] = gr
                m, v = self.m[i], self.v[i]
                m[upd] = B1 * m[upd] + (1 - B1) * full[upd]
                v[upd] = B2 * v[upd] + (1 - B2) * full[upd] ** 2
                mhat = m[upd] / (1 - B1**self.t)
                vhat = v[upd] / (1 - B2**self.t)
                p[upd] -= self.lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
