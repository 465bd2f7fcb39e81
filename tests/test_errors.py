"""Bad input raises ValueError or TypeError with a useful message; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bitwise_equal, random_problem

import meprop_native as mp

BAD_DTYPES = [np.int8, np.int32, np.int64, np.uint32, np.float16, np.complex64, np.complex128, np.bool_]


def good(B=3, n_in=4, n_out=5, dtype=np.float64):
    rng = np.random.default_rng(0)
    return random_problem(rng, B, n_in, n_out, dtype)


# ---- top-k -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [mp.topk, mp.topk_rows, mp.topk_unified])
@pytest.mark.parametrize("k", [0, -1, 6, 7, 1000, -(2**40)])
def test_topk_k_out_of_range(fn, k):
    a = np.ones(5) if fn is mp.topk else np.ones((2, 5))
    with pytest.raises(ValueError, match="k"):
        fn(a, k)


@pytest.mark.parametrize("fn", [mp.topk, mp.topk_rows, mp.topk_unified])
@pytest.mark.parametrize("k", [2.5, "2", None, [2], 2**64])
def test_topk_k_wrong_type(fn, k):
    a = np.ones(5) if fn is mp.topk else np.ones((2, 5))
    with pytest.raises((TypeError, ValueError)):
        fn(a, k)


def test_topk_accepts_integer_like_k():
    a = np.array([1.0, -3.0, 2.0])
    assert mp.topk(a, np.int64(2)).tolist() == [1, 2]
    assert mp.topk(a, np.int32(1)).tolist() == [1]
    assert mp.topk_rows(a[None], np.uint8(2)).tolist() == [[1, 2]]


@pytest.mark.parametrize("fn", [mp.topk, mp.topk_rows, mp.topk_unified])
@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_topk_bad_dtype(fn, dtype):
    a = np.ones(5, dtype=dtype) if fn is mp.topk else np.ones((2, 5), dtype=dtype)
    with pytest.raises(TypeError, match="dtype"):
        fn(a, 2)


@pytest.mark.parametrize("fn", [mp.topk, mp.topk_rows, mp.topk_unified])
@pytest.mark.parametrize("a", [None, "abc", object(), [[1.0], [2.0, 3.0]], {"a": 1.0}])
def test_topk_not_an_array(fn, a):
    with pytest.raises((TypeError, ValueError)):
        fn(a, 1)


def test_topk_object_and_string_arrays():
    for a in (np.array([1.0, 2.0], dtype=object), np.array(["1", "2"]), np.array([b"1", b"2"])):
        with pytest.raises(TypeError):
            mp.topk(a, 1)


def test_topk_wrong_ndim():
    with pytest.raises(ValueError, match="1-D"):
        mp.topk(np.ones((2, 3)), 1)
    with pytest.raises(ValueError, match="1-D"):
        mp.topk(np.float64(3.0), 1)
    with pytest.raises(ValueError, match="1-D"):
        mp.topk(np.ones((1, 1, 3)), 1)
    for fn in (mp.topk_rows, mp.topk_unified):
        with pytest.raises(ValueError, match="2-D"):
            fn(np.ones(3), 1)
        with pytest.raises(ValueError, match="2-D"):
            fn(np.ones((2, 2, 3)), 1)
        with pytest.raises(ValueError, match="2-D"):
            fn(np.float64(1.0), 1)


def test_topk_empty():
    with pytest.raises(ValueError):
        mp.topk(np.zeros(0), 1)
    with pytest.raises(ValueError):
        mp.topk([], 1)
    with pytest.raises(ValueError):
        mp.topk_rows(np.zeros((3, 0)), 1)
    with pytest.raises(ValueError):
        mp.topk_unified(np.zeros((0, 4)), 1)
    with pytest.raises(ValueError):
        mp.topk_unified(np.zeros((3, 0)), 1)


@pytest.mark.parametrize("fn", [mp.topk, mp.topk_rows, mp.topk_unified])
@pytest.mark.parametrize("method", ["", "Auto", "HEAP", "quickselect", "radix ", "auto\0"])
def test_topk_bad_method(fn, method):
    a = np.ones(5) if fn is mp.topk else np.ones((2, 5))
    with pytest.raises(ValueError, match="method"):
        fn(a, 2, method=method)


def test_topk_method_wrong_type():
    with pytest.raises(TypeError):
        mp.topk(np.ones(5), 2, method=None)
    with pytest.raises(TypeError):
        mp.topk(np.ones(5), 2, method=1)


# ---- linear_backward: arguments ------------------------------------------------------------

BACKWARDS = [mp.linear_backward, mp.linear_backward_compact]


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["per_example", "unified"])
@pytest.mark.parametrize("k", [0, -1, 6, 100])
def test_backward_k_out_of_range(fn, mode, k):
    dy, x, W = good()
    with pytest.raises(ValueError, match="k"):
        fn(dy, x, W, k, mode)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["per_example", "unified"])
def test_backward_k_required(fn, mode):
    dy, x, W = good()
    with pytest.raises(ValueError, match="k"):
        fn(dy, x, W, None, mode)
    with pytest.raises(ValueError, match="k"):
        fn(dy, x, W, mode=mode)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_k_wrong_type(fn):
    dy, x, W = good()
    for k in (2.0, "2", [2]):
        with pytest.raises(TypeError):
            fn(dy, x, W, k)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["", "Per_example", "sparse", "topk", "dense "])
def test_backward_bad_mode(fn, mode):
    dy, x, W = good()
    with pytest.raises(ValueError, match="mode"):
        fn(dy, x, W, 2, mode)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("bias_grad", ["", "none", "Dense", "masked"])
def test_backward_bad_bias_grad(fn, bias_grad):
    dy, x, W = good()
    with pytest.raises(ValueError, match="bias"):
        fn(dy, x, W, 2, bias_grad=bias_grad)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("method", ["", "Heap", "sort"])
def test_backward_bad_method(fn, method):
    dy, x, W = good()
    with pytest.raises(ValueError, match="method"):
        fn(dy, x, W, 2, method=method)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_bad_mode_even_in_dense_like_calls(fn):
    dy, x, W = good()
    with pytest.raises(ValueError):
        fn(dy, x, W, None, "DENSE")


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_keyword_only(fn):
    dy, x, W = good()
    with pytest.raises(TypeError):
        fn(dy, x, W, 2, "per_example", "dense")


# ---- linear_backward: shapes -----------------------------------------------------------------


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
def test_backward_shape_mismatch(fn, mode):
    dy, x, W = good(B=3, n_in=4, n_out=5)
    cases = [
        (dy, x[:2], W),  # batch mismatch
        (dy[:2], x, W),
        (dy, x, W[:4]),  # W rows != n_out
        (dy, x, W[:, :3]),  # W cols != n_in
        (dy, x, W.T.copy()),  # transposed W
        (dy[:, :4], x, W),
    ]
    for args in cases:
        with pytest.raises(ValueError):
            fn(*args, 2, mode)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_wrong_ndim(fn):
    dy, x, W = good()
    cases = [
        (dy[0], x, W),
        (dy, x[0], W),
        (dy, x, W[0]),
        (dy[None], x, W),
        (dy, x[None], W),
        (dy, x, W[None]),
        (np.float64(1.0), x, W),
    ]
    for args in cases:
        with pytest.raises(ValueError, match="D"):
            fn(*args, 2)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
def test_backward_empty_batch(fn, mode):
    dy, x, W = good()
    with pytest.raises(ValueError, match=r"empty|rows"):
        fn(dy[:0], x[:0], W, 2, mode)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
def test_backward_degenerate_shapes_do_not_crash(fn, mode):
    """n_in = 0 or n_out = 0: a clean ValueError or a correctly shaped result."""
    dy, x, W = good(B=2, n_in=3, n_out=4)
    try:
        out = fn(dy, x[:, :0], W[:, :0], 2, mode)  # n_in = 0
    except ValueError:
        pass
    else:
        assert out[0].shape == (2, 0)
        assert out[-1].shape == (4,)
    if mode == "dense":
        try:
            out = fn(dy[:, :0], x, W[:0], None, mode)  # n_out = 0
        except ValueError:
            pass
        else:
            assert out[0].shape == (2, 3)
            assert not np.any(out[0])
    else:
        with pytest.raises(ValueError):
            fn(dy[:, :0], x, W[:0], 1, mode)


# ---- linear_backward: dtypes -----------------------------------------------------------------


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("dtype", BAD_DTYPES)
@pytest.mark.parametrize("which", [0, 1, 2])
def test_backward_bad_dtype(fn, dtype, which):
    args = list(good())
    args[which] = args[which].astype(dtype)
    with pytest.raises(TypeError, match="dtype"):
        fn(*args, 2)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_all_bad_dtype(fn):
    args = [a.astype(np.int32) for a in good()]
    with pytest.raises(TypeError):
        fn(*args, 2)


@pytest.mark.parametrize("fn", BACKWARDS)
@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_mixed_dtypes(fn, which, dtype):
    args = list(good(dtype=dtype))
    other = np.float64 if dtype == np.float32 else np.float32
    args[which] = args[which].astype(other)
    with pytest.raises(TypeError, match="dtype"):
        fn(*args, 2)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_list_with_float32_is_mixed(fn):
    # a list becomes float64, which does not mix with float32 arrays
    dy, x, W = good(dtype=np.float32)
    with pytest.raises(TypeError):
        fn(dy.tolist(), x, W, 2)


@pytest.mark.parametrize("fn", BACKWARDS)
def test_backward_not_arrays(fn):
    dy, x, W = good()
    for bad in (None, "abc", object(), [[1.0], [2.0, 3.0]]):
        with pytest.raises((TypeError, ValueError)):
            fn(bad, x, W, 2)
        with pytest.raises((TypeError, ValueError)):
            fn(dy, bad, W, 2)
        with pytest.raises((TypeError, ValueError)):
            fn(dy, x, bad, 2)


# ---- linear_backward: output buffers ----------------------------------------------------------


def out_buffers(B=3, n_in=4, n_out=5, dtype=np.float64):
    return {
        "dx_out": np.zeros((B, n_in), dtype=dtype),
        "dW_out": np.zeros((n_out, n_in), dtype=dtype),
        "db_out": np.zeros(n_out, dtype=dtype),
    }


@pytest.mark.parametrize("name", ["dx_out", "dW_out", "db_out"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_wrong_dtype(name, dtype):
    dy, x, W = good(dtype=dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    for bad_dtype in (other, np.int64, np.float16, np.complex128):
        bufs = out_buffers(dtype=dtype)
        bufs[name] = bufs[name].astype(bad_dtype)
        with pytest.raises(TypeError, match=name):
            mp.linear_backward(dy, x, W, 2, **bufs)


@pytest.mark.parametrize("name", ["dx_out", "dW_out", "db_out"])
def test_out_wrong_shape(name):
    dy, x, W = good()
    bufs = out_buffers()
    shape = bufs[name].shape
    bad_shapes = [
        shape[::-1] if len(shape) == 2 and shape[0] != shape[1] else (shape[0] + 1,),
        tuple(s + 1 for s in shape),
        (*shape, 1),
        (int(np.prod(shape)),),
        (),
    ]
    for bad in bad_shapes:
        if bad == shape:
            continue
        b = dict(bufs)
        b[name] = np.zeros(bad)
        with pytest.raises(ValueError, match=name):
            mp.linear_backward(dy, x, W, 2, **b)


@pytest.mark.parametrize("name", ["dx_out", "dW_out"])
def test_out_not_c_contiguous(name):
    dy, x, W = good()
    bufs = out_buffers()
    shape = bufs[name].shape
    for bad in (
        np.zeros(shape, order="F"),
        np.zeros((shape[0], 2 * shape[1]))[:, ::2],
        np.zeros((2 * shape[0], shape[1]))[::2],
        np.zeros(shape)[::-1],
    ):
        b = dict(bufs)
        b[name] = bad
        with pytest.raises(ValueError, match=name):
            mp.linear_backward(dy, x, W, 2, **b)
        assert not np.any(bad)


def test_out_db_not_contiguous():
    dy, x, W = good()
    bufs = out_buffers()
    for bad in (np.zeros(10)[::2], np.zeros(5)[::-1]):
        b = dict(bufs)
        b["db_out"] = bad
        with pytest.raises(ValueError, match="db_out"):
            mp.linear_backward(dy, x, W, 2, **b)


@pytest.mark.parametrize("name", ["dx_out", "dW_out", "db_out"])
def test_out_read_only(name):
    dy, x, W = good()
    bufs = out_buffers()
    bufs[name].flags.writeable = False
    with pytest.raises(ValueError, match=name):
        mp.linear_backward(dy, x, W, 2, **bufs)
    assert not np.any(bufs[name])


@pytest.mark.parametrize("name", ["dx_out", "dW_out", "db_out"])
def test_out_not_an_array(name):
    dy, x, W = good()
    bufs = out_buffers()
    bufs[name] = bufs[name].tolist()
    with pytest.raises((TypeError, ValueError)):
        mp.linear_backward(dy, x, W, 2, **bufs)


def test_out_overlaps_inputs():
    B, n = 4, 4  # square everything so that every buffer fits every input
    dy, x, W = good(B=B, n_in=n, n_out=n)
    ins = {"dy": dy, "x": x, "W": W}
    for name, _shape in (("dx_out", (B, n)), ("dW_out", (n, n))):
        for arr in ins.values():
            with pytest.raises(ValueError, match="overlap"):
                mp.linear_backward(dy, x, W, 2, **{name: arr})
    for arr in ins.values():
        with pytest.raises(ValueError, match="overlap"):
            mp.linear_backward(dy, x, W, 2, db_out=arr[1])
    # inputs unchanged
    ref = good(B=B, n_in=n, n_out=n)
    for a, b in zip((dy, x, W), ref):
        assert bitwise_equal(a, b)


def test_out_partially_overlaps_input():
    dy0, x0, W0 = good(B=4, n_in=3, n_out=5)
    # x lives in rows 0..3 of a buffer, dx_out in rows 3..6: one row shared
    big = np.zeros((7, 3))
    big[:4] = x0
    x = big[:4]
    with pytest.raises(ValueError, match="overlap"):
        mp.linear_backward(dy0, x, W0, 2, dx_out=big[3:7])
    # db_out sharing the last element of W
    flat = np.zeros(W0.size + 5)
    flat[: W0.size] = W0.ravel()
    W = flat[: W0.size].reshape(W0.shape)
    with pytest.raises(ValueError, match="overlap"):
        mp.linear_backward(dy0, x0, W, 2, db_out=flat[W0.size - 1 : W0.size + 4])
    # adjacent but not overlapping is fine
    got = mp.linear_backward(dy0, x, W0, 2, dx_out=np.zeros((4, 3)))
    np.testing.assert_array_equal(got[0], mp.linear_backward(dy0, x0, W0, 2)[0])
    _, _, db = mp.linear_backward(dy0, x0, W, 2, db_out=flat[W0.size :])
    np.testing.assert_array_equal(flat[: W0.size], W0.ravel())
    np.testing.assert_array_equal(db, dy0.sum(0))


def test_out_buffers_overlap_each_other():
    dy, x, W = good(B=5, n_in=5, n_out=5)
    buf = np.zeros((5, 5))
    with pytest.raises(ValueError, match="overlap"):
        mp.linear_backward(dy, x, W, 2, dx_out=buf, dW_out=buf)
    with pytest.raises(ValueError, match="overlap"):
        mp.linear_backward(dy, x, W, 2, dW_out=buf, db_out=buf[2])
    with pytest.raises(ValueError, match="overlap"):
        mp.linear_backward(dy, x, W, 2, dx_out=buf, db_out=buf[4])


@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
def test_accumulate_needs_buffers(mode):
    dy, x, W = good()
    bufs = out_buffers()
    for given in (
        {},
        {"dW_out": bufs["dW_out"]},
        {"db_out": bufs["db_out"]},
        {"dx_out": bufs["dx_out"]},
        {"dx_out": bufs["dx_out"], "db_out": bufs["db_out"]},
    ):
        with pytest.raises(ValueError, match="accumulate"):
            mp.linear_backward(dy, x, W, 2, mode, accumulate=True, **given)
    assert not any(np.any(b) for b in bufs.values())


def test_errors_leave_buffers_untouched():
    dy, x, W = good()
    dW_out = np.full((5, 4), 3.0)
    db_out = np.full(5, 3.0)
    with pytest.raises(TypeError):
        mp.linear_backward(dy, x, W, 2, dW_out=dW_out, db_out=db_out.astype(np.float32), accumulate=True)
    with pytest.raises(ValueError):
        mp.linear_backward(dy, x, W, 99, dW_out=dW_out, db_out=db_out, accumulate=True)
    np.testing.assert_array_equal(dW_out, 3.0)
    np.testing.assert_array_equal(db_out, 3.0)


def test_library_still_works_after_errors():
    dy, x, W = good()
    for _ in range(3):
        with pytest.raises(ValueError):
            mp.linear_backward(dy, x, W, 0)
        with pytest.raises(TypeError):
            mp.linear_backward(dy.astype(np.float32), x, W, 1)
        with pytest.raises(ValueError):
            mp.topk(np.ones(3), 4)
    dx, dW, db = mp.linear_backward(dy, x, W, 2)
    assert dx.shape == (3, 4) and dW.shape == (5, 4) and db.shape == (5,)


# ---- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, -100])
def test_set_num_threads_invalid(n):
    before = mp.get_num_threads()
    with pytest.raises(ValueError):
        mp.set_num_threads(n)
    assert mp.get_num_threads() == before


def test_set_num_threads_wrong_type():
    with pytest.raises((TypeError, ValueError)):
        mp.set_num_threads("two")
    with pytest.raises((TypeError, ValueError)):
        mp.set_num_threads(None)
