"""Training examples: one (48 feature ids, gold transition) row per oracle step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .arc_standard import BatchedConfigurations, is_projective
from .features import NUM_FEATURES, extract, position_ids
from .vocab import Encoded, Vocab

# Sentences are processed in groups of similar length: the arrays are as wide
# as the longest sentence of a group, so sorting keeps padding small.
GROUP_SIZE = 2048


def length_groups(sentences: Sequence[Encoded], group_size: int = GROUP_SIZE) -> Iterator[np.ndarray]:
    """Indices of ``sentences`` in groups of at most ``group_size``, by length."""
    order = np.argsort([len(s) for s in sentences], kind="stable")
    for start in range(0, len(order), group_size):
        yield order[start : start + group_size]


def gold_arrays(sentences: Sequence[Encoded], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold heads, label ids and child counts by position, (B, width) int64 each.

    Positions without a token (0, padding, the sentinel) get head -2, which
    no configuration ever compares equal to.
    """
    heads = np.full((len(sentences), width), -2, dtype=np.int64)
    labels = np.full((len(sentences), width), -1, dtype=np.int64)
    children = np.zeros((len(sentences), width), dtype=np.int64)
    for b, s in enumerate(sentences):
        n = len(s)
        heads[b, 1 : n + 1] = s.heads
        labels[b, 1 : n + 1] = s.labels
        children[b, : n + 1] = np.bincount(s.heads, minlength=n + 1)
    return heads, labels, children


def oracle_examples(sentences: Sequence[Encoded], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Features (M, 48) int32 and gold transitions (M,) int64 of projective trees.

    Every sentence of n tokens yields 2n rows. Raises ValueError if a tree is
    not projective or has a label the vocabulary lacks (filter with
    ``split_projective`` first).
    """
    if any((s.labels < 0).any() for s in sentences):
        raise ValueError("a gold tree has a label outside the vocabulary")
    feats, golds = [], []
    for group in length_groups(sentences):
        batch = [sentences[i] for i in group]
        config = BatchedConfigurations(np.array([len(s) for s in batch]), vocab.num_labels, vocab.root_label)
        words, tags = position_ids(batch, vocab)
        heads, labels, children = gold_arrays(batch, words.shape[1])
        for _ in range(2 * int(config.lengths.max())):
            rows = np.flatnonzero(~config.terminal())
            if not len(rows):
                break
            feats.append(extract(config, rows, words, tags, vocab))
            gold = config.oracle(rows, heads, labels, children)
            golds.append(gold)
            config.apply(rows, gold)
    if not feats:
        return np.zeros((0, NUM_FEATURES), dtype=np.int32), np.zeros(0, dtype=np.int64)
    return np.concatenate(feats), np.concatenate(golds)


def split_projective(sentences: Sequence[Encoded]) -> tuple[list[Encoded], int]:
    """The sentences whose gold tree is projective, and how many were left out."""
    kept = [s for s in sentences if is_projective(s.heads)]
    return kept, len(sentences) - len(kept)
