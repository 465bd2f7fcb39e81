"""Vocabularies of the parser: words, POS tags and arc labels, in one id space.

The model looks up all 48 features in one embedding table, so the three
vocabularies are laid out one after another: word ids first, then tag ids,
then label ids. Each kind has its own special entries:

- NULL: no token at that position (an empty stack slot, a missing child);
- ROOT: the artificial root token (words and tags);
- UNK:  a word or tag not in the vocabulary.

Words are lower-cased and kept when they occur at least ``min_word_count``
times in the training trees; rarer words map to UNK already in training, so
the UNK embedding is trained and unknown dev/test words get a useful vector
(the project has no pre-trained embeddings, unlike Chen & Manning 2014).

Labels are UD dependency relations without their subtype (``nmod:poss`` ->
``nmod``): the universal relations, which is also what the CoNLL 2018 shared
task's LAS compares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .arc_standard import ROOT_LABEL

NULL, UNK, ROOT = "<NULL>", "<UNK>", "<ROOT>"
SPECIALS = (NULL, UNK, ROOT)


def tree_problem(heads: np.ndarray) -> str | None:
    """Why heads (1-based, 0 = root) do not form a tree over the tokens, or None."""
    roots = int((heads == 0).sum())
    if roots != 1:
        return f"{roots} tokens attach to the root, a tree has exactly one"
    depth_of = np.full(len(heads), -1)
    for start in range(len(heads)):
        path: list[int] = []
        token = start
        while token >= 0 and depth_of[token] < 0:  # walk up until the root or a known token
            if token in path:
                return f"the heads of tokens {sorted(t + 1 for t in path[path.index(token) :])} form a cycle"
            path.append(token)
            token = int(heads[token]) - 1
        depth = 0 if token < 0 else depth_of[token] + 1
        for t in reversed(path):
            depth_of[t] = depth
            depth += 1
    return None


class TreeLike(Protocol):
    """What the parser reads from a sentence (meprop_native.data.ud.Sentence has it)."""

    # Properties: a frozen dataclass (Sentence) has read-only fields.
    @property
    def forms(self) -> Sequence[str]: ...
    @property
    def xpos(self) -> Sequence[str]: ...
    @property
    def heads(self) -> Sequence[int]: ...
    @property
    def deprels(self) -> Sequence[str]: ...


def universal_label(deprel: str) -> str:
    """``nmod:poss`` -> ``nmod``."""
    return deprel.split(":", 1)[0]


def normalise_word(form: str) -> str:
    return form.lower()


@dataclass(frozen=True)
class Encoded:
    """One sentence as ids. All arrays are int64 of length n (tokens 1..n).

    words, tags: feature ids in the joint table; heads: gold heads (0 = root);
    labels: gold label ids (-1 for a label the vocabulary lacks); xpos: the
    gold XPOS strings (kept for the punctuation rule of the scorer).
    """

    words: np.ndarray
    tags: np.ndarray
    heads: np.ndarray
    labels: np.ndarray
    xpos: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)


class Vocab:
    """Word, tag and label ids; see the module docstring for the layout."""

    def __init__(self, words: Sequence[str], tags: Sequence[str], labels: Sequence[str]) -> None:
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.tags = list(SPECIALS) + [t for t in tags if t not in SPECIALS]
        self.labels = list(labels)  # transition labels, 0..L-1
        if ROOT_LABEL not in self.labels:
            raise ValueError(f"the label set must contain {ROOT_LABEL!r}, got {self.labels}")
        self._word_id = {w: i for i, w in enumerate(self.words)}
        self._tag_id = {t: len(self.words) + i for i, t in enumerate(self.tags)}
        self._label_id = {label: i for i, label in enumerate(self.labels)}
        self.tag_offset = len(self.words)
        self.label_offset = len(self.words) + len(self.tags)  # its first id is the label NULL

    @classmethod
    def build(cls, sentences: Iterable[TreeLike], min_word_count: int = 2) -> Vocab:
        """From training trees: frequent words, every tag, every universal label (sorted)."""
        if min_word_count < 1:
            raise ValueError(f"min_word_count must be >= 1, got {min_word_count}")
        word_counts: Counter[str] = Counter()
        tags: set[str] = set()
        labels: set[str] = set()
        for sentence in sentences:
            word_counts.update(normalise_word(f) for f in sentence.forms)
            tags.update(sentence.xpos)
            labels.update(universal_label(d) for d in sentence.deprels)
        words = sorted(w for w, c in word_counts.items() if c >= min_word_count)
        return cls(words, sorted(tags), sorted(labels))

    # ---- sizes and special ids ------------------------------------------------

    @property
    def size(self) -> int:
        """Rows of the joint embedding table."""
        return self.label_offset + 1 + len(self.labels)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def root_label(self) -> int:
        return self._label_id[ROOT_LABEL]

    def word_special(self, name: str) -> int:
        return self._word_id[name]

    def tag_special(self, name: str) -> int:
        return self._tag_id[name]

    @property
    def label_null(self) -> int:
        return self.label_offset

    def label_feature(self, labels: np.ndarray) -> np.ndarray:
        """Feature ids of label ids (-1, "no arc", becomes the label NULL)."""
        return np.where(labels >= 0, self.label_offset + 1 + labels, self.label_offset)

    # ---- encoding ------------------------------------------------------------

    def label_id(self, deprel: str) -> int:
        return self._label_id.get(universal_label(deprel), -1)

    def encode(self, sentence: TreeLike) -> Encoded:
        unk_word, unk_tag = self._word_id[UNK], self._tag_id[UNK]
        n = len(sentence.forms)
        if not (len(sentence.xpos) == len(sentence.heads) == len(sentence.deprels) == n) or n == 0:
            raise ValueError("a sentence needs at least one token and as many tags, heads and labels as words")
        heads = np.asarray(sentence.heads, dtype=np.int64)
        if (heads < 0).any() or (heads > n).any():
            raise ValueError(f"heads must lie in 0..{n}, got {list(sentence.heads)}")
        problem = tree_problem(heads)
        if problem:
            raise ValueError(f"not a dependency tree: {problem} (heads {list(sentence.heads)})")
        return Encoded(
            words=np.array([self._word_id.get(normalise_word(f), unk_word) for f in sentence.forms], dtype=np.int64),
            tags=np.array([self._tag_id.get(t, unk_tag) for t in sentence.xpos], dtype=np.int64),
            heads=heads,
            labels=np.array([self.label_id(d) for d in sentence.deprels], dtype=np.int64),
            xpos=tuple(sentence.xpos),
        )

    def to_dict(self) -> dict[str, list[str]]:
        return {"words": self.words, "tags": self.tags, "labels": self.labels}
