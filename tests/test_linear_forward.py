"""The native forward kernel y = x W^T + b against NumPy in float64."""

from __future__ import annotations

import numpy as np
import pytest

import meprop_native
from meprop_native import _core
from meprop_native.nn import Linear
from meprop_native.nn.linear import NATIVE_FORWARD_MAX_BATCH, NATIVE_FORWARD_MIN_BATCH

SHAPES = [(1, 1, 1), (2, 7, 5), (3, 16, 2), (4, 31, 3), (10, 784, 500), (5, 17, 9), (33, 100, 17), (70, 9, 33)]


def reference(x, W, b):
    y = x.astype(np.float64) @ W.T.astype(np.float64)
    return y if b is None else y + b.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize(("B", "n_in", "n_out"), SHAPES)
def test_matches_float64_reference(B, n_in, n_out, with_bias, dtype):
    rng = np.random.default_rng(B * 100 + n_in + n_out)
    x = rng.standard_normal((B, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if with_bias else None
    y = _core.linear_forward(x, W, b)
    assert y.dtype == dtype and y.shape == (B, n_out)
    scale = np.abs(x).astype(np.float64) @ np.abs(W.T).astype(np.float64) + 1.0
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert np.all(np.abs(y - reference(x, W, b)) <= tol * scale)


def test_non_contiguous_inputs_and_out_buffer():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 30))[::2, ::2]  # (10, 15), strided
    W = np.asfortranarray(rng.standard_normal((6, 15)))
    b = rng.standard_normal(12)[::2]
    out = np.empty((10, 6))
    y = _core.linear_forward(x, W, b, out=out)
    assert y is out
    np.testing.assert_allclose(out, reference(x, W, b), rtol=1e-12, atol=1e-12)


def test_nan_and_inf_propagate():
    x = np.array([[1.0, np.nan], [np.inf, 0.5]], dtype=np.float32)
    W = np.ones((3, 2), dtype=np.float32)
    y = _core.linear_forward(x, W)
    assert np.isnan(y[0]).all() and np.isposinf(y[1]).all()


def test_same_bits_for_any_thread_count():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 300)).astype(np.float32)  # above the parallel threshold
    W = rng.standard_normal((200, 300)).astype(np.float32)
    before = meprop_native.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            meprop_native.set_num_threads(threads)
            results.append(_core.linear_forward(x, W))
    finally:
        meprop_native.set_num_threads(before)
    assert all(np.array_equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"x": np.zeros((2, 3), np.float32), "W": np.zeros((4, 2), np.float32)},
            ValueError,
            "x has 3 columns but W has 2",
        ),
        ({"x": np.zeros((2, 3), np.float32), "W": np.zeros((4, 3))}, TypeError, "same dtype"),
        ({"x": np.zeros((2, 3), np.int32), "W": np.zeros((4, 3), np.int32)}, TypeError, "float32 or float64"),
        ({"x": np.zeros(3), "W": np.zeros((4, 3))}, ValueError, "x must be 2-D"),
        ({"x": np.zeros((2, 3)), "W": np.zeros((4, 3)), "b": np.zeros(3)}, ValueError, "b must have 4 entries"),
        (
            {"x": np.zeros((2, 3)), "W": np.zeros((4, 3)), "out": np.zeros((2, 3))},
            ValueError,
            r"out must have shape \(2, 4\)",
        ),
        (
            {"x": np.zeros((2, 3)), "W": np.zeros((4, 3)), "out": np.zeros((2, 4), np.float32)},
            TypeError,
            "out has dtype",
        ),
    ],
)
def test_bad_input_is_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        _core.linear_forward(**kwargs)


def test_out_must_not_overlap_the_input():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="overlap"):
        _core.linear_forward(x, np.zeros((4, 4)), out=x)


@pytest.mark.parametrize("batch", [1, 2, 10, 12, 13, 40, 300])
def test_layer_forward_is_the_same_function_on_both_paths(batch):
    # The layer uses BLAS for one example (and, without AVX-512, beyond 12)
    # and the kernel otherwise: both must give x W^T + b.
    rng = np.random.default_rng(batch)
    layer = Linear(50, 20, k=5, rng=rng)
    x = rng.standard_normal((batch, 50)).astype(np.float32)
    expected = reference(x, layer.weight.value, layer.bias.value)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-5, atol=1e-5)
    assert NATIVE_FORWARD_MIN_BATCH == 2
    assert (None if _core.linear_forward_uses_avx512() else 12) == NATIVE_FORWARD_MAX_BATCH


def test_layer_rejects_input_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 50\)"):
        Linear(50, 20).forward(np.zeros((3, 49), np.float32))
