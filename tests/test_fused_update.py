"""Fused updates: the optimizers computing a meProp layer's dW rows while updating them.

The fused path must equal the unfused one bit for bit (the same rows, summed
in the same order, handed to the same per-row update), for every optimizer,
mode, dtype and thread count, and reject a gradient that does not fit.
"""

from __future__ import annotations

import numpy as np
import pytest

import meprop_native as mp
from meprop_native import _core
from meprop_native.nn import Linear, ReLU, Sequential, softmax_cross_entropy
from meprop_native.optim import SGD, AdaGrad, Adam

DTYPES = [np.float32, np.float64]
# (batch, n_in, n_out, k, mode): B=1, k=1, k=n, a width past one 16 KB chunk
# row (3000 float64 columns: one row a chunk), and widths off the vector size.
CASES = [
    (1, 7, 5, 1, "per_example"),
    (10, 333, 50, 7, "per_example"),
    (10, 333, 50, 50, "per_example"),
    (4, 3000, 20, 3, "per_example"),
    (10, 333, 50, 9, "unified"),
    (6, 129, 17, None, "dense"),
]


def _factors(rng, batch, n_in, n_out, dtype, ties=False):
    x = rng.standard_normal((batch, n_in)).astype(dtype)
    W = rng.standard_normal((n_out, n_in)).astype(dtype)
    dy = rng.standard_normal((batch, n_out)).astype(dtype)
    if ties:  # equal magnitudes: the selection's tie rule decides, the same way twice
        dy = np.round(dy).astype(dtype)
    return x, W, dy


def _update(name, W, rows, grad, state, step=3):
    S, M, d1, d2 = state
    if name == "sgd":
        _core.sgd_update(W, rows, grad, 0.1, 0.5)
    elif name == "adagrad":
        _core.adagrad_update(W, rows, grad, S, 0.1, 1e-6, 0.0)
    else:
        lazy = name == "adam lazy"
        decay = (d1, d2) if name != "adam in place" else (None, None)
        _core.adam_update(W, rows, grad, M, S, step, 1e-2, 0.9, 0.999, 1e-8, 0.0, lazy, *decay)


def _state(rng, W):
    S = np.abs(rng.standard_normal(W.shape)).astype(W.dtype)
    M = (0.1 * rng.standard_normal(W.shape)).astype(W.dtype)
    factors = rng.uniform(0.3, 1.0, W.shape[0])
    return [S, M, factors, factors.copy()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}-{c[1]}x{c[2]}-k{c[3]}-{c[4]}")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam lazy", "adam", "adam in place"])
def test_fused_update_is_bitwise_the_unfused_one(dtype, case, threads, name):
    batch, n_in, n_out, k, mode = case
    rng = np.random.default_rng(hash((batch, n_in, k, mode)) % 2**32)
    x, W, dy = _factors(rng, batch, n_in, n_out, dtype, ties=batch == 10)
    state = _state(rng, W)
    with mp.thread_limits(threads):
        _, rows, dW_rows, _ = _core.linear_backward_compact(dy, x, W, k, mode, False)
        _, fused_rows, deferred, _ = _core.linear_backward_compact(dy, x, W, k, mode, False, True)
        assert isinstance(deferred, _core.WeightGradient)
        np.testing.assert_array_equal(fused_rows, rows)
        W_unfused, W_fused = W.copy(), W.copy()
        state_unfused, state_fused = [a.copy() for a in state], [a.copy() for a in state]
        _update(name, W_unfused, rows, dW_rows, state_unfused)
        _update(name, W_fused, fused_rows, deferred, state_fused)
    np.testing.assert_array_equal(W_fused, W_unfused)
    for got, want in zip(state_fused, state_unfused):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adagrad_matches_an_independent_dense_computation(dtype):
    rng = np.random.default_rng(5)
    x, W, dy = _factors(rng, 8, 40, 30, dtype)
    k = 4
    S = np.full(W.shape, 0.5, dtype)
    want_W, want_S = W.astype(np.float64), S.astype(np.float64)
    kept = np.zeros_like(dy, dtype=np.float64)
    for b in range(len(dy)):  # the k largest |dy| per example, by a sort
        top = np.argsort(-np.abs(dy[b]), kind="stable")[:k]
        kept[b, top] = dy[b, top]
    g = kept.T @ x.astype(np.float64)
    touched = np.flatnonzero(np.abs(kept).sum(axis=0) > 0)
    want_S[touched] += g[touched] ** 2
    want_W[touched] -= 0.1 * g[touched] / (np.sqrt(want_S[touched]) + 1e-6)
    _, rows, deferred, _ = _core.linear_backward_compact(dy, x, W, k, "per_example", False, True)
    np.testing.assert_array_equal(rows, touched)
    _core.adagrad_update(W, rows, deferred, S, 0.1, 1e-6, 0.0)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(W, want_W, rtol=tol, atol=tol)
    np.testing.assert_allclose(S, want_S, rtol=tol, atol=tol)


def test_weight_gradient_materializes_the_rows_the_unfused_backward_returns():
    rng = np.random.default_rng(1)
    x, W, dy = _factors(rng, 5, 23, 11, np.float32)
    memory_a, memory_b = np.zeros(11, np.float32), np.zeros(11, np.float32)
    _, rows, dW_rows, _ = _core.linear_backward_compact(dy, x, W, 3, "per_example", False, memory=memory_a)
    _, deferred_rows, deferred, _ = _core.linear_backward_compact(
        dy, x, W, 3, "per_example", False, True, memory=memory_b
    )
    np.testing.assert_array_equal(memory_a, memory_b)  # error feedback runs in the backward either way
    np.testing.assert_array_equal(deferred_rows, rows)
    np.testing.assert_array_equal(deferred.rows, rows)
    assert deferred.shape == dW_rows.shape and deferred.dtype == np.float32
    np.testing.assert_array_equal(deferred.materialize(), dW_rows)
    np.testing.assert_array_equal(np.asarray(deferred), dW_rows)
    np.testing.assert_array_equal(np.asarray(deferred, dtype=np.float64), dW_rows.astype(np.float64))
    assert not deferred.rows.flags.writeable
    assert "WeightGradient(rows=" in repr(deferred)


def test_a_deferred_gradient_that_does_not_fit_is_refused():
    rng = np.random.default_rng(2)
    x, W, dy = _factors(rng, 4, 9, 6, np.float32)
    _, rows, deferred, _ = _core.linear_backward_compact(dy, x, W, 2, "per_example", False, True)
    S = np.zeros_like(W)
    with pytest.raises(ValueError, match="own rows"):
        _core.adagrad_update(W, rows[:-1], deferred, S, 0.1)
    other = rows.copy()
    other[0] = (other[0] + 1) % 6  # the same count, another row
    with pytest.raises(ValueError, match="own rows"):
        _core.adagrad_update(W, other, deferred, S, 0.1)
    with pytest.raises(TypeError, match="dtype"):
        _core.sgd_update(W.astype(np.float64), rows, deferred, 0.1)
    with pytest.raises(ValueError, match="columns"):
        _core.sgd_update(np.zeros((6, 8), np.float32), rows, deferred, 0.1)
    with pytest.raises(ValueError, match="outside"):
        _core.sgd_update(np.zeros((2, 9), np.float32), rows, deferred, 0.1)
    with pytest.raises(ValueError, match="overlaps"):
        _core.sgd_update(x, rows, deferred, 0.1)  # the parameter would be the gradient's own x


def _model(fused, seed=0):
    rng = np.random.default_rng(seed)
    layers = [
        Linear(20, 16, 3, rng=rng, selection={"memory_decay": 0.8}, fused_update=fused),
        ReLU(),
        Linear(16, 12, 4, mode="unified", rng=rng, fused_update=fused),
        ReLU(),
        Linear(12, 5, None, rng=rng, fused_update=fused),
    ]
    return Sequential(layers)


@pytest.mark.parametrize("make", [lambda p: SGD(p, lr=0.1), lambda p: AdaGrad(p, lr=0.1), lambda p: Adam(p, lr=0.01)])
def test_training_with_fused_updates_is_bitwise_training_without(make):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((60, 20)).astype(np.float32)
    labels = rng.integers(0, 5, 60)
    weights = []
    for fused in (False, True):
        model = _model(fused)
        opt = make(model.parameters())
        for step in range(6):
            x, y = data[step * 10 : (step + 1) * 10], labels[step * 10 : (step + 1) * 10]
            _, grad = softmax_cross_entropy(model.forward(x), y)
            model.backward(grad)
            if fused:
                assert isinstance(model.layers[0].weight.update_grad, _core.WeightGradient)
            opt.step()
        weights.append([p.value.copy() for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_reading_a_deferred_gradient_computes_it_once():
    model = _model(True)
    rng = np.random.default_rng(4)
    _, grad = softmax_cross_entropy(model.forward(rng.standard_normal((3, 20)).astype(np.float32)), np.arange(3))
    model.backward(grad)
    weight = model.layers[0].weight
    assert isinstance(weight.update_grad, _core.WeightGradient)
    rows = weight.grad
    assert isinstance(rows, np.ndarray) and rows.shape == (len(weight.grad_rows), 20)
    assert weight.update_grad is rows  # computed, and kept
    assert weight.dense_grad().shape == (16, 20)
