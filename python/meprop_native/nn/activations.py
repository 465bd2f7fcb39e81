"""Element-wise activations; their backward stays dense, as in the paper."""

from __future__ import annotations

import numpy as np

from .module import Module


class ReLU(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        return np.maximum(x, 0)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dy * self._positive if input_grad else None


class Tanh(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dy * (1 - self._y * self._y) if input_grad else None


class Sigmoid(Module):
    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp of a non-positive number never overflows: split by sign.
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self._y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dy * self._y * (1 - self._y) if input_grad else None


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
