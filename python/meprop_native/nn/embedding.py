"""A lookup table whose gradient touches only the looked-up rows."""

from __future__ import annotations

import time

import numpy as np

from .module import Module
from .parameter import Parameter

INITS = ("normal", "uniform")


class Embedding(Module):
    """``forward(ids)`` returns ``weight[ids]``: int ids of any shape S -> S + (dim,).

    The gradient is in row form, like every parameter here: the distinct ids
    of the batch (ascending) and the sum of dy over each id's occurrences, so
    an optimizer step costs O(rows used), not O(vocabulary). Initialisation
    (no pretrained vectors): ``scale`` times a standard normal
    (``init="normal"``, the default) or uniform in [-scale, scale]
    (``init="uniform"``); scale 0.1 by default.
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        rng: np.random.Generator | None = None,
        dtype: type = np.float32,
        scale: float = 0.1,
        name: str = "weight",
        init: str = "normal",
    ) -> None:
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"embedding sizes must be >= 1, got {num_embeddings} x {dim}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        rng = rng if rng is not None else np.random.default_rng(0)
        shape = (num_embeddings, dim)
        values = scale * rng.standard_normal(shape) if init == "normal" else rng.uniform(-scale, scale, shape)
        self.weight = Parameter(name, values.astype(dtype))
        self.backward_seconds = 0.0
        self._ids: np.ndarray | None = None

    @property
    def num_embeddings(self) -> int:
        return self.weight.value.shape[0]

    @property
    def dim(self) -> int:
        return self.weight.value.shape[1]

    def forward(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim < 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"ids must be an integer array of at least 1 dimension, got {ids.dtype} with shape {ids.shape}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"ids must lie in [0, {self.num_embeddings}), got {ids.min()}..{ids.max()}")
        self._ids = ids.astype(np.int64, copy=False)
        return self.weight.value[self._ids]

    def backward(self, dy: np.ndarray, input_grad: bool = False) -> None:
        """dy: the output's gradient (any shape with ids.size * dim entries); ids get none."""
        if self._ids is None:
            raise RuntimeError("Embedding.backward called before forward")
        dy = np.asarray(dy)
        if dy.size != self._ids.size * self.dim:
            raise ValueError(f"dy has {dy.size} entries, expected {self._ids.size} ids x {self.dim}")
        start = time.perf_counter()
        flat = self._ids.ravel()
        if flat.size == 0:  # no ids looked up: no row gets a gradient
            self.weight.set_grad(np.zeros(0, np.int64), np.zeros((0, self.dim), self.weight.value.dtype))
            return
        # Sort the ids, then sum the gradient rows of each run of equal ids in
        # one pass: no scattered read-modify-writes (np.add.at is ~10x slower).
        order = np.argsort(flat, kind="stable")
        ids_sorted = flat[order]
        starts = np.flatnonzero(np.concatenate(([True], ids_sorted[1:] != ids_sorted[:-1])))
        grads = np.add.reduceat(dy.reshape(-1, self.dim)[order], starts, axis=0)
        self.weight.set_grad(ids_sorted[starts], grads.astype(self.weight.value.dtype, copy=False))
        self.backward_seconds += time.perf_counter() - start

    def parameters(self) -> list[Parameter]:
        return [self.weight]
