"""A lookup table whose gradient touches only the looked-up rows."""

from __future__ import annotations

import numpy as np

from .module import Module
from .parameter import Parameter


class Embedding(Module):
    """``forward(ids)`` returns ``weight[ids]``: (N,) int -> (N, dim).

    The gradient is in row form, like every parameter here: the distinct ids
    of the batch (ascending) and the sum of dy over each id's occurrences, so
    an optimizer step costs O(rows used), not O(vocabulary). Initialisation:
    standard normal scaled by ``scale`` (0.1 by default: no pretrained vectors).
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        rng: np.random.Generator | None = None,
        dtype: type = np.float32,
        scale: float = 0.1,
        name: str = "weight",
    ) -> None:
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"embedding sizes must be >= 1, got {num_embeddings} x {dim}")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.weight = Parameter(name, (scale * rng.standard_normal((num_embeddings, dim))).astype(dtype))
        self._ids: np.ndarray | None = None

    @property
    def num_embeddings(self) -> int:
        return self.weight.value.shape[0]

    def forward(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} with shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), got {ids.min()}..{ids.max()}")
        self._ids = ids.astype(np.int64)
        return self.weight.value[self._ids]

    def backward(self, dy: np.ndarray, input_grad: bool = False) -> None:
        if self._ids is None:
            raise RuntimeError("Embedding.backward called before forward")
        rows, inverse = np.unique(self._ids, return_inverse=True)
        grad = np.zeros((rows.size, self.weight.value.shape[1]), dtype=self.weight.value.dtype)
        np.add.at(grad, inverse.reshape(-1), np.asarray(dy, dtype=grad.dtype))
        self.weight.set_grad(rows.astype(np.int64), grad)
        return None

    def parameters(self) -> list[Parameter]:
        return [self.weight]
