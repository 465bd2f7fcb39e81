"""topk, topk_rows and topk_unified against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    DTYPES,
    METHODS,
    reference_topk,
    reference_topk_rows,
    reference_topk_unified,
    unified_sums,
)

import meprop_native as mp

nan, inf = np.nan, np.inf


def nan_with_payload(dtype, payload: int, negative: bool = False):
    """A quiet NaN with the given mantissa payload (and sign)."""
    if np.dtype(dtype) == np.float32:
        bits = 0x7FC00000 | payload | (0x80000000 if negative else 0)
        return np.array([bits], dtype=np.uint32).view(np.float32)[0]
    bits = 0x7FF8000000000000 | payload | (0x8000000000000000 if negative else 0)
    return np.array([bits], dtype=np.uint64).view(np.float64)[0]


def check_topk(a, k, method):
    got = mp.topk(a, k, method=method)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.int64
    assert got.shape == (k,)
    np.testing.assert_array_equal(got, reference_topk(np.asarray(a), k))
    return got


# ---- the reference itself --------------------------------------------------------


def test_reference_topk_rules():
    a = np.array([1.0, -3.0, nan, 3.0, -0.0, inf, -nan, 0.0])
    # order: nan(2), nan(6), inf(5), 3(1), 3(3), 1(0), 0(4), 0(7)
    assert reference_topk(a, 1).tolist() == [2]
    assert reference_topk(a, 2).tolist() == [2, 6]
    assert reference_topk(a, 3).tolist() == [2, 5, 6]
    assert reference_topk(a, 4).tolist() == [1, 2, 5, 6]
    assert reference_topk(a, 5).tolist() == [1, 2, 3, 5, 6]
    assert reference_topk(a, 7).tolist() == [0, 1, 2, 3, 4, 5, 6]


# ---- hand-made cases -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
class TestHandMade:
    def test_simple(self, dtype, method):
        a = np.array([0.1, -5.0, 2.0, 0.0, 4.0, -3.0], dtype=dtype)
        assert mp.topk(a, 1, method=method).tolist() == [1]
        assert mp.topk(a, 2, method=method).tolist() == [1, 4]
        assert mp.topk(a, 3, method=method).tolist() == [1, 4, 5]
        assert mp.topk(a, 4, method=method).tolist() == [1, 2, 4, 5]

    def test_k_equals_n(self, dtype, method):
        a = np.array([3.0, nan, -1.0, 0.0, inf], dtype=dtype)
        assert mp.topk(a, 5, method=method).tolist() == [0, 1, 2, 3, 4]

    def test_single_element(self, dtype, method):
        for v in (0.0, -0.0, 1.0, -inf, nan):
            assert mp.topk(np.array([v], dtype=dtype), 1, method=method).tolist() == [0]

    def test_ties_go_to_lower_index(self, dtype, method):
        a = np.array([1.0, -2.0, 2.0, -2.0, 1.0, 2.0], dtype=dtype)
        assert mp.topk(a, 1, method=method).tolist() == [1]
        assert mp.topk(a, 2, method=method).tolist() == [1, 2]
        assert mp.topk(a, 3, method=method).tolist() == [1, 2, 3]
        assert mp.topk(a, 4, method=method).tolist() == [1, 2, 3, 5]
        assert mp.topk(a, 5, method=method).tolist() == [0, 1, 2, 3, 5]

    def test_all_equal(self, dtype, method):
        a = np.full(300, -1.5, dtype=dtype)
        for k in (1, 2, 17, 100, 299, 300):
            assert mp.topk(a, k, method=method).tolist() == list(range(k))

    def test_signed_zeros_tie(self, dtype, method):
        a = np.array([-0.0, 0.0, -0.0, 0.0], dtype=dtype)
        assert mp.topk(a, 2, method=method).tolist() == [0, 1]
        a = np.array([0.0, -0.0, 1e-30, -0.0], dtype=dtype)
        assert mp.topk(a, 2, method=method).tolist() == [0, 2]
        assert mp.topk(a, 3, method=method).tolist() == [0, 1, 2]

    def test_nan_above_inf(self, dtype, method):
        a = np.array([inf, -inf, 1.0, nan, np.finfo(dtype).max], dtype=dtype)
        assert mp.topk(a, 1, method=method).tolist() == [3]
        assert mp.topk(a, 2, method=method).tolist() == [0, 3]
        assert mp.topk(a, 3, method=method).tolist() == [0, 1, 3]
        assert mp.topk(a, 4, method=method).tolist() == [0, 1, 3, 4]

    def test_nans_tie_whatever_payload_and_sign(self, dtype, method):
        n1 = nan_with_payload(dtype, 1)
        n2 = nan_with_payload(dtype, 0x1234, negative=True)
        n3 = nan_with_payload(dtype, 0, negative=True)
        a = np.array([1.0, n2, inf, n1, n3, nan], dtype=dtype)
        assert mp.topk(a, 1, method=method).tolist() == [1]
        assert mp.topk(a, 2, method=method).tolist() == [1, 3]
        assert mp.topk(a, 3, method=method).tolist() == [1, 3, 4]
        assert mp.topk(a, 4, method=method).tolist() == [1, 3, 4, 5]
        assert mp.topk(a, 5, method=method).tolist() == [1, 2, 3, 4, 5]

    def test_signaling_nan_payload(self, dtype, method):
        # a NaN with the quiet bit clear (signalling pattern) is still a NaN
        if np.dtype(dtype) == np.float32:
            snan = np.array([0x7F800001], dtype=np.uint32).view(np.float32)[0]
        else:
            snan = np.array([0x7FF0000000000001], dtype=np.uint64).view(np.float64)[0]
        a = np.array([inf, 0.0, 0.0, 0.0], dtype=dtype)
        a[2] = snan
        assert mp.topk(a, 1, method=method).tolist() == [2]
        assert mp.topk(a, 2, method=method).tolist() == [0, 2]

    def test_subnormals(self, dtype, method):
        tiny = np.finfo(dtype).smallest_subnormal
        a = np.array([0.0, tiny, -2 * tiny, -0.0, tiny], dtype=dtype)
        assert mp.topk(a, 1, method=method).tolist() == [2]
        assert mp.topk(a, 2, method=method).tolist() == [1, 2]
        assert mp.topk(a, 3, method=method).tolist() == [1, 2, 4]
        assert mp.topk(a, 4, method=method).tolist() == [0, 1, 2, 4]

    def test_input_not_modified(self, dtype, method, rng):
        a = rng.standard_normal(500).astype(dtype)
        a[::7] = nan
        before = a.copy()
        check_topk(a, 40, method)
        assert before.tobytes() == a.tobytes()


# ---- random arrays ---------------------------------------------------------------------

SIZES_K = [
    (1, 1),
    (2, 1),
    (7, 3),
    (15, 15),
    (16, 5),
    (17, 16),
    (33, 17),
    (255, 17),
    (256, 16),
    (256, 17),
    (257, 100),
    (500, 50),
    (1000, 1),
    (1000, 999),
    (1023, 300),
    (4099, 2000),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "k"), SIZES_K)
def test_random_normal(n, k, method, dtype, rng):
    a = rng.standard_normal(n).astype(dtype)
    check_topk(a, k, method)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "k"), SIZES_K)
def test_random_few_values(n, k, method, dtype, rng):
    """Drawn from a handful of values, so ties decide most of the selection."""
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, inf, -inf, nan], dtype=dtype)
    a = rng.choice(pool, size=n, p=[0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.04, 0.02, 0.02, 0.02])
    check_topk(a, k, method)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("n", "k"), [(300, 20), (1000, 100), (5000, 2500)])
def test_random_close_magnitudes(n, k, method, dtype, rng):
    """Magnitudes that differ only in their lowest bits (radix's last digits)."""
    base = np.array(1.0, dtype=dtype)
    steps = rng.integers(0, 50, size=n)
    a = base + steps.astype(dtype) * np.finfo(dtype).eps
    a = a.astype(dtype) * rng.choice(np.array([-1.0, 1.0], dtype=dtype), size=n)
    check_topk(a, k, method)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_wide_dynamic_range(method, dtype, rng):
    fi = np.finfo(dtype)
    exps = rng.uniform(np.log2(float(fi.smallest_subnormal)), np.log2(float(fi.max)), 2000)
    a = (np.exp2(exps) * rng.choice([-1.0, 1.0], 2000)).astype(dtype)
    for k in (1, 10, 17, 500, 1999):
        check_topk(a, k, method)


@pytest.mark.parametrize("method", METHODS)
def test_methods_agree(method, rng):
    a = rng.standard_normal(3000)
    a[rng.integers(0, 3000, 200)] = 0.25
    expected = reference_topk(a, 333)
    np.testing.assert_array_equal(mp.topk(a, 333, method=method), expected)


def test_default_method_is_auto(rng):
    a = rng.standard_normal(700).astype(np.float32)
    np.testing.assert_array_equal(mp.topk(a, 50), mp.topk(a, 50, method="auto"))
    np.testing.assert_array_equal(mp.topk(a, 50), reference_topk(a, 50))


@pytest.mark.parametrize(
    ("n", "k"),
    [
        (2, 1),
        (7, 3),
        (63, 1),
        (63, 62),
        (64, 63),
        (65, 64),
        (70, 63),
        (500, 20),
        (500, 32),
        (500, 33),
        (2000, 64),
        (2000, 65),
        (5000, 1),
    ],
)
@pytest.mark.parametrize("values", ["normal", "half_zero", "mostly_zero", "few_levels", "sorted", "all_equal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threshold_method_matches_reference(n, k, values, dtype, rng):
    # the threshold pass's bound comes from 64 lane maxima: rows shorter than
    # the lanes, k at and past the lanes (radix then), ties that reach the
    # bound, rows where most entries reach it (the heap then)
    a = rng.standard_normal(n).astype(dtype)
    if values == "half_zero":
        a[rng.random(n) < 0.5] = 0
    elif values == "mostly_zero":
        a[rng.random(n) < 0.97] = 0
    elif values == "few_levels":
        a = rng.integers(-3, 4, n).astype(dtype)
    elif values == "sorted":
        a = np.sort(np.abs(a))
    elif values == "all_equal":
        a[:] = -1.5
    a[rng.integers(0, n)] = np.nan if n > 3 else a[0]
    np.testing.assert_array_equal(mp.topk(a, k, method="threshold"), reference_topk(a, k))
    rows = np.stack([a, a[::-1].copy()])
    np.testing.assert_array_equal(
        mp.topk_rows(rows, k, method="threshold"), np.stack([reference_topk(r, k) for r in rows])
    )


@pytest.mark.parametrize(("n", "k"), [(10, 1), (10, 10), (255, 17), (256, 16), (256, 17), (10000, 500)])
def test_select_method_for(n, k):
    assert mp.select_method_for(n, k) in ("heap", "radix", "threshold")


def test_auto_picks_threshold_for_small_k():
    assert mp.select_method_for(500, 20) == "threshold"
    assert mp.select_method_for(500, 32) == "threshold"
    assert mp.select_method_for(2000, 48) == "threshold"
    assert mp.select_method_for(500, 48) == "radix"
    assert mp.select_method_for(100, 8) == "threshold"
    assert mp.select_method_for(100, 16) == "radix"  # rows only a few times longer than k
    assert mp.select_method_for(100, 4) == "heap"  # short rows, tiny k: the heap's few sifts
    assert mp.select_method_for(200, 33) == "radix"  # nearer the 64 lanes: many candidates
    assert mp.select_method_for(5000, 49) == "radix"
    assert mp.select_method_for(40000, 64) == "heap"
    assert mp.select_method_for(1000, 65) == "radix"


# ---- array-likes and layouts -------------------------------------------------------------


def test_list_input_is_float64():
    assert mp.topk([0.5, -3.0, 2.0, 2.0], 2).tolist() == [1, 2]
    assert mp.topk((1.0, float("nan"), -1.0), 1).tolist() == [1]
    assert mp.topk([1, 2.5, -3], 1).tolist() == [2]  # mixed ints and floats: float64
    assert mp.topk_rows([[1.0, -2.0], [3.0, 0.5]], 1).tolist() == [[1], [0]]
    assert mp.topk_unified([[1.0, -2.0], [3.0, 0.5]], 1).tolist() == [0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_1d(method, dtype, rng):
    base = rng.standard_normal(2001).astype(dtype)
    base[rng.integers(0, 2001, 100)] = 1.0
    for view in (base[::2], base[1::3], base[::-1], base[::-7]):
        assert not view.flags.c_contiguous
        k = max(1, view.size // 5)
        check_topk(view, k, method)
    col = rng.standard_normal((300, 4)).astype(dtype)[:, 2]
    check_topk(col, 30, method)


def test_float32_selection_uses_float32_magnitudes():
    # distinct in float64, equal in float32: ties to the lower index
    a64 = np.array([1.0, 1.0 + 2.0**-30, 0.0])
    assert mp.topk(a64, 1).tolist() == [1]
    assert mp.topk(a64.astype(np.float32), 1).tolist() == [0]


# ---- topk_rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("B", "n", "k"),
    [(1, 1, 1), (1, 10, 3), (5, 10, 10), (3, 300, 17), (4, 300, 16), (64, 100, 7), (40, 513, 200)],
)
def test_topk_rows(B, n, k, method, dtype, rng):
    A = rng.standard_normal((B, n)).astype(dtype)
    A[rng.random((B, n)) < 0.3] = 1.0
    A[rng.random((B, n)) < 0.02] = nan
    got = mp.topk_rows(A, k, method=method)
    assert got.dtype == np.int64
    assert got.shape == (B, k)
    np.testing.assert_array_equal(got, reference_topk_rows(A, k))
    # each row as topk of that row
    for r in range(B):
        np.testing.assert_array_equal(got[r], mp.topk(A[r], k, method=method))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_topk_rows_layouts(method, dtype, rng):
    A = rng.standard_normal((60, 90)).astype(dtype)
    A[rng.random(A.shape) < 0.4] = -2.0
    expected = reference_topk_rows(np.ascontiguousarray(A), 20)
    np.testing.assert_array_equal(mp.topk_rows(np.asfortranarray(A), 20, method=method), expected)
    T = np.ascontiguousarray(A.T).T  # a transposed view, Fortran-ordered
    assert not T.flags.c_contiguous
    np.testing.assert_array_equal(mp.topk_rows(T, 20, method=method), expected)
    big = np.zeros((120, 180), dtype=dtype)
    big[::2, ::2] = A
    np.testing.assert_array_equal(mp.topk_rows(big[::2, ::2], 20, method=method), expected)
    np.testing.assert_array_equal(
        mp.topk_rows(A.tolist(), 20, method=method), reference_topk_rows(np.asarray(A.tolist()), 20)
    )


def test_topk_rows_no_rows_does_not_crash():
    try:
        out = mp.topk_rows(np.zeros((0, 5)), 2)
    except ValueError:
        return
    assert out.shape == (0, 2)
    assert out.dtype == np.int64


# ---- topk_unified --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("B", "n", "k"),
    [(1, 1, 1), (1, 10, 4), (3, 10, 10), (7, 300, 17), (5, 300, 16), (64, 257, 30), (32, 1000, 100)],
)
def test_topk_unified(B, n, k, method, dtype, rng):
    A = rng.standard_normal((B, n)).astype(dtype)
    got = mp.topk_unified(A, k, method=method)
    assert got.dtype == np.int64
    assert got.shape == (k,)
    np.testing.assert_array_equal(got, reference_topk_unified(A, k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_topk_unified_ties_and_specials(method, dtype, rng):
    pool = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.0], dtype=dtype)
    A = rng.choice(pool, size=(8, 400))
    A[3, 17] = nan
    A[5, 200] = -inf
    A[0, 399] = inf
    for k in (1, 2, 3, 10, 17, 100, 399, 400):
        np.testing.assert_array_equal(mp.topk_unified(A, k, method=method), reference_topk_unified(A, k))
    assert mp.topk_unified(A, 1, method=method).tolist() == [17]  # NaN sum wins
    assert mp.topk_unified(A, 3, method=method).tolist() == [17, 200, 399]


def test_topk_unified_single_row_is_topk(rng):
    a = rng.standard_normal(500)
    np.testing.assert_array_equal(mp.topk_unified(a[None, :], 60), mp.topk(a, 60))


def test_topk_unified_sums_in_float32():
    # Column 1 sums to 1 + 4 * 2**-26 exactly (more than column 0's 1), but
    # accumulated in float32 each small term is rounded away: a tie, and the
    # tie goes to column 0. In float64 column 1 wins.
    tiny = 2.0**-26
    A = np.array([[1.0, 1.0]] + [[0.0, tiny]] * 4)
    assert mp.topk_unified(A, 1).tolist() == [1]
    A32 = A.astype(np.float32)
    assert unified_sums(A32)[0] == unified_sums(A32)[1]
    assert mp.topk_unified(A32, 1).tolist() == [0]


def test_topk_unified_row_order_accumulation():
    # float32: 1 + 2**-24 rounds to 1 (ties to even), so row by row column 1
    # sums to exactly 1 and ties with column 0. Summed in any order that adds
    # the two small terms first it would be 1 + 2**-23 and win.
    e = 2.0**-24
    A = np.array([[1.0, 1.0], [0.0, e], [0.0, e]], dtype=np.float32)
    s = unified_sums(A)
    assert s[0] == s[1] == np.float32(1.0)
    assert mp.topk_unified(A, 1).tolist() == [0]
    # reversed rows: the small terms come first, column 1 is strictly larger
    R = np.ascontiguousarray(A[::-1])
    assert unified_sums(R)[1] > unified_sums(R)[0]
    assert mp.topk_unified(R, 1).tolist() == [1]


def test_topk_unified_overflow_to_inf_float32():
    big = np.finfo(np.float32).max
    A = np.array([[big, 1.0, big], [big, 1.0, 0.0]], dtype=np.float32)
    # column 0 overflows to inf in float32 and beats column 2
    assert mp.topk_unified(A, 1).tolist() == [0]
    assert mp.topk_unified(A, 2).tolist() == [0, 2]
    assert mp.topk_unified(A.astype(np.float64), 1).tolist() == [0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_topk_unified_layouts(dtype, rng):
    A = rng.standard_normal((30, 77)).astype(dtype)
    expected = reference_topk_unified(A, 11)
    np.testing.assert_array_equal(mp.topk_unified(np.asfortranarray(A), 11), expected)
    big = np.zeros((60, 154), dtype=dtype)
    big[::2, 1::2] = A
    np.testing.assert_array_equal(mp.topk_unified(big[::2, 1::2], 11), expected)
