"""Fuzz harness: the LSTM layer's forward and backward (dense, meProp over all
4H gate entries or per gate, with and without error feedback through time,
variable lengths including empty sequences, both dtypes) against the float64
reference of tests/conftest.py.

    python tests/fuzz/fuzz_lstm.py -max_total_time=60

Where the reference's selection is a near-tie (the kernel's rounding could
choose either entry), only what holds for either choice is checked: shapes,
dtypes, finite results and a gradient confined to rows that may be kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import reference_lstm

from fuzz._bytes import Bytes, fuzz_main
from meprop_native.nn import LSTM, offsets_from_lengths

TOL = {np.float64: 1e-9, np.float32: 3e-4}
# A selection whose gap (relative to the largest magnitude) is below this may
# go either way between a float32 kernel and the float64 reference.
CLEAR_GAP = {np.float64: 1e-9, np.float32: 1e-3}


def close(got, want, dtype, what, size=0.0):
    """Within the dtype's tolerance of the larger of the result and the sum of
    its terms' magnitudes (a result that cancels to near zero still carries
    the rounding of its terms)."""
    scale = 1.0 + max(float(np.max(np.abs(want), initial=0.0)), size)
    error = float(np.max(np.abs(np.asarray(got, np.float64) - want), initial=0.0))
    assert error <= TOL[dtype] * scale, f"{what}: off by {error:.3g} at scale {scale:.3g}"


def check(data: bytes) -> None:
    source = Bytes(data)
    lengths = [source.int_in(0, 5) for _ in range(source.int_in(1, 3))]
    n_in, H = source.int_in(1, 6), source.int_in(1, 6)
    per_gate = source.int_in(0, 3) == 0
    k = source.int_in(1, H if per_gate else 4 * H)
    dense = source.int_in(0, 5) == 0
    decay = source.choice((0.0, 0.0, 0.5, 1.0))
    dtype = source.choice((np.float32, np.float64))
    # Mostly moderate pre-activations: saturated gates make every selection a tie at zero.
    scale = dtype(source.choice((1.0, 1 / 16, 1 / 64, 1 / 256)))
    offsets = offsets_from_lengths(lengths)
    N = int(offsets[-1])
    layer = LSTM(n_in, H, None if dense else k, dtype=dtype, per_gate=per_gate, memory_decay=decay)
    for p in layer.parameters():
        p.value[...] = source.floats(p.value.shape, dtype, finite=True) * scale
    x = source.floats((N, n_in), dtype, finite=True) * scale
    dh = source.floats((N, H), dtype, finite=True)

    h = layer.forward(x, offsets)
    if N == 0:  # nothing to back-propagate: a named error, as for an empty batch of Linear
        try:
            layer.backward(dh)
        except ValueError as error:
            assert "no rows" in str(error)
            return
        raise AssertionError("the backward of no time steps did not raise")
    dx = layer.backward(dh)
    assert h.shape == (N, H) and dx.shape == (N, n_in)
    assert h.dtype == dtype and dx.dtype == dtype
    assert np.isfinite(h).all() and np.isfinite(dx).all()
    for p in layer.parameters():
        assert p.grad is None or (p.grad.dtype == dtype and np.isfinite(p.grad).all()), p.name
    rows = layer.weight_hh.grad_rows
    if rows is not None:
        assert (np.diff(rows) > 0).all() and (rows.size == 0 or (rows[0] >= 0 and rows[-1] < 4 * H))

    selective = not dense and k < (H if per_gate else 4 * H)
    gaps: list[float] = []
    sizes: dict[str, float] = {}
    ref = reference_lstm(
        x,
        layer.weight_ih.value,
        layer.weight_hh.value,
        layer.bias.value,
        offsets,
        dh,
        k if selective else None,
        per_gate=per_gate,
        memory_decay=decay if selective else 0.0,
        gaps=gaps,
        sizes=sizes,
    )
    close(h, ref[0], dtype, "h")
    if gaps and min(gaps) < CLEAR_GAP[dtype]:
        return  # a near-tie: either selection is right
    close(dx, ref[1], dtype, "dx", sizes["dx"])
    close(layer.weight_ih.dense_grad(), ref[2], dtype, "dW_ih", sizes["dW_ih"])
    close(layer.weight_hh.dense_grad(), ref[3], dtype, "dW_hh", sizes["dW_hh"])
    close(layer.bias.dense_grad(), ref[4], dtype, "db", sizes["db"])
    if selective and N > 0:
        np.testing.assert_array_equal(rows, np.flatnonzero(ref[5].any(axis=0)))


if __name__ == "__main__":
    fuzz_main(check)
