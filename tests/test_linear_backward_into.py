"""_core.linear_backward_into (the PyTorch function's kernel) against the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BIAS_GRADS, DTYPES, MODES, Reference, assert_close, random_problem

from meprop_native import _core

# (B, n_in, n_out, k)
SHAPES = [(1, 1, 1, 1), (1, 7, 5, 1), (1, 7, 5, 5), (3, 13, 17, 4), (32, 784, 500, 20), (64, 600, 300, 30)]
OUTPUTS = ("dx_out", "dW_out", "db_out")


def buffers(B, n_in, n_out, dtype, which=OUTPUTS):
    """Output buffers full of NaN, so that any entry left unwritten shows."""
    shapes = {"dx_out": (B, n_in), "dW_out": (n_out, n_in), "db_out": (n_out,)}
    return {name: np.full(shapes[name], np.nan, dtype) for name in which}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias_grad", BIAS_GRADS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}_in{}_out{}_k{}".format(*s))
def test_against_reference(shape, mode, bias_grad, dtype, rng):
    B, n_in, n_out, k = shape
    dy, x, W = random_problem(rng, B, n_in, n_out, dtype)
    ref = Reference(dy, x, W, k, mode, bias_grad)
    out = buffers(B, n_in, n_out, dtype)
    assert _core.linear_backward_into(dy, x, W, k, mode, bias_grad=bias_grad, **out) is None
    assert_close(out["dx_out"], ref.dx, ref.dx_scale, dtype, "dx")
    assert_close(out["dW_out"], ref.dW, ref.dW_scale, dtype, "dW")
    assert_close(out["db_out"], ref.db, ref.db_scale, dtype, "db")
    untouched = np.ones(n_out, dtype=bool)
    untouched[ref.rows] = False
    assert not np.any(out["dW_out"][untouched]), "untouched rows of dW must be exactly zero"


@pytest.mark.parametrize("which", [("dx_out",), ("dW_out",), ("db_out",), ("dx_out", "db_out"), ("dW_out", "db_out")])
def test_missing_outputs_are_skipped(which, rng):
    """Given outputs equal the full call's bitwise; the call never needs the others."""
    dy, x, W = random_problem(rng, 8, 30, 40, np.float32)
    full = buffers(8, 30, 40, np.float32)
    _core.linear_backward_into(dy, x, W, 5, **full)
    part = buffers(8, 30, 40, np.float32, which)
    _core.linear_backward_into(dy, x, W, 5, **part)
    for name in which:
        assert part[name].tobytes() == full[name].tobytes(), name


def test_no_outputs_is_a_no_op(rng):
    dy, x, W = random_problem(rng, 2, 3, 4, np.float64)
    assert _core.linear_backward_into(dy, x, W, 2) is None


def test_output_checks(rng):
    dy, x, W = random_problem(rng, 4, 6, 5, np.float32)
    with pytest.raises(TypeError, match="dW_out has dtype float64"):
        _core.linear_backward_into(dy, x, W, 2, dW_out=np.zeros((5, 6)))
    with pytest.raises(ValueError, match="dx_out must have shape"):
        _core.linear_backward_into(dy, x, W, 2, dx_out=np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.linear_backward_into(dy, x, W, 2, dW_out=np.zeros((6, 5), np.float32).T)
    read_only = np.zeros(5, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.linear_backward_into(dy, x, W, 2, db_out=read_only)
    with pytest.raises(ValueError, match="must not overlap dy, x or W"):
        _core.linear_backward_into(dy, x, W, 2, dx_out=x)
    shared = np.zeros(30, np.float32)
    with pytest.raises(ValueError, match="must not overlap each other"):
        _core.linear_backward_into(dy, x, W, 2, dW_out=shared.reshape(5, 6), db_out=shared[:5])
    with pytest.raises(ValueError, match="k must be in"):
        _core.linear_backward_into(dy, x, W, 6, dx_out=np.zeros((4, 6), np.float32))
