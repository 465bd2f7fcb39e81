"""The Chen & Manning (2014) parser network with meProp on every linear layer.

48 feature ids -> one shared 50-dim embedding table -> concatenated 2400
inputs -> ``layers`` hidden layers of ``hidden`` units -> 2L + 1 transition
scores. meProp keeps ``k`` entries of dy in every hidden layer and ``k_out``
in the output layer (the paper uses k = 20 for both in parsing).

Activation. Chen & Manning found the cube x^3 best and tanh close behind;
the meProp paper does not name the activation of its parser. The default
here is tanh, chosen by measurement: over the first 30 AdaGrad steps
(4,000 training sentences, batch 10,000) meProp with ReLU was unstable
(the loss oscillated between 2.5 and 6.7 and rose), with tanh it fell
steadily from 4.3 to 2.1, as dense training did with either. A bounded
activation keeps the few units that meProp updates from running away.
``relu`` and ``cube`` are available (``--activation``).
"""

from __future__ import annotations

import time

import numpy as np

from ...nn import Linear, Module, Parameter, ReLU, Sequential, Tanh
from .features import NUM_FEATURES


class Cube(Module):
    """y = x^3 (Chen & Manning 2014); the backward 3 x^2 dy is dense like every activation."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * x * x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dy * (3 * self._x * self._x) if input_grad else None


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "cube": Cube}

INIT_RANGE = 0.1  # embeddings start uniform in [-INIT_RANGE, INIT_RANGE]


class Embedding(Module):
    """Looks up rows of a (num_embeddings, dim) table; gradient only on the rows used.

    forward: ids (M, F) int -> (M, F * dim) float, the F vectors side by side.
    backward: dy (M, F * dim) -> the gradient as the rows used (ascending,
    each once, occurrences summed), the row form the optimizers expect.
    Initialisation: uniform in [-0.1, 0.1]. Chen & Manning (2014) start the
    vectors they have no pre-trained value for in [-0.01, 0.01]; with no
    pre-trained vectors at all and ~40 updates per epoch that left the loss
    on the majority-class plateau (~2.4) for 40 steps, where [-0.1, 0.1]
    reached 1.3 (AdaGrad, meProp, tanh; 4,000 training sentences). Unit-sized
    vectors (N(0, 1)) overshoot: AdaGrad's first step moves every weight by
    about lr, and 2400 coherent moves per first-layer unit sent the loss
    from 4 to 13.
    """

    def __init__(self, num_embeddings: int, dim: int, rng: np.random.Generator, dtype: type = np.float32) -> None:
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"embedding table must be at least 1 x 1, got {num_embeddings} x {dim}")
        self.dim = dim
        self.weight = Parameter("weight", rng.uniform(-INIT_RANGE, INIT_RANGE, (num_embeddings, dim)).astype(dtype))
        self.backward_seconds = 0.0
        self._ids: np.ndarray | None = None

    def forward(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"expected integer ids of shape (M, F), got {ids.dtype} {ids.shape}")
        rows = self.weight.value.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= rows):
            raise ValueError(f"ids must lie in [0, {rows}), got [{ids.min()}, {ids.max()}]")
        self._ids = ids
        return self.weight.value[ids].reshape(ids.shape[0], ids.shape[1] * self.dim)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> None:
        if self._ids is None:
            raise RuntimeError("Embedding.backward called before forward")
        start = time.perf_counter()
        flat = self._ids.ravel()
        # Sort the ids, then sum the gradient rows of each run of equal ids:
        # one pass, no scattered read-modify-writes (np.add.at is ~10x slower).
        order = np.argsort(flat, kind="stable")
        ids_sorted = flat[order]
        starts = np.flatnonzero(np.concatenate(([True], ids_sorted[1:] != ids_sorted[:-1])))
        grads = np.add.reduceat(dy.reshape(-1, self.dim)[order], starts, axis=0)
        self.weight.set_grad(ids_sorted[starts].astype(np.int64), grads.astype(self.weight.value.dtype, copy=False))
        self.backward_seconds += time.perf_counter() - start
        return None

    def parameters(self) -> list[Parameter]:
        return [self.weight]


class ParserModel:
    """Embedding + MLP; follows the model protocol of the Trainer.

    Args:
        vocab_size: rows of the joint embedding table (``Vocab.size``).
        num_classes: 2L + 1 transitions.
        embed_dim: 50 in the paper; inputs are 48 * embed_dim.
        hidden, layers: hidden units per layer and number of hidden layers.
        k, k_out: meProp's k in the hidden layers and in the output layer
            (None: dense).
        mode: "per_example" (meProp) or "unified".
        activation: "relu", "tanh" or "cube".
        seed: seeds the embedding table and the linear layers.
    """

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 50, hidden: int = 500,
                 layers: int = 2, k: int | None = 20, k_out: int | None = 20, mode: str = "per_example",
                 activation: str = "relu", seed: int = 0, dtype: type = np.float32) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"need at least one hidden layer of at least one unit, got {layers} x {hidden}")
        rng = np.random.default_rng(seed)
        self.embedding = Embedding(vocab_size, embed_dim, rng, dtype)
        sizes = [NUM_FEATURES * embed_dim] + [hidden] * layers + [num_classes]
        modules: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            modules.append(Linear(n_in, n_out, k_out if last else k, mode, rng=rng, dtype=dtype))
            if not last:
                modules.append(ACTIVATIONS[activation]())
        self.mlp = Sequential(modules)
        self.training = True

    # ---- the trainer's model protocol --------------------------------------

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids (M, 48) int -> transition scores (M, 2L + 1)."""
        return self.mlp.forward(self.embedding.forward(ids))

    def backward(self, dlogits: np.ndarray) -> None:
        self.embedding.backward(self.mlp.backward(dlogits, input_grad=True))

    def parameters(self) -> list[Parameter]:
        return self.embedding.parameters() + self.mlp.parameters()

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [("embedding.weight", self.embedding.weight)] + [
            (f"mlp.{name}", p) for name, p in self.mlp.named_parameters()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copies values in place; names, shapes and dtypes must match exactly."""
        params = dict(self.named_parameters())
        missing, unexpected = set(params) - set(state), set(state) - set(params)
        if missing or unexpected:
            raise KeyError(f"state does not fit the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, p in params.items():  # check everything before changing anything
            value = np.asarray(state[name])
            if value.shape != p.value.shape or value.dtype != p.value.dtype:
                raise ValueError(f"{name}: expected {p.value.shape} {p.value.dtype}, got {value.shape} {value.dtype}")
        for name, p in params.items():
            p.value[...] = state[name]

    def train(self, mode: bool = True) -> ParserModel:
        self.training = mode
        self.embedding.train(mode)
        self.mlp.train(mode)
        return self

    def eval(self) -> ParserModel:
        return self.train(False)

    def backward_seconds(self) -> float:
        """Seconds in the linear layers' backward kernels (the paper's "backprop time").

        The embedding's gradient (a gather-sum) is not a matrix product; it is
        counted in the overall backprop time only.
        """
        return self.mlp.backward_seconds()

    def random_generators(self) -> list[np.random.Generator]:
        return []  # no dropout: nothing random after initialisation

    def linear_layers(self) -> list[Linear]:
        return self.mlp.linear_layers()

    def __repr__(self) -> str:
        return f"ParserModel(Embedding{self.embedding.weight.value.shape}, {self.mlp!r})"
