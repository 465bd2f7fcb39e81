"""``meprop bench``: every case and contender is timed and reported, the
figures are consistent, and bad options fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meprop_native.bench.cases import CASES, NumpyMlp, Shape, dense_backward, numpy_topk
from meprop_native.cli import main
from meprop_native.nn import softmax_cross_entropy


def run(args, capsys):
    try:
        code = main(["bench", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bench_times_every_case_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--quick", "--rounds", "2", "--shapes", "20x12,9x7", "--batch", "4", "--k", "3", "--threads", "1"]
    code, stdout, _ = run([*args, "--no-torch", "--out", out, "--plot", tmp_path / "bench.png"], capsys)
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["settings"]["shapes"] == ["20x12", "9x7"] and payload["settings"]["threads"] == 1
    assert payload["machine"]["cpu_model"]
    results = payload["results"]
    assert [(r["shape"], r["case"]) for r in results] == [
        (shape, case) for shape in ("20x12 B=4 k=3", "9x7 B=4 k=3") for case in CASES
    ]
    for r in results:
        assert "torch" not in r["contenders"] and "numpy" in r["contenders"]
        meprop = r["contenders"]["meprop"]
        assert meprop["meprop_speedup"] == 1.0 and len(meprop["round_medians_ns"]) == 2
        for c in r["contenders"].values():
            assert c["median_ns"] > 0 and c["meprop_speedup"] > 0
    assert "training step" in stdout and "faster" in stdout


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--shapes", "784by500"], "n_in x n_out"),
        (["--shapes", "0x5"], ">= 1"),
        (["--k", "0"], "--k"),
        (["--shapes", "10x5", "--k", "6"], "more than the 5 outputs"),
        (["--threads", "5000"], "--threads"),
    ],
)
def test_bad_options_fail_clearly(tmp_path, capsys, bad, message):
    code, _, err = run([*bad, "--quick", "--out", tmp_path / "b.json"], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "b.json").exists()


def test_numpy_baselines_compute_what_they_claim(rng):
    a = rng.standard_normal((3, 8))
    np.testing.assert_array_equal(np.sort(numpy_topk(a, 2), axis=1), np.sort(np.argsort(-np.abs(a))[:, :2], axis=1))
    dy, x, W = rng.standard_normal((3, 4)), rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    dx, dW, db = dense_backward(dy, x, W)
    np.testing.assert_allclose(dW, np.einsum("bo,bi->oi", dy, x))
    np.testing.assert_allclose(dx, np.einsum("bo,oi->bi", dy, W))
    np.testing.assert_allclose(db, dy.sum(0))


def test_numpy_mlp_baseline_learns(rng):
    # The NumPy step is a real training step: its loss falls on a separable problem.
    x = rng.standard_normal((32, 6))
    y = (x[:, 0] > 0).astype(np.int64)
    model = NumpyMlp([6, 8, 8, 2], np.float64, rng)

    def loss():
        h = x
        for i in range(0, len(model.params), 2):
            h = h @ model.params[i].T + model.params[i + 1]
            h = np.maximum(h, 0) if i + 2 < len(model.params) else h
        return softmax_cross_entropy(h, y)[0]

    before = loss()
    for _ in range(200):
        model.step(x, y, lr=1e-2)
    assert loss() < 0.5 * before


def test_cases_build_for_float64(rng):
    shape = Shape(6, 5, 2, 2, np.float64)
    for build in CASES.values():
        calls = build(shape, rng, None)
        assert next(iter(calls)) == "meprop"
        for pool in calls.values():
            pool[0]()


def test_the_training_step_has_the_torch_loops_when_torch_is_there(rng):
    torch = pytest.importorskip("torch")
    cases = CASES["training step"](Shape(20, 12, 4, 3, np.float32), rng, torch)
    assert {"torch", "torch meprop"} <= set(cases)
    for call in cases["torch meprop"][:3]:  # the drop-in loop runs: row-sparse gradients, the native Adam
        call()
