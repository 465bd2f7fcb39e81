"""Tests of meSimp: the selection counts of the backward kernel, removing units
(weights, optimizer state, selection state), the schedule in the trainer, the
summary, and resume across simplifications, bit for bit."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from meprop_native import _core
from meprop_native.nn import Linear, mlp
from meprop_native.nn.selection import Selection
from meprop_native.nn.simplify import hidden_layers, remove_units, simplify, units_to_keep
from meprop_native.optim import SGD, AdaGrad, Adam
from meprop_native.train import ArrayDataset, CheckpointError, Splits, TrainConfig, Trainer, load_checkpoint
from meprop_native.train.simplify import Simplifier, SimplifyConfig

# ---- the kernel's counts -------------------------------------------------------------


def reference_counts(dy: np.ndarray, k: int, mode: str, memory=None) -> np.ndarray:
    """counts[j]: the examples whose kept entries include j, from a NumPy top-k
    (with error feedback, on dy plus the memory spread over the batch)."""
    a = np.abs(dy if memory is None else dy + memory / len(dy))
    n = dy.shape[1]
    counts = np.zeros(n, dtype=np.int64)
    if mode == "dense":
        counts += len(dy)
    elif mode == "unified":
        counts[np.argsort(-a.sum(axis=0), kind="stable")[:k]] += len(dy)
    else:
        for row in a:
            counts[np.argsort(-row, kind="stable")[:k]] += 1
    return counts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
@pytest.mark.parametrize("batch, n, k", [(1, 7, 1), (5, 12, 3), (9, 30, 30), (16, 64, 5)])
def test_counts_match_a_numpy_top_k(dtype, mode, batch, n, k):
    rng = np.random.default_rng(batch * 100 + n)
    dy = rng.standard_normal((batch, n)).astype(dtype)  # no ties: the top-k is unique
    x = rng.standard_normal((batch, 4)).astype(dtype)
    W = rng.standard_normal((n, 4)).astype(dtype)
    counts = np.full(n, 3, dtype=np.int64)  # added to, never overwritten
    _core.linear_backward_compact(dy, x, W, None if mode == "dense" else k, mode, True, False, counts=counts)
    np.testing.assert_array_equal(counts, 3 + reference_counts(dy, k, mode))


def test_counts_follow_error_feedback_and_given_indices():
    rng = np.random.default_rng(5)
    dy = rng.standard_normal((6, 10))
    x, W = rng.standard_normal((6, 3)), rng.standard_normal((10, 3))
    memory = rng.standard_normal(10)
    counts = np.zeros(10, dtype=np.int64)
    want = reference_counts(dy, 2, "per_example", memory)
    _core.linear_backward_compact(dy, x, W, 2, memory=memory.copy(), memory_decay=0.8, counts=counts)
    np.testing.assert_array_equal(counts, want)
    indices = np.array([[0, 4], [1, 4], [4, 9], [0, 1], [2, 3], [4, 5]], dtype=np.int64)
    counts[:] = 0
    _core.linear_backward_compact(dy, x, W, None, indices=indices, counts=counts)
    np.testing.assert_array_equal(counts, np.bincount(indices.ravel(), minlength=10))


@pytest.mark.parametrize(
    "counts, error, match",
    [
        (np.zeros(10, dtype=np.int32), TypeError, "int64"),
        (np.zeros(9, dtype=np.int64), ValueError, r"shape \(10,\)"),
        (np.zeros((10, 1), dtype=np.int64), ValueError, r"shape \(10,\)"),
        (np.zeros(20, dtype=np.int64)[::2], ValueError, "C-contiguous"),
    ],
)
def test_bad_counts_are_refused(counts, error, match):
    dy, x, W = np.ones((2, 10)), np.ones((2, 3)), np.ones((10, 3))
    with pytest.raises(error, match=match):
        _core.linear_backward_compact(dy, x, W, 2, counts=counts)


def test_read_only_counts_are_refused():
    counts = np.zeros(10, dtype=np.int64)
    counts.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.linear_backward_compact(np.ones((2, 10)), np.ones((2, 3)), np.ones((10, 3)), 2, counts=counts)


def test_a_layer_counts_its_hits_only_when_asked():
    layer = Linear(4, 12, k=3, rng=np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 12))
    layer.forward(x)
    layer.backward(dy)
    assert layer.selection.hits is None
    layer.selection.track_hits()
    for _ in range(2):
        layer.forward(x)
        layer.backward(dy)
    np.testing.assert_array_equal(layer.selection.hits, 2 * reference_counts(dy, 3, "per_example"))
    assert layer.selection.hit_examples == 10


# ---- which units stay -------------------------------------------------------------------


def test_units_to_keep_uses_the_truncated_threshold():
    hits = np.array([0, 1, 2, 3, 9])
    # int(19 * 0.1) = 1: a unit needs at least one hit
    np.testing.assert_array_equal(units_to_keep(hits, 19, 0.1), [1, 2, 3, 4])
    np.testing.assert_array_equal(units_to_keep(hits, 20, 0.1), [2, 3, 4])
    # no unit reaches the threshold: the most selected one stays
    np.testing.assert_array_equal(units_to_keep(hits, 1000, 0.5), [4])
    # nothing counted yet: every unit stays
    np.testing.assert_array_equal(units_to_keep(np.zeros(3, np.int64), 0, 0.1), [0, 1, 2])


def test_hidden_layers_pairs_each_hidden_layer_with_the_next():
    model = mlp([6, 8, 7, 3], k=2, dropout=0.1)
    pairs = hidden_layers(model)
    linears = model.linear_layers()
    assert pairs == [(linears[0], linears[1]), (linears[1], linears[2])]


# ---- removing units ------------------------------------------------------------------------


def test_removing_units_whose_outputs_are_unused_keeps_the_forward():
    model = mlp([6, 8, 7, 3], k=2, seed=3, dtype=np.float64)
    first, second = model.linear_layers()[:2]
    keep = np.array([0, 2, 3, 6], dtype=np.int64)
    dropped = np.setdiff1d(np.arange(8), keep)
    second.weight.value[:, dropped] = 0.0  # the units to go contribute nothing
    x = np.random.default_rng(0).standard_normal((5, 6))
    before = model.forward(x)
    remove_units(first, second, keep, None)
    assert (first.out_features, second.in_features) == (4, 4)
    assert first.weight.value.shape == (4, 6) and first.bias.value.shape == (4,)
    assert second.weight.value.shape == (7, 4)
    assert first.weight.value.flags.c_contiguous and second.weight.value.flags.c_contiguous
    np.testing.assert_allclose(model.forward(x), before, rtol=1e-12, atol=1e-12)
    model.backward(np.ones((5, 3)))  # and the backward runs at the new sizes


def dense_grads(model, rng):
    for p in model.parameters():
        rows = np.arange(p.matrix().shape[0], dtype=np.int64)
        p.set_grad(rows, rng.standard_normal(p.matrix().shape).astype(p.value.dtype))


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1),
        lambda ps: AdaGrad(ps, lr=0.1),
        lambda ps: Adam(ps, lr=0.01),
        lambda ps: Adam(ps, lr=0.01, lazy=True),
    ],
    ids=["sgd", "adagrad", "adam", "lazy-adam"],
)
def test_the_optimizer_state_follows_the_units(make):
    """Stepping a model, removing units, stepping again equals stepping the full
    model with the same gradients and reading the kept units, bit for bit."""
    rng = np.random.default_rng(7)
    full = mlp([5, 9, 4], k=3, seed=1, dtype=np.float64)
    small = copy.deepcopy(full)
    opt_full, opt_small = make(full.parameters()), make(small.parameters())
    for _ in range(3):  # some history: moments, sums, deferred decay of untouched rows
        dense_grads(full, np.random.default_rng(rng.integers(1 << 30)))
        # the same gradients, but only a few rows of the first weight (row-sparse)
        seed = int(rng.integers(1 << 30))
        for model in (full, small):
            dense_grads(model, np.random.default_rng(seed))
            w = model.linear_layers()[0].weight
            w.set_grad(np.array([1, 4], dtype=np.int64), w.grad[[1, 4]])
        opt_full.step()
        opt_small.step()
    keep = np.array([0, 1, 4, 5, 8], dtype=np.int64)
    first, second = small.linear_layers()
    remove_units(first, second, keep, opt_small)
    seed = int(rng.integers(1 << 30))
    dense_grads(full, np.random.default_rng(seed))
    g = np.random.default_rng(seed)
    grads = {name: g.standard_normal(p.matrix().shape) for name, p in full.named_parameters()}
    opt_full.step()
    small_params = dict(small.named_parameters())
    small_params["0.weight"].set_grad(np.arange(5, dtype=np.int64), grads["0.weight"][keep])
    small_params["0.bias"].set_grad(np.zeros(1, dtype=np.int64), grads["0.bias"][:, keep])
    small_params["2.weight"].set_grad(np.arange(4, dtype=np.int64), grads["2.weight"][:, keep])
    small_params["2.bias"].set_grad(np.zeros(1, dtype=np.int64), grads["2.bias"])
    opt_small.step()
    got = small.state_dict()
    want = full.state_dict()
    np.testing.assert_array_equal(got["0.weight"], want["0.weight"][keep])
    np.testing.assert_array_equal(got["0.bias"], want["0.bias"][keep])
    np.testing.assert_array_equal(got["2.weight"], want["2.weight"][:, keep])
    np.testing.assert_array_equal(got["2.bias"], want["2.bias"])


def test_reset_makes_the_optimizer_new():
    model = mlp([5, 9, 4], k=3, seed=1, dtype=np.float64)
    opt = Adam(model.parameters(), lr=0.01, lazy=True)
    dense_grads(model, np.random.default_rng(0))
    opt.step()
    opt.reset()
    fresh = Adam(model.parameters(), lr=0.01, lazy=True)
    assert opt.steps == 0
    for name, array in fresh.state_dict().items():
        np.testing.assert_array_equal(opt.state_dict()[name], array, err_msg=name)


def test_an_optimizer_refuses_a_parameter_it_does_not_update():
    model = mlp([5, 9, 4], k=3)
    other = mlp([5, 9, 4], k=3)
    opt = Adam(model.parameters())
    with pytest.raises(ValueError, match="not one this optimizer updates"):
        opt.take(other.parameters()[0], rows=np.arange(2))


def test_selection_state_follows_the_units():
    sel = Selection(10, 4, memory_decay=0.8)
    sel.memory_for(np.dtype(np.float32))[:] = np.arange(10)
    sel.track_hits()
    sel.hits[:] = np.arange(10) * 2
    sel.keep(np.array([1, 5, 7], dtype=np.int64))
    assert (sel.n, sel.k) == (3, 3)  # k never exceeds the units left: the layer is now dense
    assert not sel.dense  # but it stays a meProp layer in reports
    np.testing.assert_array_equal(sel.memory, [1, 5, 7])
    np.testing.assert_array_equal(sel.hits, [2, 10, 14])
    for bad in ([], [3], [2, 1], [[0]]):
        with pytest.raises(ValueError, match="units to keep"):
            sel.keep(np.array(bad, dtype=np.int64))


def test_simplify_removes_the_seldom_selected_units():
    model = mlp([6, 10, 4], k=2, seed=0)
    opt = Adam(model.parameters())
    first = model.linear_layers()[0]
    first.selection.track_hits()
    first.selection.hits[:] = [0, 5, 1, 9, 0, 3, 2, 0, 7, 4]
    first.selection.hit_examples = 20  # threshold int(20 * 0.1) = 2
    assert simplify(model, 0.1, opt) == [6]
    np.testing.assert_array_equal(first.selection.hits, np.zeros(6))
    assert first.selection.hit_examples == 0
    assert opt.m[0].shape == (6, 6) and opt.m[2].shape == (4, 6) and opt.decay1[0].shape == (6,)


# ---- in the trainer ---------------------------------------------------------------------

N_FEATURES, N_CLASSES, HIDDEN = 20, 3, 32


def toy_splits(seed=99) -> Splits:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((N_CLASSES, N_FEATURES))

    def draw(n):
        y = rng.integers(0, N_CLASSES, n)
        return ArrayDataset((centers[y] + 0.8 * rng.standard_normal((n, N_FEATURES))).astype(np.float32), y)

    return Splits(draw(200), draw(60), draw(60))


SPLITS = toy_splits()


def make_trainer(out, epochs=4, cycle=1, reset=True, time_forward=False, checkpoint_every=7):
    model = mlp([N_FEATURES, HIDDEN, HIDDEN, N_CLASSES], k=4, seed=0, dropout=0.1)
    opt = Adam(model.parameters(), lr=0.01, lazy=True)
    config = SimplifyConfig(fraction=0.2, per_epoch=3, cycle=cycle, reset_optimizer=reset)
    simplifier = Simplifier(config, model, opt, time_forward=time_forward)
    train = TrainConfig(epochs=epochs, batch_size=10, seed=0, checkpoint_every=checkpoint_every, progress=False)
    info = {"task": "toy", "simplify": {"fraction": 0.2}}
    return Trainer(model, opt, SPLITS, train, out, info, simplifier=simplifier)


def test_the_schedule_follows_the_cycles():
    model = mlp([4, 8, 2], k=2)
    s = Simplifier(SimplifyConfig(cycle=5), model, Adam(model.parameters()), time_forward=False)
    assert [s.simplifies_in(e) for e in range(12)] == [True] * 5 + [False] * 5 + [True] * 2
    assert s.points(100) == {12, 25, 38, 50, 62, 75, 88, 100}
    assert s.points(3) == {1, 2, 3}  # fewer steps than points: after every step
    every = Simplifier(SimplifyConfig(cycle=0), model, Adam(model.parameters()), time_forward=False)
    assert all(every.simplifies_in(e) for e in range(20))


def test_training_shrinks_the_model_and_reports_it(tmp_path):
    trainer = make_trainer(tmp_path, time_forward=True)
    summary = trainer.fit()
    simplified = summary["simplify"]
    assert simplified["initial_sizes"] == [HIDDEN, HIDDEN]
    final = simplified["final_sizes"]
    assert all(4 <= size < HIDDEN for size in final), final  # k=4: below 4 units nothing is ever dropped
    assert simplified["history"] and simplified["history"][-1]["sizes"] == final
    assert [r["hidden_sizes"] for r in summary["history"]][-1] == final
    sizes_at_best = simplified["sizes_at_best"]
    assert trainer.model.linear_layers()[0].out_features == sizes_at_best[0]  # the best model is loaded
    assert [f["batch"] for f in simplified["forward"]] == [10, 1000]
    assert all(f["simplified_us"] > 0 and f["original_us"] > 0 for f in simplified["forward"])
    assert summary["test_at_best_dev"] > 0.5
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["simplify"]["final_sizes"] == final


def test_the_optimizer_restarts_when_a_cycle_ends(tmp_path):
    trainer = make_trainer(tmp_path, epochs=2, cycle=2)
    trainer.fit()
    assert trainer.optimizer.steps == 0  # reset after epoch 2, the end of the first cycle
    kept = make_trainer(tmp_path / "no-reset", epochs=2, cycle=2, reset=False)
    kept.fit()
    assert kept.optimizer.steps == 40


class HardKill(BaseException):
    pass


def kill_after(trainer, steps):
    original, done = trainer._train_step, [0]

    def step(x, y):
        if done[0] == steps:
            raise HardKill
        done[0] += 1
        original(x, y)

    trainer._train_step = step


@pytest.mark.parametrize("kill", [13, 29, 47])
def test_resume_across_simplifications_is_bit_identical(tmp_path, kill):
    want = make_trainer(tmp_path / "want")
    want_summary = want.fit()
    got_dir = tmp_path / "got"
    dying = make_trainer(got_dir)
    kill_after(dying, kill)
    with pytest.raises(HardKill):
        dying.fit()
    _, meta = load_checkpoint(got_dir / "checkpoint.npz")
    assert meta["simplify"] or kill < 20  # a simplification before the checkpoint
    resumed = make_trainer(got_dir)  # a fresh process: the model at its original size
    got_summary = resumed.fit(resume=True)
    want_arrays, _ = load_checkpoint(tmp_path / "want" / "checkpoint.npz")
    got_arrays, _ = load_checkpoint(got_dir / "checkpoint.npz")
    assert sorted(got_arrays) == sorted(want_arrays)
    for name, array in want_arrays.items():
        assert np.array_equal(got_arrays[name], array), name
    for name, array in want.model.state_dict().items():
        assert np.array_equal(resumed.model.state_dict()[name], array), name
    assert got_summary["simplify"]["history"] == want_summary["simplify"]["history"]
    assert got_summary["test_at_best_dev"] == want_summary["test_at_best_dev"]


def test_resume_without_the_simplifier_is_refused(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    model = mlp([N_FEATURES, HIDDEN, HIDDEN, N_CLASSES], k=4, seed=0, dropout=0.1)
    opt = Adam(model.parameters(), lr=0.01, lazy=True)
    train = TrainConfig(epochs=2, batch_size=10, seed=0, checkpoint_every=7, progress=False)
    plain = Trainer(model, opt, SPLITS, train, tmp_path, {"task": "toy"})
    with pytest.raises(CheckpointError):
        plain.fit(resume=True)


def test_a_simplifier_needs_meprop_layers_and_the_trainers_optimizer(tmp_path):
    dense = mlp([4, 8, 2], k=None)
    with pytest.raises(ValueError, match="dense"):
        Simplifier(SimplifyConfig(), dense, Adam(dense.parameters()))
    single = mlp([4, 2], k=1)
    with pytest.raises(ValueError, match="hidden linear layer"):
        Simplifier(SimplifyConfig(), single, Adam(single.parameters()))
    model = mlp([4, 8, 2], k=2)
    simplifier = Simplifier(SimplifyConfig(), model, Adam(model.parameters()), time_forward=False)
    train = TrainConfig(epochs=1, progress=False)
    with pytest.raises(ValueError, match="the trainer's optimizer"):
        Trainer(model, Adam(model.parameters()), SPLITS, train, tmp_path, simplifier=simplifier)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.0}, "fraction"),
        ({"per_epoch": 0}, "per epoch"),
        ({"per_epoch": 2.5}, "per epoch"),
        ({"cycle": -1}, "cycle"),
        ({"cycle": True}, "cycle"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimplifyConfig(**kwargs)


def test_a_best_model_of_another_size_loads_into_a_resized_model():
    model = mlp([6, 10, 4], k=2, seed=0)
    small = copy.deepcopy(model)
    first, second = small.linear_layers()
    remove_units(first, second, np.array([1, 2, 7], dtype=np.int64), None)
    state = small.state_dict()
    model.resize_like(state)
    model.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), small.forward(x))
    big = mlp([6, 10, 4], k=2, seed=5).state_dict()
    model.resize_like(big)  # and back to the full size
    model.load_state_dict(big)
    assert model.linear_layers()[0].out_features == 10
