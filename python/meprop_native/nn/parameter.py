"""A trainable array and its gradient, kept in row form."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Parameter:
    """A weight or bias array, updated in place by the optimizers.

    The gradient is stored as rows because meProp touches few rows of W:
    ``grad_rows`` (int64, ascending) names them and ``grad`` holds their
    values, shape ``(len(grad_rows), cols)``. A 1-D parameter (a bias) is one
    row. ``grad_rows is None`` means no gradient since the last step.
    """

    name: str
    value: np.ndarray
    grad_rows: np.ndarray | None = field(default=None, repr=False)
    grad: np.ndarray | None = field(default=None, repr=False)

    def matrix(self) -> np.ndarray:
        """The value as a 2-D view (a bias becomes one row); shares memory."""
        return self.value if self.value.ndim == 2 else self.value.reshape(1, -1)

    def set_grad(self, rows: np.ndarray, grad: np.ndarray) -> None:
        """Sets the gradient: rows (m,) int64 ascending, grad (m, cols) of the value's dtype."""
        self.grad_rows = rows
        self.grad = grad

    def zero_grad(self) -> None:
        """Forgets the gradient (grad_rows = grad = None)."""
        self.grad_rows = None
        self.grad = None

    def dense_grad(self) -> np.ndarray:
        """The full gradient, zero where no row was touched (for checks)."""
        full = np.zeros_like(self.matrix())
        if self.grad_rows is not None:
            full[self.grad_rows] = self.grad
        return full.reshape(self.value.shape)
