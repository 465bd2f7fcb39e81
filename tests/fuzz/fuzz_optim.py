"""Fuzz harness: SGD, AdaGrad and Adam (every-row with its deferred decay, and
lazy) over fuzzed sequences of row-sparse gradients, with clipping, both
dtypes and a state-dict round trip in the middle, against the NumPy optimizers
of tests/conftest.py; and malformed row sets (unsorted, repeated, out of
range), which must raise ValueError and change nothing.

    python tests/fuzz/fuzz_optim.py -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import NumpyOptimizer

from fuzz._bytes import Bytes, fuzz_main
from meprop_native.nn import Parameter
from meprop_native.optim import OPTIMIZERS

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-11}, np.float32: {"rtol": 5e-5, "atol": 5e-5}}


def rows_of(source: Bytes, n_rows: int) -> np.ndarray:
    """A set of rows: mostly well formed (ascending, unique), sometimes not."""
    mask = np.array([source.int_in(0, 2) == 0 for _ in range(n_rows)])
    rows = np.flatnonzero(mask).astype(np.int64)
    damage = source.int_in(0, 15)
    if damage == 0 and rows.size >= 2:
        return rows[::-1].copy()  # descending
    if damage == 1 and rows.size >= 1:
        return np.append(rows, rows[-1])  # repeated
    if damage == 2:
        return np.append(rows, n_rows + source.int_in(0, 3))  # past the end
    if damage == 3:
        return np.insert(rows, 0, -1 - source.int_in(0, 3))  # negative
    return rows


def well_formed(rows: np.ndarray, n_rows: int) -> bool:
    return bool((np.diff(rows) > 0).all() and (rows.size == 0 or (rows[0] >= 0 and rows[-1] < n_rows)))


def check(data: bytes) -> None:
    source = Bytes(data)
    name = source.choice(("sgd", "adagrad", "adam", "adam"))
    lazy = name == "adam" and source.int_in(0, 1) == 1
    dtype = source.choice((np.float32, np.float64))
    lr = source.choice((1e-3, 0.05, 1.0))
    clip = source.choice((0.0, 0.0, 0.5, 5.0))
    shapes = [(source.int_in(1, 6), source.int_in(1, 4)) for _ in range(source.int_in(1, 3))]
    params = [Parameter("weight", source.floats(shape, dtype, finite=True)) for shape in shapes]
    kwargs = {"lr": lr, "clip": clip, **({"lazy": lazy} if name == "adam" else {})}
    optimizer = OPTIMIZERS[name](params, **kwargs)
    ref_params = [p.value.astype(np.float64) for p in params]
    ref = NumpyOptimizer(name, shapes, lr, clip, lazy)

    for step in range(source.int_in(1, 8)):
        if step == 3:  # a state-dict round trip must continue identically
            state = optimizer.state_dict()
            optimizer = OPTIMIZERS[name](params, **kwargs)
            optimizer.load_state_dict(state)
        grads = []
        for p in params:
            rows = rows_of(source, p.value.shape[0])
            grad = source.floats((rows.size, p.value.shape[1]), dtype, finite=True)
            p.set_grad(rows, grad)
            grads.append((rows, grad))
        if not all(well_formed(rows, p.value.shape[0]) for p, (rows, _) in zip(params, grads)):
            before = [p.value.copy() for p in params]
            try:
                optimizer.step()
            except ValueError:
                pass
            else:
                raise AssertionError("a malformed row set was accepted")
            for p, b in zip(params, before):
                np.testing.assert_array_equal(p.value, b)  # nothing changed
            return
        optimizer.step()
        ref.step(ref_params, [(rows, grad.astype(np.float64)) for rows, grad in grads])
    for p, r in zip(params, ref_params):
        assert p.value.dtype == dtype
        np.testing.assert_allclose(p.value, r, **TOL[dtype])


if __name__ == "__main__":
    fuzz_main(check)
