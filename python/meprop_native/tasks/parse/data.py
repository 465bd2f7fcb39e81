"""The parser's datasets: oracle transitions for training, treebank sentences for evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...train import ArrayDataset, Dataset, Evaluator
from .decode import parse
from .examples import oracle_examples, split_projective
from .scoring import attachment_scores
from .vocab import Encoded, TreeLike, Vocab


class TreebankSplit:
    """Sentences to parse (dev or test), as a trainer Dataset.

    ``len()`` counts sentences. ``batch(indices)`` gives the static oracle's
    (features, transitions) of the projective ones among them, so a plain
    accuracy evaluator would report transition accuracy; the parse task
    scores with ``attachment_evaluator`` instead, which parses every sentence.
    """

    def __init__(self, sentences: Sequence[Encoded], vocab: Vocab) -> None:
        self.sentences = list(sentences)
        self.vocab = vocab

    def __len__(self) -> int:
        return len(self.sentences)

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen = [self.sentences[i] for i in np.asarray(indices)]
        kept, _ = split_projective([s for s in chosen if (s.labels >= 0).all()])
        return oracle_examples(kept, self.vocab)


def attachment_evaluator(vocab: Vocab) -> Evaluator:
    """Parses a TreebankSplit greedily and returns {"uas", "las"} (punctuation excluded)."""

    def evaluate(model: Any, data: Dataset) -> dict[str, float]:
        if not isinstance(data, TreebankSplit):
            raise TypeError(f"attachment scores need a TreebankSplit, not {type(data).__name__}")
        predicted = parse(data.sentences, vocab, model.forward)
        scores = attachment_scores(
            [s.heads for s in data.sentences],
            [s.labels for s in data.sentences],
            [p[0] for p in predicted],
            [p[1] for p in predicted],
            [s.xpos for s in data.sentences],
        )
        return {"uas": scores["uas"], "las": scores["las"]}

    return evaluate


@dataclass
class ParseData:
    """Everything a parsing run needs, built once per run and kept in memory."""

    vocab: Vocab
    train: ArrayDataset  # (M, 48) int32 feature ids, (M,) gold transitions
    dev: TreebankSplit
    test: TreebankSplit
    train_sentences: int
    skipped_non_projective: int


def prepare(
    train: Sequence[TreeLike], dev: Sequence[TreeLike], test: Sequence[TreeLike], min_word_count: int = 2
) -> ParseData:
    """Vocabulary from ``train``; oracle examples of its projective trees; encoded dev and test."""
    if not train:
        raise ValueError("no training sentences")
    vocab = Vocab.build(train, min_word_count)
    kept, skipped = split_projective([vocab.encode(s) for s in train])
    features, transitions = oracle_examples(kept, vocab)
    return ParseData(
        vocab=vocab,
        train=ArrayDataset(features, transitions),
        dev=TreebankSplit([vocab.encode(s) for s in dev], vocab),
        test=TreebankSplit([vocab.encode(s) for s in test], vocab),
        train_sentences=len(kept),
        skipped_non_projective=skipped,
    )
