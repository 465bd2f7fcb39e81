"""The compact form of the sparse linear backward."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _core


class CompactGradients(NamedTuple):
    """Gradients of y = x W^T + b with dW kept as its touched rows only.

    dx:       (B, n_in)  gradient of the input (None when input_grad=False).
    rows:     (m,) int64 ascending ids of the rows of W that got gradient.
    dW_rows:  (m, n_in)  those rows' gradients: dW[rows] = dW_rows, other rows 0.
    db:       (n_out,)   gradient of the bias.
    """

    dx: np.ndarray | None
    rows: np.ndarray
    dW_rows: np.ndarray
    db: np.ndarray

    def dense_dW(self, n_out: int) -> np.ndarray:
        """The full (n_out, n_in) dW, zero where no gradient arrived."""
        dW = np.zeros((n_out, self.dW_rows.shape[1]), dtype=self.dW_rows.dtype)
        dW[self.rows] = self.dW_rows
        return dW


def linear_backward_compact(
    dy: ArrayLike,
    x: ArrayLike,
    W: ArrayLike,
    k: int | None = None,
    mode: str = "per_example",
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    input_grad: bool = True,
    memory: np.ndarray | None = None,
    memory_decay: float = 1.0,
    indices: ArrayLike | None = None,
    counts: np.ndarray | None = None,
) -> CompactGradients:
    """meProp backward of ``y = x @ W.T + b`` returning only the touched rows of dW.

    Same arguments and rules as :func:`linear_backward`. Only the rows of W
    that some kept entry of dy points at are computed and stored: at most
    ``B * k`` rows for ``per_example``, exactly ``k`` for ``unified``. This is
    the form to use in training loops; the dense dW of :func:`linear_backward`
    costs a write of the whole matrix. ``input_grad=False`` skips dx (a
    network's first layer needs none) and returns ``dx=None``.

    ``memory`` (n_out,), writable, of the inputs' dtype: error feedback's
    memory, updated in place with ``memory_decay`` in [0, 1]. ``indices``: the
    kept entries instead of a top-k ((B, k) per example, (k,) unified; then
    ``k`` is None). ``counts`` (n_out,) int64, writable: ``counts[j]`` grows by
    the examples whose kept entries include column j (meSimp's record).
    docs/python-api.md gives the rules.
    """
    dx, rows, dW_rows, db = _core.linear_backward_compact(
        dy,
        x,
        W,
        k,
        mode,
        input_grad,
        bias_grad=bias_grad,
        method=method,
        memory=memory,
        memory_decay=memory_decay,
        indices=indices,
        counts=counts,
    )
    assert isinstance(dW_rows, np.ndarray)  # computed: not deferred
    return CompactGradients(dx, rows, dW_rows, db)
