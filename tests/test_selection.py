"""Error feedback, adaptive k, warm-up, random selection and kept_fraction, against plain NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import reference_mask

from meprop_native import _core
from meprop_native.nn import Linear, Selection, mlp
from meprop_native.nn.selection import mass_k
from meprop_native.optim import Adam
from meprop_native.train import ArrayDataset, Splits, TrainConfig, Trainer
from meprop_native.train.checkpoint import load_checkpoint


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


class ReferenceFeedback:
    """Error feedback written out: u = dy + m / B; keep top-k of u; m = decay * dropped sums."""

    def __init__(self, n, decay):
        self.m = np.zeros(n)
        self.decay = decay

    def step(self, dy, k, mode):
        u = dy.astype(np.float64) + self.m / len(dy)
        mask = reference_mask(u.astype(dy.dtype), k, mode)
        kept = np.where(mask, u, 0.0)
        self.m = self.decay * (u - kept).sum(axis=0)
        return kept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["per_example", "unified"])
@pytest.mark.parametrize("decay", [0.8, 1.0])
@pytest.mark.parametrize("B,k", [(1, 1), (6, 3), (4, 9)])
def test_linear_error_feedback_matches_a_numpy_reference_over_steps(dtype, mode, decay, B, k):
    rng = np.random.default_rng(3)
    layer = Linear(7, 9, k=k, mode=mode, dtype=dtype, rng=rng, selection={"memory_decay": decay})
    ref = ReferenceFeedback(9, decay)
    W = layer.weight.value
    for _ in range(5):  # the memory carries from step to step
        x = rng.standard_normal((B, 7)).astype(dtype)
        dy = rng.standard_normal((B, 9)).astype(dtype)
        layer.forward(x)
        dx = layer.backward(dy)
        kept = ref.step(dy, k, mode)
        np.testing.assert_allclose(dx, kept @ W, **tol(dtype))
        np.testing.assert_allclose(layer.weight.dense_grad(), kept.T @ x, **tol(dtype))
        np.testing.assert_allclose(layer.bias.dense_grad(), dy.sum(axis=0), **tol(dtype))  # the true db
        np.testing.assert_allclose(layer.selection.memory, ref.m, **tol(dtype))


def test_error_feedback_with_decay_zero_is_plain_meprop():
    rng = np.random.default_rng(0)
    plain = Linear(6, 10, k=2, rng=np.random.default_rng(1))
    off = Linear(6, 10, k=2, rng=np.random.default_rng(1), selection={"memory_decay": 0.0})
    for _ in range(3):
        x, dy = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((4, 10)).astype(np.float32)
        plain.forward(x), off.forward(x)
        assert np.array_equal(plain.backward(dy), off.backward(dy))
    assert off.selection.memory is None


def test_error_feedback_keeps_the_gradient_mass_with_decay_one():
    """With decay 1 nothing is lost: kept entries plus memory sum to all of dy so far."""
    rng = np.random.default_rng(5)
    layer = Linear(3, 8, k=1, dtype=np.float64, rng=rng, selection={"memory_decay": 1.0})
    total_dy, total_kept = np.zeros(8), np.zeros(8)
    for _ in range(6):
        x, dy = np.ones((2, 3)), rng.standard_normal((2, 8))
        layer.forward(x)
        layer.backward(dy)
        total_dy += dy.sum(axis=0)
        total_kept += layer.weight.dense_grad()[:, 0]  # x = 1: column 0 of dW is the kept sum
    np.testing.assert_allclose(total_kept + layer.selection.memory, total_dy, atol=1e-12)


def test_given_indices_drive_the_backward():
    rng = np.random.default_rng(2)
    dy, x, W = (rng.standard_normal(s).astype(np.float32) for s in ((3, 6), (3, 4), (6, 4)))
    ids = np.array([[0, 2], [1, 5], [3, 4]], dtype=np.int64)
    dx, rows, dW_rows, _db = _core.linear_backward_compact(dy, x, W, None, "per_example", True, indices=ids)
    mask = np.zeros_like(dy, dtype=bool)
    mask[np.arange(3)[:, None], ids] = True
    kept = np.where(mask, dy, 0)
    np.testing.assert_allclose(dx, kept @ W, rtol=1e-5, atol=1e-6)
    assert list(rows) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(dW_rows, (kept.T @ x)[rows], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(indices=np.array([[2, 1]] * 3, dtype=np.int64)), "ascending"),
        (dict(indices=np.array([[0, 9]] * 3, dtype=np.int64)), "n_out|within|range|\\[0"),
        (dict(indices=np.array([[0, 1]] * 2, dtype=np.int64)), "shape"),
        (dict(indices=np.array([[0, 1]] * 3, dtype=np.int32)), "int64"),
        (dict(memory=np.zeros(5, np.float32)), "shape"),
        (dict(memory=np.zeros(6, np.float64)), "dtype"),
        (dict(memory=np.zeros(6, np.float32), memory_decay=1.5), "memory_decay"),
        (dict(memory=np.zeros(6, np.float32), memory_decay=float("nan")), "memory_decay"),
    ],
)
def test_bad_indices_and_memory_are_named(kwargs, message):
    rng = np.random.default_rng(0)
    dy, x, W = (rng.standard_normal(s).astype(np.float32) for s in ((3, 6), (3, 4), (6, 4)))
    k = None if "indices" in kwargs else 2
    with pytest.raises((ValueError, TypeError), match=message):
        _core.linear_backward_compact(dy, x, W, k, "per_example", True, **kwargs)


def test_k_and_indices_together_are_refused():
    rng = np.random.default_rng(0)
    dy, x, W = (rng.standard_normal(s).astype(np.float32) for s in ((3, 6), (3, 4), (6, 4)))
    with pytest.raises(ValueError, match="not both"):
        _core.linear_backward_compact(dy, x, W, 2, "per_example", True, indices=np.zeros((3, 2), np.int64))


def test_random_selection_is_uniform_distinct_and_ascending():
    sel = Selection(50, 5, select="random", seed=3)
    counts = np.zeros(50)
    draws = 4000
    for _ in range(draws // 8):
        ids = sel.random_indices(8, 5)
        assert ids.shape == (8, 5) and ids.dtype == np.int64
        assert (np.diff(ids, axis=1) > 0).all() and ids.min() >= 0 and ids.max() < 50
        np.add.at(counts, ids.ravel(), 1)
    expected = draws * 5 / 50  # every column equally likely: 400 each
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 100, chi2  # 49 degrees of freedom: p < 1e-4 above 100
    unified = Selection(50, 5, select="random", unified=True, seed=3).random_indices(8, 5)
    assert unified.shape == (5,) and (np.diff(unified) > 0).all()


def test_random_selection_trains_through_the_same_kernels():
    rng = np.random.default_rng(0)
    layer = Linear(4, 30, k=3, rng=rng, selection={"select": "random", "seed": 9})
    twin = Selection(30, 3, select="random", seed=9)
    x, dy = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 30)).astype(np.float32)
    layer.forward(x)
    dx = layer.backward(dy)
    ids = twin.random_indices(5, 3)
    mask = np.zeros_like(dy, dtype=bool)
    mask[np.arange(5)[:, None], ids] = True
    np.testing.assert_allclose(dx, np.where(mask, dy, 0) @ layer.weight.value, rtol=1e-5, atol=1e-6)


def brute_mass_k(dy, mass):
    ks = []
    for row in np.abs(dy):
        order = np.sort(row)[::-1]
        ks.append(next(k for k in range(1, len(row) + 1) if order[:k].sum() >= mass * row.sum()))
    return math.ceil(np.mean(ks))


@pytest.mark.parametrize("mass", [0.3, 0.5, 0.9, 1.0])
def test_mass_rule_against_brute_force(mass):
    rng = np.random.default_rng(int(mass * 10))
    dy = rng.standard_normal((7, 40)) ** 3
    assert mass_k(dy, mass) == brute_mass_k(dy, mass)


def test_mass_rule_is_clamped():
    sel = Selection(40, 10, k_rule="mass", k_mass=1.0, k_min=2, k_max=12)
    assert sel.step_k(np.random.default_rng(0).standard_normal((3, 40))) == 12
    sel = Selection(40, 10, k_rule="mass", k_mass=0.01, k_min=4, k_max=12)
    assert sel.step_k(np.random.default_rng(0).standard_normal((3, 40))) == 4


def test_tinyprop_rule_follows_the_gradient_norm_against_its_running_maximum():
    n, k_min, k_max, zeta, depth = 100, 5, 45, 0.5, 1
    sel = Selection(n, 20, k_rule="tinyprop", k_min=k_min, k_max=k_max, tinyprop_zeta=zeta, depth=depth)
    y_max = 0.0
    for scale in (1.0, 0.5, 2.0, 0.1):
        dy = np.full((2, n), scale)
        y = np.abs(dy).sum()
        y_max = max(y_max, y)
        s_min, s_max = k_min / n, k_max / n
        want = math.floor(n * (s_min + y * (s_max - s_min) / y_max) * zeta**depth)
        assert sel.step_k(dy) == min(max(want, k_min), k_max)
    assert sel.y_max == y_max


def test_warmup_ramp_falls_geometrically_and_dense_warmup_is_dense():
    dy = np.zeros((2, 100))
    ramp = Selection(100, 4, warmup_steps=10, warmup="ramp")
    ks = [ramp.step_k(dy) for _ in range(12)]
    assert ks[0] == 100 and ks[10:] == [4, 4]
    assert all(a >= b for a, b in zip(ks, ks[1:]))
    assert ks[5] == round(100 * (4 / 100) ** 0.5)
    dense = Selection(100, 4, warmup_steps=3, warmup="dense")
    assert [dense.step_k(dy) for _ in range(5)] == [100, 100, 100, 4, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(memory_decay=1.2), "memory_decay"),
        (dict(memory_decay=-0.1), "memory_decay"),
        (dict(select="best"), "select"),
        (dict(k_rule="auto"), "k_rule"),
        (dict(warmup="cosine"), "warmup"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(k_min=5, k_max=3), "k_min"),
        (dict(k_mass=0.0), "k_mass"),
        (dict(tinyprop_zeta=1.5), "tinyprop_zeta"),
    ],
)
def test_bad_selection_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Linear(4, 8, k=2, selection=kwargs)


@pytest.mark.parametrize("k", [True, 0, -3, 2.5])
def test_bad_k_is_refused(k):
    with pytest.raises(ValueError, match="k must be"):
        Linear(4, 8, k=k)


def test_bad_dtype_is_refused_at_construction():
    with pytest.raises(TypeError, match="dtype"):
        Linear(4, 8, k=2, dtype=np.int32)


# ---- kept_fraction and checkpoints ---------------------------------------------


def toy_splits(seed=7):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, 12))

    def draw(n):
        y = rng.integers(0, 3, n)
        return ArrayDataset((centers[y] + 0.8 * rng.standard_normal((n, 12))).astype(np.float32), y.astype(np.int64))

    return Splits(draw(95), draw(30), draw(30))


def make_trainer(out, selection, epochs=2):
    model = mlp([12, 20, 20, 3], k=4, seed=1, selection=selection)
    optimizer = Adam(model.parameters(), lr=0.01, clip=5.0)
    config = TrainConfig(epochs=epochs, batch_size=10, seed=1, checkpoint_every=4, progress=False)
    return Trainer(model, optimizer, toy_splits(), config, out, {"task": "toy"})


def test_kept_fraction_against_a_hand_count(tmp_path):
    """Warm-up ramp over 6 steps then k=4 of 20, two hidden layers; the output layer (3) is dense."""
    summary = make_trainer(tmp_path, {"warmup_steps": 6, "warmup": "ramp"}).fit()
    steps_per_epoch = math.ceil(95 / 10)
    batches = [10] * 9 + [5]
    kept = seen = 0
    step = 0
    for _epoch in range(2):
        for b in batches[:steps_per_epoch]:
            k = 4 if step >= 6 else max(4, round(20 * (4 / 20) ** (step / 6)))
            kept += b * k
            seen += b * 20
            step += 1
    want = kept / seen
    assert summary["kept_fraction"]["layers"] == [pytest.approx(want), pytest.approx(want)]
    assert summary["kept_fraction"]["all"] == pytest.approx(want)
    first = summary["history"][0]["kept_fraction"]["all"]
    assert first > want  # the first epoch holds the whole ramp


def test_dense_run_reports_no_meprop_layers(tmp_path):
    model = mlp([12, 20, 3], k=None, seed=1)
    trainer = Trainer(
        model,
        Adam(model.parameters(), lr=0.01),
        toy_splits(),
        TrainConfig(epochs=1, batch_size=10, seed=1, progress=False),
        tmp_path,
        {"task": "toy"},
    )
    assert trainer.fit()["kept_fraction"] == {"layers": [], "all": None}


class Kill(BaseException):
    pass


@pytest.mark.parametrize(
    "selection",
    [
        {"memory_decay": 0.8},
        {"select": "random", "memory_decay": 1.0},
        {"k_rule": "tinyprop", "k_min": 2, "k_max": 10},
    ],
)
def test_resume_with_selection_state_is_bit_identical(tmp_path, selection):
    want = make_trainer(tmp_path / "whole", selection).fit()
    want_arrays, _ = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    trainer = make_trainer(tmp_path / "cut", selection)
    original, done = trainer._train_step, [0]

    def step(x, y):
        if done[0] == 13:
            raise Kill()
        done[0] += 1
        original(x, y)

    trainer._train_step = step
    with pytest.raises(Kill):
        trainer.fit()
    got = make_trainer(tmp_path / "cut", selection).fit(resume=True)
    got_arrays, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert sorted(got_arrays) == sorted(want_arrays)
    assert any(name.startswith("selection/") for name in want_arrays)
    for name in want_arrays:
        assert np.array_equal(got_arrays[name], want_arrays[name]), name
    assert got["kept_fraction"] == want["kept_fraction"]
    assert got["test_at_best_dev"] == want["test_at_best_dev"]


@pytest.mark.parametrize(
    "state, message",
    [
        ({"counters": np.array([1, 2], np.int64), "y_max": np.array(0.0)}, "counters"),
        ({"counters": np.array([1, 2, -3], np.int64), "y_max": np.array(0.0)}, "counters"),
        ({"counters": np.array([1, 2, 3], np.int64), "y_max": np.array(np.nan)}, "y_max"),
        ({"counters": np.array([1, 2, 3], np.int64), "y_max": np.array(0.0), "memory": np.zeros(3)}, "memory"),
        ({"counters": np.array([1, 2, 3], np.int64), "y_max": np.array(0.0), "memory": np.full(8, np.inf)}, "memory"),
    ],
)
def test_bad_selection_state_is_refused(state, message):
    with pytest.raises(ValueError, match=message):
        Selection(8, 2, memory_decay=0.5).load_state_dict(state)
