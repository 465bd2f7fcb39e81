"""Greedy parsing: at each step the model scores the legal transitions only.

All sentences of a group advance together: one forward pass scores the
current configuration of every unfinished sentence, so the network sees
batches of hundreds to thousands of rows instead of one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .arc_standard import BatchedConfigurations
from .examples import length_groups
from .features import extract, position_ids
from .vocab import Encoded, Vocab

Scorer = Callable[[np.ndarray], np.ndarray]  # (A, 48) int32 features -> (A, 2L + 1) scores


def parse(
    sentences: Sequence[Encoded], vocab: Vocab, score: Scorer, group_size: int = 4096
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Predicted (heads, label ids) of each sentence, int64 arrays of length n, in input order."""
    result: list[tuple[np.ndarray, np.ndarray]] = [None] * len(sentences)  # type: ignore[list-item]
    for group in length_groups(sentences, group_size):
        batch = [sentences[i] for i in group]
        lengths = np.array([len(s) for s in batch])
        config = BatchedConfigurations(lengths, vocab.num_labels, vocab.root_label)
        words, tags = position_ids(batch, vocab)
        # Exactly 2n transitions per sentence: a sentence is done after 2n steps.
        for _ in range(2 * int(lengths.max())):
            rows = np.flatnonzero(~config.terminal())
            if not len(rows):
                break
            scores = np.asarray(score(extract(config, rows, words, tags, vocab)), dtype=np.float64)
            scores[~config.legal(rows)] = -np.inf
            config.apply(rows, scores.argmax(axis=1))
        for b, i in enumerate(group):
            n = lengths[b]
            result[i] = (config.heads[b, 1 : n + 1].copy(), config.labels[b, 1 : n + 1].copy())
    return result
