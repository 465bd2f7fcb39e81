"""A trainable array and its gradient, kept in row form."""

from __future__ import annotations

import numpy as np

from .. import _core


class Parameter:
    """A weight or bias array, updated in place by the optimizers.

    The gradient is stored as rows because meProp touches few rows of W:
    ``grad_rows`` (int64, ascending) names them and ``grad`` holds their
    values, shape ``(len(grad_rows), cols)``. A 1-D parameter (a bias) is one
    row. ``grad_rows is None`` means no gradient since the last step.

    A layer may hand over its weight gradient deferred (a
    ``_core.WeightGradient``, see ``Linear(fused_update=True)``): the
    optimizer then computes each row while updating it, and ``grad`` computes
    the rows on first reading for anything else that asks.
    """

    def __init__(self, name: str, value: np.ndarray) -> None:
        self.name = name
        self.value = value
        self.grad_rows: np.ndarray | None = None
        self._grad: np.ndarray | _core.WeightGradient | None = None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"

    @property
    def grad(self) -> np.ndarray | None:
        """The gradient rows, (len(grad_rows), cols); a deferred gradient is computed here, once."""
        if isinstance(self._grad, _core.WeightGradient):
            self._grad = self._grad.materialize()
        return self._grad

    @property
    def update_grad(self) -> np.ndarray | _core.WeightGradient | None:
        """The gradient as the optimizer takes it: the rows, or still deferred."""
        return self._grad

    def matrix(self) -> np.ndarray:
        """The value as a 2-D view (a bias becomes one row); shares memory."""
        return self.value if self.value.ndim == 2 else self.value.reshape(1, -1)

    def set_grad(self, rows: np.ndarray, grad: np.ndarray | _core.WeightGradient) -> None:
        """Sets the gradient: rows (m,) int64 ascending, grad (m, cols) of the value's dtype (or deferred)."""
        self.grad_rows = rows
        self._grad = grad

    def zero_grad(self) -> None:
        """Forgets the gradient (grad_rows = grad = None)."""
        self.grad_rows = None
        self._grad = None

    def dense_grad(self) -> np.ndarray:
        """The full gradient, zero where no row was touched (for checks)."""
        full = np.zeros_like(self.matrix())
        if self.grad_rows is not None:
            full[self.grad_rows] = self.grad
        return full.reshape(self.value.shape)
