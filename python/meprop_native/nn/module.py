"""The interface every layer implements."""

from __future__ import annotations

import numpy as np

from ..distributed.world import World
from .parameter import Parameter
from .selection import Selection


class Module:
    """A layer: ``forward`` caches what ``backward`` needs.

    ``backward(dy, input_grad)`` returns the gradient of the input (or None
    when ``input_grad`` is False, which lets a first layer skip that work) and
    stores parameter gradients on the parameters.
    """

    training: bool = True
    # The processes of a data-parallel run (None: this process alone); set by
    # the model's use_world().
    world: World | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for a batch x; caches what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """Gradient of the input for dy (shape of the output), or None if not input_grad."""
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        """The layer's trainable parameters (none by default)."""
        return []

    def selections(self) -> list[Selection]:
        """The meProp selections of the layer and its sublayers, in a fixed order (none by default)."""
        return []

    def random_generators(self) -> list[np.random.Generator]:
        """Generators whose state a checkpoint must keep (dropout masks, ...)."""
        return []

    def train(self, mode: bool = True) -> Module:
        """Training mode (mode=True) or evaluation mode; returns self."""
        self.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off); returns self."""
        return self.train(False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)
