"""Element-wise activations; their backward stays dense, as in the paper."""

from __future__ import annotations

import numpy as np

from .. import _core
from .module import Module


class ReLU(Module):
    """max(x, 0), element-wise; any shape, dtype kept (float32 and float64 natively)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Returns max(x, 0) and remembers it for the backward (where it is > 0, x was)."""
        if x.dtype not in _NATIVE:
            self._y = np.maximum(x, 0)
        else:
            self._y = _core.relu_forward(x)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dx = dy where x > 0, else 0 (shape of dy); None when input_grad is False."""
        if not input_grad:
            return None
        if dy.dtype != self._y.dtype or self._y.dtype not in _NATIVE:
            return dy * (self._y > 0)
        return _core.relu_backward(dy, self._y)


# One native pass each instead of two NumPy operations (docs/benchmarks.md).
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


class Tanh(Module):
    """tanh(x), element-wise; any shape, dtype kept."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Returns tanh(x) and remembers it for the backward."""
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dx = dy * (1 - tanh(x)^2) (shape of dy); None when input_grad is False."""
        return dy * (1 - self._y * self._y) if input_grad else None


class Sigmoid(Module):
    """1 / (1 + exp(-x)), element-wise and overflow-free; any shape, dtype kept."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Returns sigmoid(x) and remembers it for the backward."""
        # exp of a non-positive number never overflows: split by sign.
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dx = dy * s * (1 - s) with s = sigmoid(x); None when input_grad is False."""
        return dy * self._y * (1 - self._y) if input_grad else None


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
