"""linear_backward and linear_backward_compact against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    BIAS_GRADS,
    DTYPES,
    METHODS,
    MODES,
    Reference,
    assert_close,
    bitwise_equal,
    check_backward,
    check_compact,
    random_problem,
    reference_topk_rows,
    reference_topk_unified,
)

import meprop_native as mp

# (B, n_in, n_out, k)
SHAPES = [
    (1, 1, 1, 1),
    (1, 7, 5, 1),
    (1, 7, 5, 5),
    (2, 3, 9, 2),
    (3, 13, 17, 4),
    (8, 33, 31, 31),
    (5, 1030, 70, 20),  # n_in crosses two column blocks, not a multiple of 8
    (32, 513, 100, 17),  # n_in one past a column block
    (4, 15, 1000, 300),  # n_out large enough for the radix path
    (7, 9, 257, 17),
    (16, 784, 500, 50),  # the paper's MNIST hidden layer
    (64, 600, 300, 30),  # enough work for the parallel paths
]


def shape_id(s):
    return "B{}_in{}_out{}_k{}".format(*s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_grad", BIAS_GRADS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_against_reference(shape, mode, bias_grad, dtype, rng):
    B, n_in, n_out, k = shape
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    ref = Reference(dy, x, W, k, mode, bias_grad)
    got = mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad)
    assert isinstance(got, tuple) and len(got) == 3
    assert got[0].shape == (B, n_in)
    assert got[1].shape == (n_out, n_in)
    assert got[2].shape == (n_out,)
    check_backward(got, ref, dtype)

    compact = mp.linear_backward_compact(dy, x, W, k, mode, bias_grad=bias_grad)
    assert isinstance(compact, mp.CompactGradients)
    check_compact(compact, ref, dtype)
    # the compact form and the dense form are the same computation
    assert bitwise_equal(compact.dx, got[0])
    assert bitwise_equal(compact.db, got[2])
    np.testing.assert_array_equal(compact.dense_dW(n_out), got[1])
    assert compact.dense_dW(n_out).dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["per_example", "unified"])
@pytest.mark.parametrize("shape", [(3, 20, 40, 5), (9, 50, 300, 17), (6, 40, 300, 16), (5, 30, 600, 200)], ids=shape_id)
def test_methods(shape, mode, method, dtype, rng):
    B, n_in, n_out, k = shape
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    dy[rng.random(dy.shape) < 0.5] = dtype(0.75)  # many ties
    ref = Reference(dy, x, W, k, mode)
    check_backward(mp.linear_backward(dy, x, W, k, mode, method=method), ref, dtype)
    check_compact(mp.linear_backward_compact(dy, x, W, k, mode, method=method), ref, dtype)
    auto = mp.linear_backward(dy, x, W, k, mode)
    for a, b in zip(mp.linear_backward(dy, x, W, k, mode, method=method), auto):
        assert bitwise_equal(a, b)


def test_defaults(rng):
    dy, x, W = random_problem(rng, 4, 10, 30, np.float64)
    a = mp.linear_backward(dy, x, W, 5)
    b = mp.linear_backward(dy, x, W, 5, "per_example", bias_grad="dense", method="auto")
    for u, v in zip(a, b):
        assert bitwise_equal(u, v)
    c = mp.linear_backward(dy, x, W, k=5)
    for u, v in zip(a, c):
        assert bitwise_equal(u, v)
    check_backward(a, Reference(dy, x, W, 5, "per_example", "dense"), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_mode_is_plain_backprop(dtype, rng):
    dy, x, W = random_problem(rng, 6, 25, 40, dtype)
    ref = Reference(dy, x, W, None, "dense")
    for k in (None, 1, 40):
        check_backward(mp.linear_backward(dy, x, W, k, "dense"), ref, dtype)
        check_compact(mp.linear_backward_compact(dy, x, W, k, "dense"), ref, dtype)
    # bias_grad is irrelevant when nothing is masked
    dense = mp.linear_backward(dy, x, W, None, "dense", bias_grad="dense")
    sparse = mp.linear_backward(dy, x, W, None, "dense", bias_grad="sparse")
    assert_close(sparse[2], ref.db, ref.db_scale, dtype, "db")
    assert_close(dense[2], ref.db, ref.db_scale, dtype, "db")
    c = mp.linear_backward_compact(dy, x, W, None, "dense")
    np.testing.assert_array_equal(c.rows, np.arange(40))


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_equals_n_out_matches_dense(dtype, rng):
    dy, x, W = random_problem(rng, 5, 20, 12, dtype)
    ref = Reference(dy, x, W, None, "dense")
    for mode in ("per_example", "unified"):
        got = mp.linear_backward(dy, x, W, 12, mode, bias_grad="sparse")
        check_backward(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_exact_example(dtype):
    # B=2, n_out=3, n_in=2, k=1: row 0 keeps column 2, row 1 keeps column 0
    dy = np.array([[1.0, -2.0, 3.0], [-4.0, 0.5, 1.0]], dtype=dtype)
    x = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=dtype)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=dtype)
    dx, dW, db = mp.linear_backward(dy, x, W, 1)
    np.testing.assert_array_equal(dx, [[6.0, 6.0], [-4.0, 0.0]])
    np.testing.assert_array_equal(dW, [[-12.0, 4.0], [0.0, 0.0], [3.0, 6.0]])
    np.testing.assert_array_equal(db, [-3.0, -1.5, 4.0])
    _, _, db_sparse = mp.linear_backward(dy, x, W, 1, bias_grad="sparse")
    np.testing.assert_array_equal(db_sparse, [-4.0, 0.0, 3.0])
    c = mp.linear_backward_compact(dy, x, W, 1)
    np.testing.assert_array_equal(c.rows, [0, 2])
    np.testing.assert_array_equal(c.dW_rows, [[-12.0, 4.0], [3.0, 6.0]])
    np.testing.assert_array_equal(c.dense_dW(3), dW)
    # unified, k=1: column sums |dy| = [5, 2.5, 4] -> column 0
    dx, dW, db = mp.linear_backward(dy, x, W, 1, "unified", bias_grad="sparse")
    np.testing.assert_array_equal(dx, [[1.0, 0.0], [-4.0, 0.0]])
    np.testing.assert_array_equal(dW, [[-11.0, 6.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(db, [-3.0, 0.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_in_dy(dtype, rng):
    """dy from a few values: the kept set is decided by the tie rule."""
    B, n_in, n_out, k = 12, 21, 45, 7
    _, x, W = random_problem(rng, B, n_in, n_out, dtype)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0], dtype=dtype)
    dy = rng.choice(pool, size=(B, n_out))
    for mode in ("per_example", "unified"):
        for bias_grad in BIAS_GRADS:
            ref = Reference(dy, x, W, k, mode, bias_grad)
            check_backward(mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad), ref, dtype)
            check_compact(mp.linear_backward_compact(dy, x, W, k, mode, bias_grad=bias_grad), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dy_entries_still_touch_rows(dtype, rng):
    """A kept entry equal to zero still selects its row (rows are index sets)."""
    B, n_in, n_out = 3, 4, 6
    dy = np.zeros((B, n_out), dtype=dtype)
    dy[0, 4] = 1.0
    x = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    c = mp.linear_backward_compact(dy, x, W, 2)
    # row 0 keeps {0, 4} (tie on zero -> lowest index), rows 1, 2 keep {0, 1}
    np.testing.assert_array_equal(c.rows, [0, 1, 4])
    assert not np.any(c.dW_rows[:2])
    np.testing.assert_array_equal(c.dW_rows[2], x[0])
    cu = mp.linear_backward_compact(dy, x, W, 2, "unified")
    np.testing.assert_array_equal(cu.rows, [0, 4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_gradient_is_kept(dtype, rng):
    B, n_in, n_out = 4, 5, 30
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    dy[2, 13] = np.nan
    dx, dW, db = mp.linear_backward(dy, x, W, 1)
    ids = reference_topk_rows(dy, 1)
    assert ids[2, 0] == 13
    assert np.isnan(dx[2]).all()
    assert not np.isnan(np.delete(dx, 2, axis=0)).any()
    assert np.isnan(dW[13]).all()
    assert np.isnan(db[13]) and not np.isnan(np.delete(db, 13)).any()
    dx, dW, db = mp.linear_backward(dy, x, W, 1, "unified")
    assert reference_topk_unified(dy, 1).tolist() == [13]
    assert np.isnan(dx[2]).all()
    assert np.isnan(dW[13]).all()
    assert np.count_nonzero(np.any(dW != 0, axis=1)) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_gradient(dtype):
    dy = np.array([[0.5, -np.inf, 1.0]], dtype=dtype)
    x = np.array([[2.0, 1.0]], dtype=dtype)
    W = np.array([[1.0, 1.0], [1.0, 2.0], [3.0, 1.0]], dtype=dtype)
    dx, dW, db = mp.linear_backward(dy, x, W, 1)
    np.testing.assert_array_equal(dx, [[-np.inf, -np.inf]])
    np.testing.assert_array_equal(dW, [[0.0, 0.0], [-np.inf, -np.inf], [0.0, 0.0]])
    np.testing.assert_array_equal(db, [0.5, -np.inf, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_inputs_not_modified(dtype, rng):
    dy, x, W = random_problem(rng, 8, 30, 50, dtype)
    copies = [a.copy() for a in (dy, x, W)]
    for mode in MODES:
        mp.linear_backward(dy, x, W, 9, mode)
        mp.linear_backward_compact(dy, x, W, 9, mode)
    for a, b in zip((dy, x, W), copies):
        assert bitwise_equal(a, b)


def test_outputs_are_fresh_writeable_arrays(rng):
    dy, x, W = random_problem(rng, 3, 4, 5, np.float64)
    dx, dW, db = mp.linear_backward(dy, x, W, 2)
    for out in (dx, dW, db):
        assert out.flags.c_contiguous and out.flags.writeable
        for inp in (dy, x, W):
            assert not np.shares_memory(out, inp)
    c = mp.linear_backward_compact(dy, x, W, 2)
    for out in c:
        assert out.flags.c_contiguous and out.flags.writeable
    c.dW_rows[:] = 0  # writeable and owned
    assert not np.any(c.dW_rows)


# ---- array-likes and layouts ------------------------------------------------------------


def test_list_inputs_are_float64(rng):
    dy, x, W = random_problem(rng, 3, 4, 6, np.float64)
    got = mp.linear_backward(dy.tolist(), x.tolist(), W.tolist(), 2)
    for g, e in zip(got, mp.linear_backward(dy, x, W, 2)):
        assert g.dtype == np.float64
        assert bitwise_equal(g, e)
    c = mp.linear_backward_compact(dy.tolist(), x.tolist(), W.tolist(), 2)
    assert c.dx.dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_inputs(mode, dtype, rng):
    B, n_in, n_out, k = 10, 37, 29, 6
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    expected = mp.linear_backward(dy, x, W, k, mode)
    expected_c = mp.linear_backward_compact(dy, x, W, k, mode)
    check_backward(expected, Reference(dy, x, W, k, mode), dtype)

    def strided(a):
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=dtype)
        big[::2, ::3] = a
        return big[::2, ::3]

    def transposed(a):
        return np.ascontiguousarray(a.T).T

    def reversed_rows(a):
        return np.ascontiguousarray(a[::-1])[::-1]

    variants = [np.asfortranarray, strided, transposed, reversed_rows]
    for f in variants:
        args = [f(a) for a in (dy, x, W)]
        for a, orig in zip(args, (dy, x, W)):
            assert not a.flags.c_contiguous or a.size <= 1
            assert bitwise_equal(np.ascontiguousarray(a), orig)
        for g, e in zip(mp.linear_backward(*args, k, mode), expected):
            assert bitwise_equal(g, e)
        for g, e in zip(mp.linear_backward_compact(*args, k, mode), expected_c):
            assert bitwise_equal(g, e)
    # mixed layouts in one call
    for g, e in zip(mp.linear_backward(strided(dy), np.asfortranarray(x), transposed(W), k, mode), expected):
        assert bitwise_equal(g, e)


# ---- output buffers and accumulation -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_out_buffers_overwrite(mode, dtype, rng):
    B, n_in, n_out, k = 6, 19, 40, 3
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    expected = mp.linear_backward(dy, x, W, k, mode)
    dx_out = np.full((B, n_in), 7.0, dtype=dtype)
    dW_out = np.full((n_out, n_in), 7.0, dtype=dtype)
    db_out = np.full(n_out, 7.0, dtype=dtype)
    got = mp.linear_backward(dy, x, W, k, mode, dx_out=dx_out, dW_out=dW_out, db_out=db_out)
    for g, buf, e in zip(got, (dx_out, dW_out, db_out), expected):
        assert np.shares_memory(g, buf)
        assert bitwise_equal(buf, e)  # overwritten, untouched rows of dW zeroed
    # each buffer on its own
    for name, buf in (("dx_out", dx_out), ("dW_out", dW_out), ("db_out", db_out)):
        buf[...] = -3.0
        got = mp.linear_backward(dy, x, W, k, mode, **{name: buf})
        for g, e in zip(got, expected):
            assert bitwise_equal(g, e)
        assert any(np.shares_memory(g, buf) for g in got)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_grad", BIAS_GRADS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(1, 3, 4, 1), (5, 17, 33, 4), (16, 520, 300, 20)], ids=shape_id)
def test_accumulate(shape, mode, bias_grad, dtype, rng):
    B, n_in, n_out, k = shape
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    ref = Reference(dy, x, W, k, mode, bias_grad)
    dW0 = rng.standard_normal((n_out, n_in)).astype(dtype)
    db0 = rng.standard_normal(n_out).astype(dtype)
    dW_out, db_out = dW0.copy(), db0.copy()
    dx, dW, db = mp.linear_backward(
        dy, x, W, k, mode, bias_grad=bias_grad, dW_out=dW_out, db_out=db_out, accumulate=True
    )
    assert np.shares_memory(dW, dW_out) and np.shares_memory(db, db_out)
    untouched = np.setdiff1d(np.arange(n_out), ref.rows)
    # untouched rows are left exactly as they were
    assert bitwise_equal(dW_out[untouched], dW0[untouched])
    assert_close(dW_out, dW0.astype(np.float64) + ref.dW, ref.dW_scale + np.abs(dW0), dtype, "dW")
    assert_close(db_out, db0.astype(np.float64) + ref.db, ref.db_scale + np.abs(db0), dtype, "db")
    if bias_grad == "sparse":
        assert bitwise_equal(db_out[untouched], db0[untouched])
    assert_close(dx, ref.dx, ref.dx_scale, dtype, "dx")

    # accumulating twice adds twice
    mp.linear_backward(dy, x, W, k, mode, bias_grad=bias_grad, dW_out=dW_out, db_out=db_out, accumulate=True)
    assert bitwise_equal(dW_out[untouched], dW0[untouched])
    assert_close(dW_out, dW0.astype(np.float64) + 2 * ref.dW, 2 * ref.dW_scale + np.abs(dW0), dtype, "dW twice")
    assert_close(db_out, db0.astype(np.float64) + 2 * ref.db, 2 * ref.db_scale + np.abs(db0), dtype, "db twice")


@pytest.mark.parametrize("dtype", DTYPES)
def test_accumulate_into_zeros_equals_fresh(dtype, rng):
    dy, x, W = random_problem(rng, 9, 70, 80, dtype)
    for mode in MODES:
        fresh = mp.linear_backward(dy, x, W, 8, mode)
        dW_out = np.zeros((80, 70), dtype=dtype)
        db_out = np.zeros(80, dtype=dtype)
        got = mp.linear_backward(dy, x, W, 8, mode, dW_out=dW_out, db_out=db_out, accumulate=True)
        for g, e in zip(got, fresh):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
def test_accumulate_gradient_of_two_batches(dtype, rng):
    """Accumulating two half-batches gives the gradient of the whole batch (dense mode)."""
    dy, x, W = random_problem(rng, 10, 12, 15, dtype)
    dW_out = np.zeros((15, 12), dtype=dtype)
    db_out = np.zeros(15, dtype=dtype)
    for sl in (slice(0, 5), slice(5, 10)):
        mp.linear_backward(dy[sl], x[sl], W, None, "dense", dW_out=dW_out, db_out=db_out, accumulate=True)
    ref = Reference(dy, x, W, None, "dense")
    assert_close(dW_out, ref.dW, ref.dW_scale, dtype, "dW")
    assert_close(db_out, ref.db, ref.db_scale, dtype, "db")


# ---- CompactGradients --------------------------------------------------------------------


def test_compact_gradients_namedtuple(rng):
    dy, x, W = random_problem(rng, 4, 6, 20, np.float32)
    c = mp.linear_backward_compact(dy, x, W, 3)
    assert c._fields == ("dx", "rows", "dW_rows", "db")
    dx, rows, dW_rows, db = c
    assert dx is c.dx and rows is c.rows and dW_rows is c.dW_rows and db is c.db
    assert np.all(np.diff(rows) > 0)
    assert rows.size <= 4 * 3
    dense = c.dense_dW(20)
    assert dense.shape == (20, 6) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense[rows], dW_rows)
    assert not np.any(np.delete(dense, rows, axis=0))


@pytest.mark.parametrize("mode", ["per_example", "unified"])
def test_compact_row_counts(mode, rng):
    B, n_out, k = 6, 50, 4
    dy, x, W = random_problem(rng, B, 8, n_out, np.float64)
    c = mp.linear_backward_compact(dy, x, W, k, mode)
    if mode == "unified":
        assert c.rows.size == k
        np.testing.assert_array_equal(c.rows, reference_topk_unified(dy, k))
    else:
        assert k <= c.rows.size <= B * k
        np.testing.assert_array_equal(c.rows, np.unique(reference_topk_rows(dy, k)))


# ---- tile and block edges ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_tile_edges(mode, dtype, rng):
    """Batch sizes, k and n_in around multiples of 4, 8, 16 and the 512-column block."""
    for B in (1, 2, 3, 4, 5, 9):
        for n_in in (1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 511, 512, 513):
            for n_out, k in ((1, 1), (6, 2), (7, 3), (9, 4), (12, 5)):
                dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
                ref = Reference(dy, x, W, k, mode, "sparse")
                got = mp.linear_backward(dy, x, W, k, mode, bias_grad="sparse")
                check_backward(got, ref, dtype)
                c = mp.linear_backward_compact(dy, x, W, k, mode, bias_grad="sparse")
                check_compact(c, ref, dtype)
                np.testing.assert_array_equal(c.dense_dW(n_out), got[1])
                dW0 = rng.standard_normal((n_out, n_in)).astype(dtype)
                db0 = rng.standard_normal(n_out).astype(dtype)
                dW_out, db_out = dW0.copy(), db0.copy()
                mp.linear_backward(dy, x, W, k, mode, bias_grad="sparse", dW_out=dW_out, db_out=db_out, accumulate=True)
                untouched = np.setdiff1d(np.arange(n_out), ref.rows)
                assert bitwise_equal(dW_out[untouched], dW0[untouched])
                assert bitwise_equal(db_out[untouched], db0[untouched])
                assert_close(dW_out, dW0 + ref.dW, ref.dW_scale + np.abs(dW0), dtype, "dW acc")
                assert_close(db_out, db0 + ref.db, ref.db_scale + np.abs(db0), dtype, "db acc")


def test_public_api():
    for name in mp.__all__:
        assert hasattr(mp, name), name
    assert isinstance(mp.__version__, str) and mp.__version__
    for name in (
        "topk",
        "topk_rows",
        "topk_unified",
        "linear_backward",
        "linear_backward_compact",
        "CompactGradients",
        "set_num_threads",
        "get_num_threads",
        "thread_limits",
        "linear_forward",
        "linear_backward_into",
        "sgd_update",
        "adagrad_update",
        "adam_update",
        "isa_target",
    ):
        assert name in mp.__all__
    # What docs/python-api.md documents is the package's, never only _core's.
    for name in ("linear_forward", "linear_backward_into", "sgd_update", "adagrad_update", "adam_update"):
        assert getattr(mp, name) is getattr(mp._core, name)


def test_compact_backward_takes_memory_and_indices_like_the_core(rng):
    dy = rng.standard_normal((4, 9))
    x = rng.standard_normal((4, 5))
    W = rng.standard_normal((9, 5))
    m_pkg, m_core = np.full(9, 0.5), np.full(9, 0.5)
    got = mp.linear_backward_compact(dy, x, W, 3, memory=m_pkg, memory_decay=0.8)
    want = mp._core.linear_backward_compact(dy, x, W, 3, memory=m_core, memory_decay=0.8)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m_pkg, m_core)
    assert not np.array_equal(m_pkg, np.full(9, 0.5))  # the memory was written
    indices = np.sort(rng.permutation(9)[:2]).astype(np.int64)
    chosen = mp.linear_backward_compact(dy, x, W, mode="unified", indices=indices)
    np.testing.assert_array_equal(chosen.rows, indices)
