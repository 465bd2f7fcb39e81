"""Layers in a row, and the paper's MLP built from them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..distributed.world import World
from .activations import ACTIVATIONS
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .parameter import Parameter
from .selection import Selection
from .state import NamedState


class Sequential(NamedState, Module):
    """Runs layers in order; backward runs them in reverse.

    The first layer is asked for no input gradient: nothing consumes it.
    """

    def __init__(self, layers: Iterable[Module]) -> None:
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Each layer's forward in order: x (B, sizes[0]) -> output (B, sizes[-1])."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Backward through the layers in reverse; dx of the first only if input_grad."""
        grad: np.ndarray | None = dy
        for i in range(len(self.layers) - 1, -1, -1):
            assert grad is not None
            grad = self.layers[i].backward(grad, input_grad=input_grad or i > 0)
        return grad

    def parameters(self) -> list[Parameter]:
        """Every layer's parameters, in layer order."""
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """(name, parameter) pairs, named "<layer index>.<weight|bias>"."""
        return [(f"{i}.{p.name}", p) for i, layer in enumerate(self.layers) for p in layer.parameters()]

    def random_generators(self) -> list[np.random.Generator]:
        return [rng for layer in self.layers for rng in layer.random_generators()]

    def selections(self) -> list[Selection]:
        """Every layer's selections, in layer order."""
        return [s for layer in self.layers for s in layer.selections()]

    def linear_layers(self) -> list[Linear]:
        """The Linear layers, in order."""
        return [layer for layer in self.layers if isinstance(layer, Linear)]

    def train(self, mode: bool = True) -> Sequential:
        """Sets training (or evaluation) mode on every layer; returns self."""
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def use_world(self, world: World) -> None:
        """Trains data-parallel in ``world``: every layer exchanges what its backward needs."""
        for layer in self.layers:
            layer.world = world

    def resize_like(self, state: Mapping[str, np.ndarray]) -> None:
        """Takes the layer sizes of a state (one saved after meSimp removed units), before loading it."""
        from .simplify import resize_like

        resize_like(self, state)

    def zero_grad(self) -> None:
        """Forgets every parameter's gradient."""
        for p in self.parameters():
            p.zero_grad()

    @property
    def backward_seconds(self) -> float:
        """Time spent in the linear layers' backward kernels (paper: "backprop time")."""
        return sum(layer.backward_seconds for layer in self.linear_layers())

    def reset_timers(self) -> None:
        """Sets every linear layer's backward_seconds to 0."""
        for layer in self.linear_layers():
            layer.backward_seconds = 0.0

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) if isinstance(layer, Linear) else type(layer).__name__ for layer in self.layers)
        return f"Sequential({inner})"


def mlp(
    sizes: list[int],
    k: int | None = None,
    k_out: int | None = None,
    mode: str = "per_example",
    activation: str = "relu",
    dropout: float = 0.0,
    seed: int = 0,
    dtype: type = np.float32,
    init: str = "pytorch",
    selection: dict | None = None,
) -> Sequential:
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` with meProp on every linear layer.

    Hidden layers keep ``k`` entries of dy, the output layer ``k_out`` (None:
    dense, e.g. 10 classes). Activation (and dropout, if p > 0) after every
    hidden layer. Weights drawn from ``numpy.random.default_rng(seed)`` by the
    ``init`` scheme (``"pytorch"`` or ``"paper"``, see ``meprop_native.nn.init``);
    dropout masks from a generator seeded with ``seed + 1``. ``selection``
    holds the options of :class:`meprop_native.nn.Selection` for every meProp
    layer (error feedback, adaptive k, warm-up, random selection); each layer
    gets its depth (distance from the output) and its own random stream.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    drop_rng = np.random.default_rng(seed + 1)
    after_hidden: list[Callable[[], Module]] = [ACTIVATIONS[activation]]
    if dropout > 0:
        after_hidden.append(lambda: Dropout(dropout, drop_rng))
    stack = LinearStack(k, k_out, mode, seed, dtype, init, selection)
    return Sequential(stack.layers(sizes, np.random.default_rng(seed), after_hidden))


@dataclass(frozen=True)
class LinearStack:
    """How to build a stack of meProp Linear layers: ``k`` in the hidden layers,
    ``k_out`` in the output layer; each layer's selection gets its depth (distance
    from the output) and its own random stream from ``seed``."""

    k: int | None
    k_out: int | None
    mode: str
    seed: int
    dtype: type
    init: str
    selection: dict | None

    def layers(
        self, sizes: list[int], rng: np.random.Generator, after_hidden: list[Callable[[], Module]]
    ) -> list[Module]:
        """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with weights from ``rng``,
        each hidden one followed by a fresh module from every factory in ``after_hidden``."""
        modules: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            options = dict(self.selection or {}, depth=len(sizes) - 2 - i, seed=self.seed * 1000 + i)
            k = self.k_out if last else self.k
            modules.append(
                Linear(n_in, n_out, k, self.mode, rng=rng, dtype=self.dtype, init=self.init, selection=options)
            )
            if not last:
                modules.extend(make() for make in after_hidden)
        return modules
