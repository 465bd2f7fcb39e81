"""The paper's POS tagger: embeddings -> LSTM (meProp) -> dense output layer."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...nn import LSTM, Embedding, Linear, Parameter
from ...nn.lstm import offsets_from_lengths
from ...nn.selection import Selection
from ...nn.state import NamedState
from .features import FEATURES, Encoded


class TaggerInput(NamedTuple):
    """Packed sentences: words (N,), features (N, 7), offsets (B + 1,); int64."""

    words: np.ndarray
    features: np.ndarray
    offsets: np.ndarray


class TaggedSentences:
    """A Dataset of encoded sentences; a batch packs its sentences back to back.

    ``batch(indices)`` returns (TaggerInput, tags (N,)): one label per token.
    """

    def __init__(self, sentences: list[Encoded]) -> None:
        self.sentences = sentences

    def __len__(self) -> int:
        return len(self.sentences)

    def batch(self, indices: np.ndarray) -> tuple[TaggerInput, np.ndarray]:
        chosen = [self.sentences[int(i)] for i in indices]
        if not chosen:
            raise ValueError("a batch needs at least one sentence")
        offsets = offsets_from_lengths([len(s.words) for s in chosen])
        inputs = TaggerInput(
            np.concatenate([s.words for s in chosen]),
            np.concatenate([s.features for s in chosen]),
            offsets,
        )
        return inputs, np.concatenate([s.tags for s in chosen])


class Tagger(NamedState):
    """word embedding (50) + 7 feature embeddings (20 each) -> LSTM(h) -> Linear(h, tags).

    The LSTM's backward keeps the top ``k`` of each step's 4h gate gradient
    (None: dense), or with ``per_gate`` the top ``k`` of each gate's h; the
    output layer is dense, as in the paper. Embeddings are
    drawn at random (no pretrained vectors) and trained with row gradients.
    Weights come from ``numpy.random.default_rng(seed)``, the LSTM's and the
    output layer's by the ``init`` scheme (meprop_native.nn.init). The other
    keyword options are the LSTM's (``per_gate``, ``memory_decay``, warm-up).
    """

    def __init__(
        self,
        vocab_sizes: dict[str, int],
        n_tags: int,
        hidden: int = 500,
        k: int | None = 5,
        word_dim: int = 50,
        feature_dim: int = 20,
        seed: int = 0,
        dtype: type = np.float32,
        init: str = "pytorch",
        **lstm_options: Any,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.word_embedding = Embedding(vocab_sizes["words"], word_dim, rng, dtype)
        self.feature_embeddings = [Embedding(vocab_sizes[name], feature_dim, rng, dtype) for name in FEATURES]
        self.input_size = word_dim + feature_dim * len(FEATURES)
        self.word_dim, self.feature_dim = word_dim, feature_dim
        self.lstm = LSTM(self.input_size, hidden, k, rng, dtype, init=init, **lstm_options)
        self.output = Linear(hidden, n_tags, None, rng=rng, dtype=dtype, init=init)
        self.training = True

    def forward(self, inputs: TaggerInput) -> np.ndarray:
        """Logits (N, n_tags) for the N tokens of the packed sentences."""
        parts = [self.word_embedding.forward(inputs.words)]
        parts += [e.forward(inputs.features[:, i]) for i, e in enumerate(self.feature_embeddings)]
        x = np.concatenate(parts, axis=1)
        return self.output.forward(self.lstm.forward(x, inputs.offsets))

    def backward(self, dlogits: np.ndarray) -> None:
        dh = self.output.backward(dlogits)
        assert dh is not None
        dx = self.lstm.backward(dh)
        assert dx is not None
        self.word_embedding.backward(dx[:, : self.word_dim])
        for i, e in enumerate(self.feature_embeddings):
            start = self.word_dim + i * self.feature_dim
            e.backward(dx[:, start : start + self.feature_dim])

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        named = [("word_embedding", self.word_embedding.weight)]
        named += [(f"feature_embedding.{n}", e.weight) for n, e in zip(FEATURES, self.feature_embeddings)]
        named += [(f"lstm.{p.name}", p) for p in self.lstm.parameters()]
        named += [(f"output.{p.name}", p) for p in self.output.parameters()]
        return named

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def train(self, mode: bool = True) -> Tagger:
        self.training = mode
        return self

    def eval(self) -> Tagger:
        return self.train(False)

    @property
    def backward_seconds(self) -> float:
        """Seconds in the backward of the linear parts: LSTM products and output layer."""
        return self.lstm.backward_seconds + self.output.backward_seconds

    def random_generators(self) -> list[np.random.Generator]:
        return []  # no dropout: nothing random after initialisation

    def selections(self) -> list[Selection]:
        """The LSTM's selection (the output layer is dense)."""
        return self.lstm.selections()
