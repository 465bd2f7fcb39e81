"""Fuzz harness: the sparse linear backward in every mode (per_example,
unified, dense), both bias gradients and both dtypes, against the dense float64
reference of tests/conftest.py (dy masked to the reference top-k).

    python tests/fuzz/fuzz_backward.py -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import BIAS_GRADS, MODES, Reference, check_compact

from fuzz._bytes import Bytes, fuzz_main
from meprop_native import _core


def check(data: bytes) -> None:
    source = Bytes(data)
    B, n_in, n_out = source.int_in(1, 12), source.int_in(1, 40), source.int_in(1, 40)
    k = source.int_in(1, n_out)
    mode, bias_grad = source.choice(MODES), source.choice(BIAS_GRADS)
    dtype = source.choice((np.float32, np.float64))
    # Finite values: a NaN in x or W makes the reference and the kernel agree
    # only up to which NaN, which the comparison cannot express. NaN in dy is
    # the top-k harness's business.
    dy = source.floats((B, n_out), dtype, finite=True)
    x = source.floats((B, n_in), dtype, finite=True)
    W = source.floats((n_out, n_in), dtype, finite=True)
    result = _core.linear_backward_compact(dy, x, W, k, mode, True, bias_grad=bias_grad)
    check_compact(result, Reference(dy, x, W, k, mode, bias_grad), dtype)


if __name__ == "__main__":
    fuzz_main(check)
