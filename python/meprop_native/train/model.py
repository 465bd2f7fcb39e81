"""What the trainer needs of a model, as a type."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..nn.selection import Selection


class TrainableModel(Protocol):
    """The model contract of :class:`~meprop_native.train.Trainer`.

    ``Sequential``, the POS tagger and the parser satisfy it; so does any
    object with these members. Time is read as a property everywhere in the
    library: ``layer.backward_seconds`` and ``model.backward_seconds`` alike.
    """

    def forward(self, inputs: Any) -> np.ndarray:
        """Logits (M, C) for a batch of inputs; caches what backward needs."""
        ...

    def backward(self, dlogits: np.ndarray) -> object:
        """Back-propagates the loss gradient, leaving gradients on the parameters."""
        ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...

    def train(self, mode: bool = True) -> object: ...

    def eval(self) -> object: ...

    @property
    def backward_seconds(self) -> float:
        """Cumulative seconds in the linear layers' backward kernels (the paper's "backprop time")."""
        ...

    def random_generators(self) -> list[np.random.Generator]:
        """Generators whose state a checkpoint keeps."""
        ...

    def selections(self) -> list[Selection]:
        """The meProp selections, in a fixed order (for kept fractions and checkpoints)."""
        ...
