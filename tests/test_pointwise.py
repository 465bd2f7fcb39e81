"""The native per-element layers: ReLU and the softmax cross-entropy, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from meprop_native import _core
from meprop_native.nn import ReLU, softmax_cross_entropy

DTYPES = [np.float32, np.float64]


def _reference_loss(logits, labels, divisor=None):
    """The cross-entropy in float64, by the textbook formula."""
    z = logits.astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(z))
    grad = np.exp(log_softmax)
    grad[rows, labels] -= 1
    return -log_softmax[rows, labels].mean(), grad / (len(z) if divisor is None else divisor)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (10, 10), (7, 333), (1000, 3)])
def test_loss_and_gradient_match_the_reference(dtype, shape):
    rng = np.random.default_rng(shape[1])
    logits = (4 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    loss, grad = softmax_cross_entropy(logits, labels)
    want_loss, want_grad = _reference_loss(logits, labels)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert grad.dtype == dtype and grad.shape == shape
    assert loss == pytest.approx(want_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)


def test_shard_divides_by_the_whole_batch_and_labels_of_any_int_type():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 6)).astype(np.float32)
    labels = np.array([0, 5, 2, 2], dtype=np.int32)
    loss, grad = softmax_cross_entropy(logits, labels, batch_rows=10)
    want_loss, want_grad = _reference_loss(logits, labels.astype(np.int64), divisor=10)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)


def test_large_logits_do_not_overflow_and_nan_stays_in_its_row():
    logits = np.array([[1e4, 0.0, -1e4], [np.nan, 1.0, 2.0]], dtype=np.float32)
    loss, grad = _core.softmax_cross_entropy(logits[:1], np.array([1]))
    assert loss == pytest.approx(1e4) and np.isfinite(grad).all()
    loss, grad = _core.softmax_cross_entropy(logits, np.array([1, 2]))
    assert np.isnan(loss) and np.isnan(grad[1]).all() and np.isfinite(grad[0]).all()


@pytest.mark.parametrize(
    "logits, labels, error, match",
    [
        (np.zeros((2, 3), np.float32), np.array([0, 3]), ValueError, r"label 3 of row 1 is outside \[0, 3\)"),
        (np.zeros((2, 3), np.float32), np.array([-1, 0]), ValueError, "label -1 of row 0"),
        (np.zeros((0, 3), np.float32), np.zeros(0, np.int64), ValueError, "empty batch"),
        (np.zeros((2, 3), np.float32), np.zeros(3, np.int64), ValueError, r"labels \(B,\)"),
        (np.zeros(3, np.float32), np.zeros(3, np.int64), ValueError, r"logits \(B, C\)"),
        (np.zeros((2, 3), np.float16), np.zeros(2, np.int64), TypeError, "float16"),
        (np.zeros((2, 3), np.float32), np.zeros(2), TypeError, "integer"),
    ],
)
def test_bad_loss_input_is_named(logits, labels, error, match):
    with pytest.raises(error, match=match):
        softmax_cross_entropy(logits, labels)


def test_loss_takes_non_contiguous_logits():
    rng = np.random.default_rng(1)
    wide = rng.standard_normal((5, 12)).astype(np.float32)
    labels = rng.integers(0, 6, 5)
    loss, grad = softmax_cross_entropy(wide[:, ::2], labels)
    want_loss, want_grad = softmax_cross_entropy(np.ascontiguousarray(wide[:, ::2]), labels)
    assert loss == want_loss
    np.testing.assert_array_equal(grad, want_grad)


SPECIAL = [0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40]


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_forward_is_numpy_maximum_bit_for_bit(dtype):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(1000), SPECIAL]).astype(dtype).reshape(1, -1)
    got = _core.relu_forward(x)
    want = np.maximum(x, 0)
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got).any()  # -0.0 comes out as +0.0, as NumPy gives here
    y = x.copy()
    assert _core.relu_forward(y, out=y) is y  # in place
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_is_the_numpy_product_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    y = np.maximum(np.concatenate([rng.standard_normal(997), SPECIAL]), 0).astype(dtype)
    dy = np.concatenate([rng.standard_normal(997), SPECIAL[::-1]]).astype(dtype)
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN in both
        want = dy * (y > 0)
    got = _core.relu_backward(dy, y)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # -0.0 where NumPy has it


def test_relu_layer_native_and_numpy_paths_agree():
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64, np.float16):
        x = rng.standard_normal((3, 4, 5)).astype(dtype)
        layer = ReLU()
        y = layer.forward(x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        dy = rng.standard_normal(x.shape).astype(dtype)
        np.testing.assert_array_equal(layer.backward(dy), dy * (x > 0))
        assert layer.backward(dy, input_grad=False) is None


def test_relu_rejects_mismatched_input():
    with pytest.raises(ValueError, match="shape"):
        _core.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        _core.relu_backward(np.zeros(3, np.float64), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="shape"):
        _core.relu_forward(np.zeros(3, np.float32), out=np.zeros(4, np.float32))
