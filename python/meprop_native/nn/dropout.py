"""Inverted dropout: scale at training time so evaluation is the identity."""

from __future__ import annotations

import numpy as np

from .module import Module


class Dropout(Module):
    """Zeroes each input with probability p during training.

    The generator is the layer's own, so its state can be checkpointed and a
    resumed run draws the same masks as an uninterrupted one.
    """

    def __init__(self, p: float, rng: np.random.Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self._mask: np.ndarray | None = None

    def random_generators(self) -> list[np.random.Generator]:
        return [self.rng]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x * mask / (1 - p) in training (any shape, dtype kept); x itself in evaluation."""
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        world = self.world
        if world is not None and world.distributed:
            # The mask of the whole global batch, as one process draws it,
            # and this rank's rows of it: the same masks whatever the ranks.
            lo, hi = world.shard(world.batch_rows)
            keep = (self.rng.random((world.batch_rows, *x.shape[1:])) >= self.p)[lo:hi]
        else:
            keep = self.rng.random(x.shape) >= self.p
        self._mask = keep.astype(x.dtype) / (1.0 - self.p)
        return x * self._mask

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dy through the forward's mask and scale; None when input_grad is False."""
        if not input_grad:
            return None
        return dy if self._mask is None else dy * self._mask
