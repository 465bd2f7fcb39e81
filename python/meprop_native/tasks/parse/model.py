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

from collections.abc import Mapping

import numpy as np

from ...nn import Embedding, Linear, Module, Parameter, ReLU, Sequential, Tanh
from ...nn.selection import Selection
from ...nn.sequential import LinearStack
from ...nn.simplify import resize_like
from ...nn.state import NamedState
from .features import NUM_FEATURES


class Cube(Module):
    """y = x^3 (Chen & Manning 2014); the backward 3 x^2 dy is dense like every activation."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x * x * x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        return dy * (3 * self._x * self._x) if input_grad else None


ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "cube": Cube}

# Embeddings start uniform in [-0.1, 0.1]. Chen & Manning (2014) start the
# vectors they have no pre-trained value for in [-0.01, 0.01]; with no
# pre-trained vectors at all and ~40 updates per epoch that left the loss on
# the majority-class plateau (~2.4) for 40 steps, where [-0.1, 0.1] reached 1.3
# (AdaGrad, meProp, tanh; 4,000 training sentences). Unit-sized vectors
# (N(0, 1)) overshoot: AdaGrad's first step moves every weight by about lr,
# and 2400 coherent moves per first-layer unit sent the loss from 4 to 13.
INIT_RANGE = 0.1


class ParserModel(NamedState):
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
        init: the linear layers' initialisation, "pytorch" or "paper"
            (meprop_native.nn.init).
        selection: options of meprop_native.nn.Selection for the meProp
            layers (error feedback, adaptive k, warm-up, random selection).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 50,
        hidden: int = 500,
        layers: int = 2,
        k: int | None = 20,
        k_out: int | None = 20,
        mode: str = "per_example",
        activation: str = "relu",
        seed: int = 0,
        dtype: type = np.float32,
        init: str = "pytorch",
        selection: dict | None = None,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if layers < 1 or hidden < 1:
            raise ValueError(f"need at least one hidden layer of at least one unit, got {layers} x {hidden}")
        rng = np.random.default_rng(seed)
        self.embedding = Embedding(vocab_size, embed_dim, rng, dtype, scale=INIT_RANGE, init="uniform")
        sizes = [NUM_FEATURES * embed_dim] + [hidden] * layers + [num_classes]
        stack = LinearStack(k, k_out, mode, seed, dtype, init, selection)
        self.mlp = Sequential(stack.layers(sizes, rng, [ACTIVATIONS[activation]]))
        self.training = True

    # ---- the trainer's model protocol --------------------------------------

    def forward(self, ids: np.ndarray) -> np.ndarray:
        """ids (M, 48) int -> transition scores (M, 2L + 1)."""
        vectors = self.embedding.forward(ids)  # (M, 48, dim): side by side per row
        return self.mlp.forward(vectors.reshape(vectors.shape[0], -1))

    def backward(self, dlogits: np.ndarray) -> None:
        dvectors = self.mlp.backward(dlogits, input_grad=True)
        assert dvectors is not None  # input_grad=True asks for it
        self.embedding.backward(dvectors)

    def parameters(self) -> list[Parameter]:
        return self.embedding.parameters() + self.mlp.parameters()

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        return [("embedding.weight", self.embedding.weight)] + [
            (f"mlp.{name}", p) for name, p in self.mlp.named_parameters()
        ]

    def train(self, mode: bool = True) -> ParserModel:
        self.training = mode
        self.embedding.train(mode)
        self.mlp.train(mode)
        return self

    def eval(self) -> ParserModel:
        return self.train(False)

    @property
    def backward_seconds(self) -> float:
        """Seconds in the linear layers' backward kernels (the paper's "backprop time").

        The embedding's gradient (a gather-sum) is not a matrix product; it is
        counted in the overall backprop time only.
        """
        return self.mlp.backward_seconds

    def random_generators(self) -> list[np.random.Generator]:
        return self.mlp.random_generators()  # no dropout; random selection's, if any

    def selections(self) -> list[Selection]:
        return self.mlp.selections()

    def linear_layers(self) -> list[Linear]:
        return self.mlp.linear_layers()

    def resize_like(self, state: Mapping[str, np.ndarray]) -> None:
        """Takes the hidden sizes of a state saved after meSimp removed units."""
        resize_like(self.mlp, state, prefix="mlp.")

    def __repr__(self) -> str:
        return f"ParserModel(Embedding{self.embedding.weight.value.shape}, {self.mlp!r})"
