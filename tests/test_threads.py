"""Results are bitwise identical whatever the thread count; thread settings restore."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    BIAS_GRADS,
    DTYPES,
    METHODS,
    MODES,
    Reference,
    bitwise_equal,
    check_backward,
    random_problem,
    reference_topk_rows,
    reference_topk_unified,
)

import meprop_native as mp

THREADS = (1, 2, 3)


def run_with_threads(fn):
    """fn() under 1, 2 and 3 threads; returns the list of results."""
    results = []
    for n in THREADS:
        mp.set_num_threads(n)
        assert mp.get_num_threads() == n
        results.append(fn())
    return results


def assert_all_bitwise_equal(results):
    first = results[0]
    for other in results[1:]:
        if isinstance(first, tuple):
            assert len(first) == len(other)
            for a, b in zip(first, other):
                assert bitwise_equal(a, b)
        else:
            assert bitwise_equal(first, other)


@pytest.fixture(scope="module")
def big_problems():
    rng = np.random.default_rng(20170614)
    problems = {}
    for dtype in DTYPES:
        dy, x, W = random_problem(rng, 256, 1024, 1024, dtype)
        # a slice of exact ties, so the tie rule matters in every row
        dy[:, 100:300] = dtype(0.5)
        problems[np.dtype(dtype)] = (dy, x, W)
    return problems


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [10, 100])
def test_topk_rows_threads(k, method, dtype, big_problems):
    dy = big_problems[np.dtype(dtype)][0]
    results = run_with_threads(lambda: mp.topk_rows(dy, k, method=method))
    assert_all_bitwise_equal(results)
    np.testing.assert_array_equal(results[0], reference_topk_rows(dy, k))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_topk_unified_threads(method, dtype, big_problems):
    dy = big_problems[np.dtype(dtype)][0]
    results = run_with_threads(lambda: mp.topk_unified(dy, 100, method=method))
    assert_all_bitwise_equal(results)
    np.testing.assert_array_equal(results[0], reference_topk_unified(dy, 100))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_linear_backward_threads(mode, dtype, big_problems):
    dy, x, W = big_problems[np.dtype(dtype)]
    k = 64
    results = run_with_threads(lambda: mp.linear_backward(dy, x, W, k, mode))
    assert_all_bitwise_equal(results)
    check_backward(results[0], Reference(dy, x, W, k, mode), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_linear_backward_compact_threads(mode, dtype, big_problems):
    dy, x, W = big_problems[np.dtype(dtype)]
    results = run_with_threads(lambda: tuple(mp.linear_backward_compact(dy, x, W, 40, mode, bias_grad="sparse")))
    assert_all_bitwise_equal(results)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_grad", BIAS_GRADS)
def test_accumulate_threads(bias_grad, dtype, big_problems):
    dy, x, W = big_problems[np.dtype(dtype)]
    rng = np.random.default_rng(5)
    dW0 = rng.standard_normal(W.shape).astype(dtype)
    db0 = rng.standard_normal(W.shape[0]).astype(dtype)

    def step():
        dW_out, db_out = dW0.copy(), db0.copy()
        dx_out = np.empty_like(x)
        mp.linear_backward(
            dy,
            x,
            W,
            32,
            "per_example",
            bias_grad=bias_grad,
            dx_out=dx_out,
            dW_out=dW_out,
            db_out=db_out,
            accumulate=True,
        )
        return dx_out, dW_out, db_out

    assert_all_bitwise_equal(run_with_threads(step))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("B", "n_in", "n_out", "k"), [(100, 513, 700, 300), (33, 1500, 257, 17), (512, 130, 64, 8)])
def test_other_shapes_threads(B, n_in, n_out, k, dtype):
    rng = np.random.default_rng(B * n_in + k)
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    for mode in ("per_example", "unified"):
        assert_all_bitwise_equal(run_with_threads(lambda mode=mode: mp.linear_backward(dy, x, W, k, mode)))


def test_many_threads_more_than_rows():
    rng = np.random.default_rng(1)
    dy, x, W = random_problem(rng, 2, 1100, 3000, np.float32)
    expected = mp.linear_backward(dy, x, W, 50)
    mp.set_num_threads(16)
    got = mp.linear_backward(dy, x, W, 50)
    for a, b in zip(got, expected):
        assert bitwise_equal(a, b)


# ---- thread settings -----------------------------------------------------------------------


def test_set_and_get():
    for n in (1, 2, 3, 7):
        mp.set_num_threads(n)
        assert mp.get_num_threads() == n
        assert isinstance(mp.get_num_threads(), int)


def test_default_is_positive():
    assert mp.get_num_threads() >= 1


def test_thread_limits_restores():
    mp.set_num_threads(3)
    with mp.thread_limits(1):
        assert mp.get_num_threads() == 1
    assert mp.get_num_threads() == 3
    with mp.thread_limits(2, blas=1):
        assert mp.get_num_threads() == 2
        with mp.thread_limits(1):
            assert mp.get_num_threads() == 1
        assert mp.get_num_threads() == 2
    assert mp.get_num_threads() == 3


def test_thread_limits_default_keeps_count():
    mp.set_num_threads(2)
    with mp.thread_limits():
        assert mp.get_num_threads() == 2
    assert mp.get_num_threads() == 2


def test_thread_limits_restores_on_exception():
    mp.set_num_threads(3)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), mp.thread_limits(1):
        assert mp.get_num_threads() == 1
        raise Boom
    assert mp.get_num_threads() == 3


def test_thread_limits_restores_after_set_inside():
    mp.set_num_threads(2)
    with mp.thread_limits(1):
        mp.set_num_threads(5)
    assert mp.get_num_threads() == 2


def test_thread_limits_results_identical(big_problems):
    dy, x, W = big_problems[np.dtype(np.float32)]
    expected = mp.linear_backward(dy, x, W, 20)
    with mp.thread_limits(1):
        got = mp.linear_backward(dy, x, W, 20)
    for a, b in zip(got, expected):
        assert bitwise_equal(a, b)


def test_thread_limits_invalid():
    before = mp.get_num_threads()
    with pytest.raises(ValueError), mp.thread_limits(0):
        pass  # pragma: no cover
    assert mp.get_num_threads() == before


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]


def test_thread_limits_limits_and_restores_blas():
    before = _blas_threads()
    with mp.thread_limits():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before
    with mp.thread_limits(1, blas=2):
        assert all(n <= 2 for n in _blas_threads())
        assert mp.get_num_threads() == 1
    assert _blas_threads() == before


@pytest.mark.parametrize("n", [0, -1, 1025, 100000, 2**31 - 1, 99999999999])
def test_thread_counts_outside_the_limit_are_refused_naming_it(n):
    before = mp.get_num_threads()
    with pytest.raises(ValueError, match=r"\[1, 1024\]"):
        mp.set_num_threads(n)
    assert mp.get_num_threads() == before
    # The kernels still run.
    assert mp.topk_rows(np.random.default_rng(0).random((64, 500), dtype=np.float32), 5).shape == (64, 5)


@pytest.mark.parametrize("n", [2.5, "4", True, None])
def test_thread_counts_that_are_not_integers_are_a_type_error(n):
    with pytest.raises(TypeError, match="integer"):
        mp.set_num_threads(n)


def test_the_largest_thread_count_runs():
    before = mp.get_num_threads()
    try:
        mp.set_num_threads(1024)
        assert mp.get_num_threads() == 1024
    finally:
        mp.set_num_threads(before)
