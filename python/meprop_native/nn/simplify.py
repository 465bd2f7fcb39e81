"""meSimp's model simplification: removing the hidden units meProp seldom selects.

meSimp (Sun et al., "Training Simplification and Model Simplification for
Deep Learning: A Minimal Effort Back Propagation Method", arXiv 1711.06528)
counts, for every hidden unit, the examples whose top-k of dy included it.
A unit that fewer than a fraction p of the examples selected since the last
simplification is removed: its row of W and entry of b in its own layer, its
column of W in the next layer, and the optimizer's state of all three. Unlike
the authors' code, which masks such units and keeps computing them, the
matrices really shrink here, so the forward pass gets cheaper too.

The units of a hidden layer are its outputs; between it and the next linear
layer only element-wise modules (activations, dropout) may stand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .linear import Linear
from .sequential import Sequential

if TYPE_CHECKING:  # the optimizers import this package
    from ..optim import Optimizer


def hidden_layers(stack: Sequential) -> list[tuple[Linear, Linear]]:
    """(layer, next linear layer) for every linear layer whose outputs feed another
    one through parameter-free modules only: the layers whose units can be removed."""
    pairs: list[tuple[Linear, Linear]] = []
    current: Linear | None = None
    for layer in stack.layers:
        if isinstance(layer, Linear):
            if current is not None:
                pairs.append((current, layer))
            current = layer
        elif layer.parameters():
            current = None  # a layer with parameters of its own: not an element-wise step
    return pairs


def units_to_keep(hits: np.ndarray, examples: int, fraction: float) -> np.ndarray:
    """The units selected by at least ``int(examples * fraction)`` examples (as meSimp's
    threshold), ascending; the most selected one if no unit reaches it."""
    threshold = int(examples * fraction)
    keep = np.flatnonzero(hits >= threshold)
    if len(keep) == 0:
        keep = np.array([int(np.argmax(hits))], dtype=np.int64)
    return keep.astype(np.int64)


def remove_units(layer: Linear, after: Linear, units: np.ndarray, optimizer: Optimizer | None) -> None:
    """Keeps only ``units`` (ascending ids) of ``layer``'s outputs, and the matching
    inputs of ``after``, with the optimizer's state of both (when given)."""
    if after.in_features != layer.out_features:
        raise ValueError(f"layer {after!r} takes {after.in_features} inputs, but {layer!r} gives {layer.out_features}")
    if optimizer is not None:
        optimizer.take(layer.weight, rows=units)
        if layer.bias is not None:
            optimizer.take(layer.bias, cols=units)  # a bias is one row of units
        optimizer.take(after.weight, cols=units)
    layer.keep_outputs(units)
    after.keep_inputs(units)


def simplify(stack: Sequential, fraction: float, optimizer: Optimizer | None) -> list[int]:
    """One simplification of every hidden layer that counts its hits; their counts
    start again at zero. Returns the hidden sizes after it, in layer order."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the simplification fraction must be in [0, 1], got {fraction}")
    for layer, after in hidden_layers(stack):
        selection = layer.selection
        if selection.hits is None:
            continue
        keep = units_to_keep(selection.hits, selection.hit_examples, fraction)
        if len(keep) < layer.out_features:
            remove_units(layer, after, keep, optimizer)
        selection.reset_hits()
    return hidden_sizes(stack)


def hidden_sizes(stack: Sequential) -> list[int]:
    """The output sizes of the layers whose units can be removed, in layer order."""
    return [layer.out_features for layer, _ in hidden_layers(stack)]


def resize_like(stack: Sequential, state: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Gives every linear layer the shape its weight has in ``state`` (names
    ``<prefix><index>.weight``), so that a state saved after a simplification loads."""
    for i, layer in enumerate(stack.layers):
        weight = state.get(f"{prefix}{i}.weight")
        if isinstance(layer, Linear) and weight is not None and np.ndim(weight) == 2:
            out_features, in_features = np.shape(weight)
            layer.resize(int(out_features), int(in_features))
