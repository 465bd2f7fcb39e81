"""Property-based tests (hypothesis): the library against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    BIAS_GRADS,
    METHODS,
    MODES,
    Reference,
    bitwise_equal,
    check_backward,
    check_compact,
    reference_topk,
    reference_topk_rows,
    reference_topk_unified,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import meprop_native as mp

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # write nothing outside the test run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=60)


def _nan_bits(dtype, payload, negative):
    if np.dtype(dtype) == np.float32:
        bits = 0x7F800000 | (payload & 0x7FFFFF or 1) | (0x80000000 if negative else 0)
        return np.array([bits], dtype=np.uint32).view(np.float32)[0]
    bits = 0x7FF0000000000000 | (payload & 0xFFFFFFFFFFFFF or 1) | (0x8000000000000000 if negative else 0)
    return np.array([bits], dtype=np.uint64).view(np.float64)[0]


def special_pool(dtype):
    """Values with every kind of corner: signed zeros, subnormals, inf, NaN payloads."""
    fi = np.finfo(dtype)
    vals = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.0,
        -2.0,
        0.5,
        -0.5,
        3.0,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        float(fi.smallest_subnormal),
        -float(fi.smallest_subnormal),
        float(fi.tiny),
        float(fi.max),
        -float(fi.max),
        1.0 + float(fi.eps),
        -(1.0 + float(fi.eps)),
    ]
    pool = [dtype(v) for v in vals]
    pool += [
        _nan_bits(dtype, 0x1234, False),
        _nan_bits(dtype, 1, True),
        _nan_bits(dtype, 0x400000 if np.dtype(dtype) == np.float32 else 1 << 51, True),
    ]
    return pool


dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def vectors(draw, min_size=1, max_size=120, dtype=None):
    """1-D float arrays: drawn from a few values (ties), arbitrary floats, or a mix."""
    if dtype is None:
        dtype = draw(dtypes)
    pool = special_pool(dtype)
    n = draw(st.integers(min_size, max_size))
    kind = draw(st.sampled_from(["few", "floats", "mixed"]))
    floats = st.floats(width=32 if dtype == np.float32 else 64)
    if kind == "few":
        subset = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        elements = st.sampled_from(subset)
    elif kind == "floats":
        elements = floats
    else:
        elements = st.one_of(st.sampled_from(pool), floats)
    values = draw(st.lists(elements, min_size=n, max_size=n))
    with np.errstate(all="ignore"):
        return np.array(values, dtype=dtype)


@st.composite
def big_vectors(draw, dtype=None):
    """Longer arrays (up to a few thousand) made by NumPy from a drawn seed, so that
    'auto' takes the radix path; values from a few drawn levels to force ties."""
    if dtype is None:
        dtype = draw(dtypes)
    n = draw(st.integers(1, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["few", "normal", "specials", "bits"]))
    if kind == "few":
        levels = np.array(draw(st.lists(st.sampled_from(special_pool(dtype)), min_size=1, max_size=6)), dtype=dtype)
        a = rng.choice(levels, size=n)
    elif kind == "normal":
        a = rng.standard_normal(n).astype(dtype)
    elif kind == "specials":
        a = rng.standard_normal(n).astype(dtype)
        pool = np.array(special_pool(dtype), dtype=dtype)
        hit = rng.random(n) < draw(st.floats(0.0, 1.0))
        a[hit] = rng.choice(pool, size=int(hit.sum()))
    else:  # arbitrary bit patterns: every exponent, NaN payloads, subnormals
        ut = np.uint32 if dtype == np.float32 else np.uint64
        a = rng.integers(0, np.iinfo(ut).max, size=n, dtype=ut, endpoint=True).view(dtype)
    return np.ascontiguousarray(a)


@st.composite
def vector_and_k(draw, strategy):
    a = draw(strategy)
    k = draw(st.one_of(st.integers(1, a.size), st.sampled_from([1, a.size]), st.integers(1, min(a.size, 20))))
    return a, k


# ---- top-k ----------------------------------------------------------------------------------


@SETTINGS
@given(vector_and_k(vectors()))
def test_topk_small(ak):
    a, k = ak
    expected = reference_topk(a, k)
    for method in METHODS:
        got = mp.topk(a, k, method=method)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected, err_msg=f"method={method}")


@SETTINGS
@given(vector_and_k(big_vectors()))
def test_topk_large(ak):
    a, k = ak
    expected = reference_topk(a, k)
    for method in METHODS:
        np.testing.assert_array_equal(mp.topk(a, k, method=method), expected, err_msg=f"method={method}")


@FEW
@given(vectors(min_size=2, max_size=60), st.sampled_from(METHODS))
def test_topk_nested(a, method):
    """top-k(k) is a subset of top-k(k + 1), and the indices are strictly ascending."""
    prev = set()
    for k in range(1, a.size + 1):
        got = mp.topk(a, k, method=method)
        assert np.all(np.diff(got) > 0)
        assert got.min() >= 0 and got.max() < a.size
        cur = set(got.tolist())
        assert prev <= cur and len(cur) == k
        prev = cur


@FEW
@given(vector_and_k(vectors()), st.sampled_from(METHODS))
def test_topk_sign_invariant(ak, method):
    """Only magnitudes matter: negating any entries changes nothing."""
    a, k = ak
    flips = np.where(np.arange(a.size) % 3 == 0, -1, 1).astype(a.dtype)
    with np.errstate(all="ignore"):
        b = a * flips
    np.testing.assert_array_equal(mp.topk(b, k, method=method), mp.topk(a, k, method=method))
    np.testing.assert_array_equal(mp.topk(-a, k, method=method), mp.topk(a, k, method=method))


@FEW
@given(vector_and_k(vectors()), st.sampled_from(METHODS))
def test_topk_strided_and_list(ak, method):
    a, k = ak
    expected = mp.topk(a, k, method=method)
    big = np.zeros(a.size * 2, dtype=a.dtype)
    big[1::2] = a
    np.testing.assert_array_equal(mp.topk(big[1::2], k, method=method), expected)
    rev = np.ascontiguousarray(a[::-1])[::-1]
    np.testing.assert_array_equal(mp.topk(rev, k, method=method), expected)
    if a.dtype == np.float64:
        np.testing.assert_array_equal(mp.topk(a.tolist(), k, method=method), expected)


@st.composite
def matrices(draw, max_rows=8, max_cols=60):
    dtype = draw(dtypes)
    B = draw(st.integers(1, max_rows))
    n = draw(st.integers(1, max_cols))
    kind = draw(st.sampled_from(["few", "any"]))
    if kind == "few":
        subset = draw(st.lists(st.sampled_from(special_pool(dtype)), min_size=1, max_size=4))
        values = draw(st.lists(st.sampled_from(subset), min_size=B * n, max_size=B * n))
        with np.errstate(all="ignore"):
            return np.array(values, dtype=dtype).reshape(B, n)
    values = draw(
        st.lists(
            st.one_of(st.sampled_from(special_pool(dtype)), st.floats(width=32 if dtype == np.float32 else 64)),
            min_size=B * n,
            max_size=B * n,
        )
    )
    with np.errstate(all="ignore"):
        return np.array(values, dtype=dtype).reshape(B, n)


@SETTINGS
@given(matrices(), st.data())
def test_topk_rows_and_unified(A, data):
    k = data.draw(st.integers(1, A.shape[1]), label="k")
    expected_rows = reference_topk_rows(A, k)
    expected_unified = reference_topk_unified(A, k)
    for method in METHODS:
        np.testing.assert_array_equal(
            mp.topk_rows(A, k, method=method), expected_rows, err_msg=f"rows, method={method}"
        )
        np.testing.assert_array_equal(
            mp.topk_unified(A, k, method=method), expected_unified, err_msg=f"unified, method={method}"
        )
    np.testing.assert_array_equal(mp.topk_rows(np.asfortranarray(A), k), expected_rows)
    np.testing.assert_array_equal(mp.topk_unified(np.asfortranarray(A), k), expected_unified)


@FEW
@given(
    st.integers(1, 300),
    st.integers(1, 1200),
    st.integers(0, 2**32 - 1),
    dtypes,
    st.sampled_from(["normal", "few"]),
    st.data(),
)
def test_topk_rows_and_unified_large(B, n, seed, dtype, kind, data):
    if B * n > 200_000:
        B = max(1, 200_000 // n)
    rng = np.random.default_rng(seed)
    if kind == "normal":
        A = rng.standard_normal((B, n)).astype(dtype)
    else:
        A = rng.choice(np.array([0.0, -0.0, 0.5, -1.0, 1.0, 2.0], dtype=dtype), size=(B, n))
    k = data.draw(st.integers(1, n), label="k")
    method = data.draw(st.sampled_from(METHODS), label="method")
    np.testing.assert_array_equal(mp.topk_rows(A, k, method=method), reference_topk_rows(A, k))
    np.testing.assert_array_equal(mp.topk_unified(A, k, method=method), reference_topk_unified(A, k))


# ---- linear backward -------------------------------------------------------------------------


def _finite_values(dtype):
    """Values whose products never underflow: small dyadic numbers (exact arithmetic,
    many ties) and moderate floats."""
    dyadic = st.integers(-8, 8).map(lambda i: i / 4.0)
    moderate = st.floats(
        min_value=-100.0, max_value=100.0, width=32 if dtype == np.float32 else 64, allow_subnormal=False
    ).map(lambda v: 0.0 if abs(v) < 1e-3 else v)
    return st.one_of(dyadic, moderate, st.just(-0.0))


@st.composite
def backward_problems(draw, max_B=6, max_n=24):
    """(dy, x, W, k). dy comes from a few drawn levels (ties decide the kept sets)
    or from a normal distribution; x and W are normal or small dyadic numbers
    (exact arithmetic). Arrays are filled by NumPy from a drawn seed, which keeps
    generation fast."""
    dtype = draw(dtypes)
    B = draw(st.integers(1, max_B))
    n_in = draw(st.integers(1, max_n))
    n_out = draw(st.integers(1, max_n))
    k = draw(st.integers(1, n_out))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def fill(shape, kind):
        if kind == "levels":
            levels = draw(st.lists(_finite_values(dtype), min_size=1, max_size=5))
            return rng.choice(np.array(levels, dtype=dtype), size=shape)
        if kind == "dyadic":
            return (rng.integers(-8, 9, size=shape) / 4.0).astype(dtype)
        return rng.standard_normal(shape).astype(dtype)

    dy = fill((B, n_out), draw(st.sampled_from(["levels", "dyadic", "normal"])))
    x = fill((B, n_in), draw(st.sampled_from(["dyadic", "normal"])))
    W = fill((n_out, n_in), draw(st.sampled_from(["dyadic", "normal"])))
    return dy, x, W, k


@SETTINGS
@given(backward_problems(), st.sampled_from(MODES), st.sampled_from(BIAS_GRADS), st.sampled_from(METHODS))
def test_linear_backward_matches_reference(problem, mode, bias_grad, method):
    dy, x, W, k = problem
    dtype = dy.dtype.type
    ref = Reference(dy, x, W, k, mode, bias_grad)
    got = mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad, method=method)
    check_backward(got, ref, dtype)
    compact = mp.linear_backward_compact(dy, x, W, k, mode, bias_grad=bias_grad, method=method)
    check_compact(compact, ref, dtype)
    assert bitwise_equal(compact.dx, got[0])
    assert bitwise_equal(compact.db, got[2])
    np.testing.assert_array_equal(compact.dense_dW(W.shape[0]), got[1])


@FEW
@given(backward_problems(), st.sampled_from(MODES), st.sampled_from(BIAS_GRADS), st.data())
def test_linear_backward_accumulate(problem, mode, bias_grad, data):
    dy, x, W, k = problem
    dtype = dy.dtype.type
    n_out, n_in = W.shape
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    dW0 = rng.standard_normal((n_out, n_in)).astype(dtype)
    db0 = rng.standard_normal(n_out).astype(dtype)
    dW_out, db_out = dW0.copy(), db0.copy()
    mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad, dW_out=dW_out, db_out=db_out, accumulate=True)
    fresh = mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad)
    ref = Reference(dy, x, W, k, mode, bias_grad)
    untouched = np.setdiff1d(np.arange(n_out), ref.rows)
    assert bitwise_equal(dW_out[untouched], dW0[untouched])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale_W = np.abs(dW0) + ref.dW_scale
    assert np.all(np.abs(dW_out - (dW0.astype(np.float64) + ref.dW)) <= tol * scale_W)
    assert np.all(np.abs(db_out - (db0.astype(np.float64) + ref.db)) <= tol * (np.abs(db0) + ref.db_scale))
    # the touched rows: previous value plus the fresh gradient, up to rounding
    assert np.all(np.abs(dW_out - (dW0.astype(np.float64) + fresh[1])) <= 2 * tol * scale_W)


@FEW
@given(backward_problems(), st.sampled_from(MODES))
def test_linear_backward_layouts(problem, mode):
    dy, x, W, k = problem
    expected = mp.linear_backward(dy, x, W, k, mode)
    got = mp.linear_backward(np.asfortranarray(dy), np.ascontiguousarray(x.T).T, np.asfortranarray(W), k, mode)
    for g, e in zip(got, expected):
        assert bitwise_equal(g, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FEW
@given(
    B=st.integers(1, 40),
    n_in=st.integers(1, 700),
    n_out=st.integers(1, 700),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_linear_backward_random_shapes(dtype, B, n_in, n_out, seed, data):
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal((B, n_out)).astype(dtype)
    if data.draw(st.booleans(), label="ties"):
        dy[rng.random(dy.shape) < 0.5] = dtype(1.0)
    x = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    k = data.draw(st.integers(1, n_out), label="k")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    bias_grad = data.draw(st.sampled_from(BIAS_GRADS), label="bias_grad")
    ref = Reference(dy, x, W, k, mode, bias_grad)
    check_backward(mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad), ref, dtype)
    check_compact(mp.linear_backward_compact(dy, x, W, k, mode, bias_grad=bias_grad), ref, dtype)
