"""Tests of meprop_native.optim: SGD, AdaGrad and Adam over row-form gradients.

Single steps are checked against values computed from the formulas written
out here (float64); several steps against a NumPy re-implementation; state
dicts against identical continuation; bad arguments against clear errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ADAGRAD_EPS, ADAM_EPS, B1, B2, NumpyOptimizer

from meprop_native import _core
from meprop_native.nn import Parameter
from meprop_native.optim import OPTIMIZERS, SGD, AdaGrad, Adam

RTOL = {"rtol": 1e-13, "atol": 1e-15}


def weight(values) -> Parameter:
    return Parameter("weight", np.array(values, dtype=np.float64))


def give(p: Parameter, rows, grad) -> None:
    p.set_grad(np.array(rows, dtype=np.int64), np.array(grad, dtype=p.value.dtype).reshape(len(rows), -1))


# ---- one step, by hand ----------------------------------------------------------


def test_sgd_one_step_by_hand():
    p = weight([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    give(p, [0, 2], [[0.5, -1.0], [2.0, 0.25]])
    SGD([p], lr=0.1).step()
    # param[rows] -= lr * grad; row 1 got no gradient and stays
    np.testing.assert_allclose(p.value, [[1 - 0.05, 2 + 0.1], [3.0, 4.0], [5 - 0.2, 6 - 0.025]], **RTOL)


def test_adagrad_one_and_two_steps_by_hand():
    p0 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    p = weight(p0.copy())
    opt = AdaGrad([p], lr=0.1)
    assert opt.eps == ADAGRAD_EPS
    g1 = np.array([[0.3, -0.4, 2.0]])
    give(p, [1], g1)
    opt.step()
    s1 = g1**2
    expected = p0.copy()
    expected[1] -= 0.1 * g1[0] / (np.sqrt(s1[0]) + 1e-6)
    np.testing.assert_allclose(p.value, expected, **RTOL)
    np.testing.assert_allclose(opt.sum_sq[0], [[0, 0, 0], s1[0]], **RTOL)
    g2 = np.array([[1.0, 1.0, 1.0], [-0.5, 0.1, 0.2]])
    give(p, [0, 1], g2)
    opt.step()
    expected[0] -= 0.1 * g2[0] / (np.sqrt(g2[0] ** 2) + 1e-6)
    expected[1] -= 0.1 * g2[1] / (np.sqrt(s1[0] + g2[1] ** 2) + 1e-6)
    np.testing.assert_allclose(p.value, expected, **RTOL)


def test_adam_two_steps_by_hand():
    p0 = np.array([[0.5, -1.0], [2.0, 0.0]])
    p = weight(p0.copy())
    opt = Adam([p], lr=0.01)
    assert (opt.beta1, opt.beta2, opt.eps) == (B1, B2, ADAM_EPS)
    g1 = np.array([[0.2, -3.0], [1e-3, 4.0]])
    give(p, [0, 1], g1)
    opt.step()
    # step 1: m = (1-b1) g, v = (1-b2) g^2; bias correction gives mhat = g, vhat = g^2
    m = (1 - 0.9) * g1
    v = (1 - 0.999) * g1**2
    mhat, vhat = m / (1 - 0.9**1), v / (1 - 0.999**1)
    expected = p0 - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
    np.testing.assert_allclose(p.value, expected, **RTOL)
    np.testing.assert_allclose(p.value, p0 - 0.01 * g1 / (np.abs(g1) + 1e-8), **RTOL)
    g2 = np.array([[-0.1, 0.5], [2.0, -2.0]])
    give(p, [0, 1], g2)
    opt.step()
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2**2
    mhat, vhat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    expected = expected - 0.01 * mhat / (np.sqrt(vhat) + 1e-8)
    np.testing.assert_allclose(p.value, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(opt.moments(0)[0], m, **RTOL)
    np.testing.assert_allclose(opt.moments(0)[1], v, **RTOL)
    assert opt.steps == 2


# ---- rows without gradient ----------------------------------------------------------


def test_adam_non_lazy_moves_rows_without_gradient_lazy_does_not():
    p0 = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    g1 = np.array([[0.5, -0.5], [1.0, 2.0], [-1.0, 0.1], [0.3, 0.3]])
    g2 = np.array([[0.7, -0.2]])
    results = {}
    for lazy in (False, True):
        p = weight(p0.copy())
        opt = Adam([p], lr=0.1, lazy=lazy)
        give(p, [0, 1, 2, 3], g1)
        opt.step()
        after1 = p.value.copy()
        m1, v1 = opt.moments(0)
        give(p, [2], g2)  # only row 2 gets gradient in step 2
        opt.step()
        results[lazy] = (after1, m1, v1, p.value.copy(), *opt.moments(0))

    after1, m1, v1, after2, m2, v2 = results[False]
    others = [0, 1, 3]
    # non-lazy: the other rows see a zero gradient and still move
    assert np.all(after2[others] != after1[others])
    m_exp, v_exp = B1 * m1[others], B2 * v1[others]
    np.testing.assert_allclose(m2[others], m_exp, **RTOL)
    np.testing.assert_allclose(v2[others], v_exp, **RTOL)
    step = 0.1 * (m_exp / (1 - B1**2)) / (np.sqrt(v_exp / (1 - B2**2)) + ADAM_EPS)
    np.testing.assert_allclose(after2[others], after1[others] - step, rtol=1e-12)

    lazy_after1, lm1, lv1, lazy_after2, lm2, lv2 = results[True]
    np.testing.assert_array_equal(lazy_after1, after1)  # step 1 touched every row in both
    np.testing.assert_array_equal(lazy_after2[others], lazy_after1[others])
    np.testing.assert_array_equal(lm2[others], lm1[others])
    np.testing.assert_array_equal(lv2[others], lv1[others])
    # the row with gradient gets the same update either way
    np.testing.assert_array_equal(lazy_after2[2], after2[2])


def adam_in_place(p, m, v, rows, grad, step, lr=0.01, clip=0.0):
    """Adam with every row's moments decayed in place each step (the reference)."""
    g = np.zeros_like(p)
    g[rows] = np.clip(grad, -clip, clip) if clip else grad
    m[...] = B1 * m + (1 - B1) * g
    v[...] = B2 * v + (1 - B2) * g * g
    p -= lr / (1 - B1**step) * m / (np.sqrt(v) / np.sqrt(1 - B2**step) + ADAM_EPS)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-11), (np.float32, 1e-5)])
def test_adam_deferred_decay_matches_decaying_in_place(dtype, rtol):
    # rows skip steps in runs of every length, as meProp's touched rows do;
    # references: NumPy in float64, and the kernel decaying in place in dtype
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal((12, 7))
    p = Parameter("weight", p0.astype(dtype))
    opt = Adam([p], lr=0.01, clip=2.0)
    ref_p, ref_m, ref_v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    eager = [p0.astype(dtype), np.zeros((12, 7), dtype), np.zeros((12, 7), dtype)]
    for step in range(1, 301):
        rows = np.flatnonzero(rng.random(12) < [0.9, 0.5, 0.2, 0.05, 0.01, 0.0] * 2).astype(np.int64)
        grad = 3 * rng.standard_normal((len(rows), 7))
        p.set_grad(rows, grad.astype(dtype))
        opt.step()
        adam_in_place(ref_p, ref_m, ref_v, rows, grad, step, clip=2.0)
        _core.adam_update(*eager[:1], rows, grad.astype(dtype), *eager[1:], step, lr=0.01, clip=2.0)
    m, v = opt.moments(0)
    np.testing.assert_allclose(p.value, eager[0], rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(m, eager[1], rtol=rtol * 10, atol=1e-30)
    np.testing.assert_allclose(v, eager[2], rtol=rtol * 10, atol=1e-30)
    if dtype == np.float64:
        np.testing.assert_allclose(p.value, ref_p, rtol=rtol, atol=rtol * 1e-3)
        np.testing.assert_allclose(m, ref_m, rtol=rtol * 10, atol=1e-30)
    assert np.all(np.isfinite(opt.decay1[0])) and np.all(opt.decay1[0] <= 1)


def test_adam_rows_with_gradient_every_step_are_bitwise_as_in_place():
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal((5, 9)).astype(np.float32)
    p = Parameter("weight", p0.copy())
    opt = Adam([p], lr=0.003)
    eager_p, eager_m, eager_v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    rows = np.arange(5, dtype=np.int64)
    for step in range(1, 50):
        grad = rng.standard_normal((5, 9)).astype(np.float32)
        give(p, rows, grad)
        opt.step()
        _core.adam_update(eager_p, rows, grad, eager_m, eager_v, step, lr=0.003)  # no deferral
    np.testing.assert_array_equal(p.value, eager_p)
    np.testing.assert_array_equal(opt.m[0], eager_m)
    np.testing.assert_array_equal(opt.decay1[0], 1.0)


def test_adam_row_left_without_gradient_for_long_stays_finite():
    p = Parameter("weight", np.ones((2, 3), dtype=np.float32))
    opt = Adam([p], lr=0.01)
    give(p, [0, 1], np.ones((2, 3), dtype=np.float32))
    opt.step()
    for _ in range(20000):  # beta1^20000 underflows double precision
        give(p, [1], np.ones((1, 3), dtype=np.float32))
        opt.step()
    assert opt.decay1[0][0] == 0.0 and 0 < opt.decay2[0][0] < 1
    assert np.all(np.isfinite(p.value)) and np.all(np.isfinite(opt.moments(0)[0]))
    frozen = p.value[0].copy()
    give(p, [1], np.ones((1, 3), dtype=np.float32))
    opt.step()
    np.testing.assert_array_equal(p.value[0], frozen)  # its first moment has decayed to nothing


@pytest.mark.parametrize("lazy, moves", [(False, True), (True, False)])
def test_adam_parameter_without_any_gradient(lazy, moves):
    p = weight([[1.0, 2.0], [3.0, 4.0]])
    opt = Adam([p], lr=0.1, lazy=lazy)
    give(p, [0, 1], [[1.0, -1.0], [0.5, 0.5]])
    opt.step()
    before = p.value.copy()
    p.zero_grad()  # no gradient at all this step
    opt.step()
    assert np.all(p.value != before) == moves
    assert np.array_equal(p.value, before) == (not moves)


@pytest.mark.parametrize("cls", [SGD, AdaGrad])
def test_sgd_and_adagrad_leave_rows_without_gradient_unchanged(cls):
    p0 = np.arange(12.0).reshape(4, 3)
    p = weight(p0.copy())
    opt = cls([p], lr=0.1)
    give(p, [0, 1, 2, 3], np.ones((4, 3)))
    opt.step()
    after1 = p.value.copy()
    state1 = {k: v.copy() for k, v in opt.state_arrays().items()}
    give(p, [1, 3], [[1.0, -2.0, 0.5], [0.1, 0.2, 0.3]])
    opt.step()
    np.testing.assert_array_equal(p.value[[0, 2]], after1[[0, 2]])
    assert np.all(p.value[[1, 3]] != after1[[1, 3]])
    for name, arr in opt.state_arrays().items():
        np.testing.assert_array_equal(arr[[0, 2]], state1[name][[0, 2]])
    p.zero_grad()
    before = p.value.copy()
    opt.step()
    np.testing.assert_array_equal(p.value, before)


# ---- clipping -----------------------------------------------------------------------


def test_sgd_clip_is_elementwise():
    p = weight([[0.0, 0.0, 0.0, 0.0]])
    give(p, [0], [[-3.0, 0.2, 0.7, 0.5]])
    SGD([p], lr=1.0, clip=0.5).step()
    np.testing.assert_allclose(p.value, [[0.5, -0.2, -0.5, -0.5]], **RTOL)


def test_clip_zero_disables_clipping():
    p = weight([[0.0, 0.0]])
    give(p, [0], [[-300.0, 7.0]])
    SGD([p], lr=1.0, clip=0.0).step()
    np.testing.assert_array_equal(p.value, [[300.0, -7.0]])


@pytest.mark.parametrize("name", ["adagrad", "adam"])
def test_clip_applies_before_the_state_update(name):
    g = np.array([[-3.0, 0.2, 0.7]])
    clipped = np.clip(g, -0.5, 0.5)
    a, b = weight([[1.0, 1.0, 1.0]]), weight([[1.0, 1.0, 1.0]])
    opt_a = OPTIMIZERS[name]([a], lr=0.1, clip=0.5)
    opt_b = OPTIMIZERS[name]([b], lr=0.1)
    for _ in range(3):
        give(a, [0], g)
        give(b, [0], clipped)
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a.value, b.value)
    for (_, sa), (_, sb) in zip(opt_a.state_arrays().items(), opt_b.state_arrays().items()):
        np.testing.assert_array_equal(sa, sb)


# ---- 1-D parameters (biases) ----------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam"])
def test_bias_parameters(name):
    b0 = np.array([0.5, -0.5, 1.0])
    g = np.array([0.2, -0.1, 0.0])
    bias = Parameter("bias", b0.copy())
    opt = OPTIMIZERS[name]([bias], lr=0.1)
    bias.set_grad(np.array([0]), g.reshape(1, -1))
    opt.step()
    assert bias.value.shape == (3,)
    if name == "sgd":
        expected = b0 - 0.1 * g
    elif name == "adagrad":
        expected = b0 - 0.1 * g / (np.sqrt(g**2) + ADAGRAD_EPS)
    else:
        expected = b0 - 0.1 * g / (np.abs(g) + ADAM_EPS)
    np.testing.assert_allclose(bias.value, expected, **RTOL)
    for key, arr in opt.state_arrays().items():
        assert arr.shape == ((1,) if key.startswith("decay") else (1, 3))  # a factor per row


# ---- several steps against NumPy ------------------------------------------------------


def random_grads(rng, params, dtype):
    grads = []
    for p in params:
        n_rows = p.matrix().shape[0]
        if rng.random() < 0.2:
            grads.append(None)  # this parameter got no gradient this step
            continue
        rows = np.sort(rng.choice(n_rows, size=rng.integers(1, n_rows + 1), replace=False)).astype(np.int64)
        grads.append((rows, (rng.standard_normal((len(rows), p.matrix().shape[1])) * 2).astype(dtype)))
    return grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clip", [0.0, 1.5])
@pytest.mark.parametrize("name, lazy", [("sgd", False), ("adagrad", False), ("adam", False), ("adam", True)])
def test_several_steps_match_numpy(rng, name, lazy, clip, dtype):
    params = [
        Parameter("weight", rng.standard_normal((7, 5)).astype(dtype)),
        Parameter("bias", rng.standard_normal(7).astype(dtype)),
        Parameter("weight", rng.standard_normal((3, 7)).astype(dtype)),
    ]
    kwargs = {"lr": 0.05, "clip": clip}
    if name == "adam":
        kwargs["lazy"] = lazy
    opt = OPTIMIZERS[name](params, **kwargs)
    ref_params = [p.matrix().astype(np.float64) for p in params]
    ref = NumpyOptimizer(name, [p.shape for p in ref_params], 0.05, clip, lazy)
    for _ in range(12):
        grads = random_grads(rng, params, dtype)
        for p, g in zip(params, grads):
            if g is None:
                p.zero_grad()
            else:
                p.set_grad(*g)
        opt.step()
        ref.step(ref_params, [None if g is None else (g[0], g[1].astype(np.float64)) for g in grads])
    tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-5, "atol": 2e-5}
    for p, r in zip(params, ref_params):
        assert p.value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(p.matrix(), r, **tol)
    assert opt.steps == 12


# ---- state dicts ----------------------------------------------------------------------


@pytest.mark.parametrize("name, lazy", [("sgd", False), ("adagrad", False), ("adam", False), ("adam", True)])
def test_state_dict_round_trip_continues_identically(rng, name, lazy):
    def make(values):
        params = [Parameter("weight", values[0].copy()), Parameter("bias", values[1].copy())]
        kwargs = {"lr": 0.05, "clip": 1.0}
        if name == "adam":
            kwargs["lazy"] = lazy
        return params, OPTIMIZERS[name](params, **kwargs)

    init = [rng.standard_normal((6, 4)), rng.standard_normal(6)]
    schedule = [random_grads(rng, [Parameter("w", init[0]), Parameter("b", init[1])], np.float64) for _ in range(8)]

    def run(params, opt, steps):
        for grads in steps:
            for p, g in zip(params, grads):
                if g is None:
                    p.zero_grad()
                else:
                    p.set_grad(*g)
            opt.step()

    a_params, a = make(init)
    run(a_params, a, schedule[:4])
    state = a.state_dict()
    assert int(state["steps"]) == 4
    expected_keys = {"steps"} | set(a.state_arrays())
    assert set(state) == expected_keys
    mid = [a_params[0].value.copy(), a_params[1].value.copy()]
    b_params, b = make(mid)
    b.load_state_dict(state)
    assert b.steps == 4
    # the state dict holds copies, not the live arrays
    for key, arr in a.state_arrays().items():
        assert not np.shares_memory(arr, state[key])
    run(a_params, a, schedule[4:])
    run(b_params, b, schedule[4:])
    for pa, pb in zip(a_params, b_params):
        assert np.array_equal(pa.value, pb.value)
    for key in a.state_arrays():
        assert np.array_equal(a.state_arrays()[key], b.state_arrays()[key])

    if name != "sgd":  # without the state the continuation differs
        c_params, c = make(mid)
        run(c_params, c, schedule[4:])
        assert not all(np.array_equal(x.value, y.value) for x, y in zip(c_params, a_params))


def test_load_state_dict_rejects_wrong_shapes_and_missing_arrays():
    p = weight(np.zeros((3, 2)))
    opt = Adam([p])
    state = opt.state_dict()
    with pytest.raises(ValueError, match=r"m.0"):
        opt.load_state_dict(dict(state, **{"m.0": np.zeros((2, 2))}))
    missing = dict(state)
    del missing["v.0"]
    with pytest.raises(ValueError, match=r"v.0"):
        opt.load_state_dict(missing)


# ---- bad arguments --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SGD, AdaGrad, Adam])
@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_bad_learning_rate(cls, lr):
    with pytest.raises(ValueError, match="learning rate"):
        cls([weight([[1.0]])], lr=lr)


@pytest.mark.parametrize("cls", [SGD, AdaGrad, Adam])
def test_bad_clip(cls):
    with pytest.raises(ValueError, match="clip"):
        cls([weight([[1.0]])], lr=0.1, clip=-1.0)


@pytest.mark.parametrize("kwargs", [{"lr": float("nan")}, {"lr": 0.1, "clip": float("nan")}], ids=["lr", "clip"])
def test_nan_learning_rate_or_clip_is_rejected(kwargs):
    # LIBRARY BUG (reported): Optimizer.__init__ checks `lr <= 0` and
    # `clip < 0`, both False for NaN, so NaN is accepted: lr=NaN turns every
    # updated parameter into NaN on the first step; clip=NaN silently disables
    # clipping (the kernel clips only when clip > 0).
    with pytest.raises(ValueError):
        SGD([weight([[1.0]])], **kwargs)


def test_optimizer_step_with_unsorted_rows_raises_and_changes_nothing():
    p = weight(np.zeros((4, 2)))
    q = weight(np.zeros((3, 2)))
    give(p, [2, 1], np.ones((2, 2)))
    for cls in (SGD, AdaGrad, Adam):
        opt = cls([p], lr=0.1)
        with pytest.raises(ValueError, match="ascending"):
            opt.step()
        np.testing.assert_array_equal(p.value, 0)
    give(q, [0, 3], np.ones((2, 2)))
    with pytest.raises(ValueError, match="outside"):
        SGD([q], lr=0.1).step()
    np.testing.assert_array_equal(q.value, 0)


def _native_calls():
    """(name, call(param, rows, grad, state_maker)) for the three native updates."""

    def sgd(param, rows, grad, state=None):
        _core.sgd_update(param, rows, grad, 0.1, 0.0)

    def adagrad(param, rows, grad, state=None):
        s = np.zeros_like(param) if state is None else state
        _core.adagrad_update(param, rows, grad, s, 0.1, 1e-6, 0.0)

    def adam(param, rows, grad, state=None):
        m = np.zeros_like(param) if state is None else state
        _core.adam_update(param, rows, grad, m, np.zeros_like(param), 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False)

    return [("sgd", sgd), ("adagrad", adagrad), ("adam", adam)]


def _rows(*ids):
    return np.array(ids, dtype=np.int64)


BAD_NATIVE_CALLS = [
    ("grad dtype differs", lambda: (np.zeros((3, 2), np.float32), _rows(0), np.ones((1, 2), np.float64)), TypeError),
    ("integer param", lambda: (np.zeros((3, 2), np.int64), _rows(0), np.ones((1, 2), np.int64)), TypeError),
    ("rows int32", lambda: (np.zeros((3, 2)), np.array([0], np.int32), np.ones((1, 2))), TypeError),
    ("rows 2-D", lambda: (np.zeros((3, 2)), np.zeros((1, 1), np.int64), np.ones((1, 2))), TypeError),
    ("grad too few rows", lambda: (np.zeros((3, 2)), _rows(0, 1), np.ones((1, 2))), ValueError),
    ("grad wrong cols", lambda: (np.zeros((3, 2)), _rows(0), np.ones((1, 3))), ValueError),
    ("grad 1-D", lambda: (np.zeros((3, 2)), _rows(0), np.ones(2)), ValueError),
    ("rows unsorted", lambda: (np.zeros((3, 2)), _rows(2, 0), np.ones((2, 2))), ValueError),
    ("rows repeated", lambda: (np.zeros((3, 2)), _rows(1, 1), np.ones((2, 2))), ValueError),
    ("row negative", lambda: (np.zeros((3, 2)), _rows(-1), np.ones((1, 2))), ValueError),
    ("row too large", lambda: (np.zeros((3, 2)), _rows(3), np.ones((1, 2))), ValueError),
    ("more rows than param", lambda: (np.zeros((2, 2)), _rows(0, 1, 2), np.ones((3, 2))), ValueError),
    ("param 3-D", lambda: (np.zeros((2, 2, 2)), _rows(0), np.ones((1, 2))), ValueError),
    ("param not contiguous", lambda: (np.zeros((3, 4))[:, ::2], _rows(0), np.ones((1, 2))), ValueError),
]


@pytest.mark.parametrize("name, call", _native_calls(), ids=[n for n, _ in _native_calls()])
@pytest.mark.parametrize("what, make, error", BAD_NATIVE_CALLS, ids=[w for w, _, _ in BAD_NATIVE_CALLS])
def test_native_update_rejects_bad_input(name, call, what, make, error):
    param, rows, grad = make()
    before = param.copy()
    with pytest.raises(error):
        call(param, rows, grad)
    np.testing.assert_array_equal(param, before)


@pytest.mark.parametrize("name, call", _native_calls()[1:], ids=["adagrad", "adam"])
def test_native_update_rejects_bad_state(name, call):
    param = np.zeros((3, 2))
    with pytest.raises(ValueError):
        call(param, _rows(0), np.ones((1, 2)), np.zeros((2, 2)))
    with pytest.raises(TypeError):
        call(param, _rows(0), np.ones((1, 2)), np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError):
        call(param, _rows(0), np.ones((1, 2)), param)  # state aliasing the parameter
    np.testing.assert_array_equal(param, 0)


def test_native_update_rejects_read_only_param():
    param = np.zeros((3, 2))
    param.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.sgd_update(param, _rows(0), np.ones((1, 2)), 0.1, 0.0)


def test_native_adam_rejects_step_zero():
    param = np.zeros((3, 2))
    with pytest.raises(ValueError, match="step"):
        _core.adam_update(param, _rows(0), np.ones((1, 2)), np.zeros((3, 2)), np.zeros((3, 2)), 0)
    np.testing.assert_array_equal(param, 0)


def test_adam_rejects_decay_factors_outside_unit_interval():
    p = np.zeros((2, 3), dtype=np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rows, g = np.array([0], dtype=np.int64), np.ones((1, 3), dtype=np.float32)
    for bad in (-0.5, 1.5, np.nan):
        d1, d2 = np.ones(2), np.ones(2)
        d1[1] = bad
        with pytest.raises(ValueError, match=r"decay factors must lie in \[0, 1\]"):
            _core.adam_update(p, rows, g, m, v, 1, decay1=d1, decay2=d2)
    assert not p.any() and not m.any()  # nothing written


def test_adam_loads_a_state_saved_without_decay_factors():
    # such a state holds the actual moments: factors of 1 continue it exactly
    p = Parameter("weight", np.ones((3, 2)))
    opt = Adam([p], lr=0.1)
    give(p, [0, 1, 2], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    opt.step()
    give(p, [1], [[1.0, -1.0]])
    opt.step()
    old = {"m.0": opt.moments(0)[0], "v.0": opt.moments(0)[1], "steps": np.array(2)}
    again = Adam([Parameter("weight", p.value.copy())], lr=0.1)
    again.load_state_dict(old)
    np.testing.assert_array_equal(again.decay1[0], 1.0)
    np.testing.assert_allclose(again.moments(0)[0], opt.moments(0)[0], rtol=1e-15)
    assert again.steps == 2


def test_a_parameter_given_twice_is_refused():
    from meprop_native.nn import Linear
    from meprop_native.optim import SGD

    layer = Linear(3, 4, k=2)
    with pytest.raises(ValueError, match="twice"):
        SGD([layer.weight, layer.bias, layer.weight], lr=0.1)


@pytest.mark.parametrize("steps", [np.array(-1), np.array(2.5), np.array([3]), np.array(np.nan)])
def test_bad_step_counts_in_a_state_are_refused(steps):
    from meprop_native.nn import Linear
    from meprop_native.optim import Adam

    opt = Adam(Linear(3, 4, k=2).parameters())
    state = opt.state_dict()
    state["steps"] = steps
    with pytest.raises(ValueError, match="steps"):
        opt.load_state_dict(state)


def test_non_finite_decay_factors_in_a_state_are_refused_and_change_nothing():
    from meprop_native.nn import Linear
    from meprop_native.optim import Adam

    opt = Adam(Linear(3, 4, k=2).parameters())
    state = opt.state_dict()
    state["decay1.0"] = np.full_like(state["decay1.0"], np.nan)
    state["m.0"] = np.ones_like(state["m.0"])
    with pytest.raises(ValueError, match=r"decay1.0"):
        opt.load_state_dict(state)
    assert not opt.m[0].any()  # checked before anything was copied
