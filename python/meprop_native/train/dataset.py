"""What the trainer iterates over: datasets of (model inputs, labels) and evaluators.

A task gives the trainer three datasets (train, dev, test). ``batch(indices)``
returns whatever the task's model takes as input, and one int label per row of
the logits the model returns for it: an MLP gets an (M, features) array and M
labels, a tagger gets one sentence and one label per token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Dataset(Protocol):
    """Examples addressed by position; the trainer shuffles positions."""

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> tuple[Any, np.ndarray]:
        """(inputs for ``model.forward``, int64 labels, one per logits row)."""
        ...


class ArrayDataset:
    """Rows of ``x`` (N, ...) with labels ``y`` (N,) of an integer dtype."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"x must have one row per label: x {x.shape}, y {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {y.dtype}")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[indices], self.y[indices]


class Splits(NamedTuple):
    """The three datasets of the paper's protocol."""

    train: Dataset
    dev: Dataset
    test: Dataset


# Called with the model in evaluation mode; returns named scores, higher is better.
Evaluator = Callable[[Any, Dataset], "dict[str, float]"]


def accuracy_evaluator(batch_size: int = 1000) -> Evaluator:
    """Share of rows whose argmax of the logits is the label, as {"accuracy": a}."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def evaluate(model: Any, data: Dataset) -> dict[str, float]:
        correct = total = 0
        for start in range(0, len(data), batch_size):
            inputs, labels = data.batch(np.arange(start, min(start + batch_size, len(data))))
            correct += int(np.count_nonzero(model.forward(inputs).argmax(axis=1) == labels))
            total += len(labels)
        return {"accuracy": correct / max(total, 1)}

    return evaluate
