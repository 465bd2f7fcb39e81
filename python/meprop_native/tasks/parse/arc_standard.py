"""The arc-standard transition system (Nivre 2004) as Chen & Manning (2014) use it.

A configuration is a stack, a buffer and the arcs built so far. Token 0 is an
artificial ROOT that starts on the stack; tokens 1..n start in the buffer.

- SHIFT:     move the first buffer token b1 onto the stack.
- LEFT(l):   add the arc s1 -> s2 with label l and pop s2 (s2 must not be ROOT).
- RIGHT(l):  add the arc s2 -> s1 with label l and pop s1.

Every sentence of n tokens takes exactly 2n transitions. Only projective trees
can be built, so non-projective training trees have no gold sequence
(``is_projective`` finds them; the parse task skips them, as Chen & Manning's
parser does).

Transition ids: 0 is SHIFT, 1..L are LEFT(label 0..L-1), L+1..2L are
RIGHT(label 0..L-1), for L labels.

Two implementations live here on purpose. ``Configuration`` / ``oracle_sequence``
are the plain, one-sentence reference; ``BatchedConfigurations`` runs the same
system over many sentences at once with NumPy and is what training and
decoding use. The tests hold the second to the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SHIFT = 0
ROOT_LABEL = "root"


def num_transitions(num_labels: int) -> int:
    """2L + 1 transitions for L labels."""
    return 2 * num_labels + 1


def left_arc(label: int) -> int:
    return 1 + label


def right_arc(label: int, num_labels: int) -> int:
    return 1 + num_labels + label


def is_projective(heads: Sequence[int] | np.ndarray) -> bool:
    """Whether the tree given by ``heads`` (1-based token ids, 0 = root) has no crossing arcs.

    The arc from the artificial root (at position 0) counts like any other,
    so a word that sits between the root word and a distant child of another
    head makes the tree non-projective, as it does for arc-standard.
    """
    h = np.asarray(heads, dtype=np.int64)
    if h.size == 0:
        return True
    d = np.arange(1, h.size + 1)
    lo, hi = np.minimum(h, d), np.maximum(h, d)
    # Arcs (a, b) and (c, e) cross when a < c < b < e.
    crosses = (lo[:, None] < lo[None, :]) & (lo[None, :] < hi[:, None]) & (hi[:, None] < hi[None, :])
    return not bool(crosses.any())


# ---- the one-sentence reference ---------------------------------------------


@dataclass
class Configuration:
    """One sentence's parser state; tokens are 1..n, 0 is ROOT."""

    n: int
    stack: list[int] = field(default_factory=lambda: [0])
    next_token: int = 1  # the buffer is next_token..n
    heads: list[int] = field(default_factory=list)  # -1 = no head yet; index 0 unused
    labels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.heads:
            self.heads = [-1] * (self.n + 1)
            self.labels = [-1] * (self.n + 1)

    @property
    def buffer(self) -> list[int]:
        return list(range(self.next_token, self.n + 1))

    def is_terminal(self) -> bool:
        return self.next_token > self.n and self.stack == [0]

    def children(self, head: int) -> list[int]:
        return [d for d in range(1, self.n + 1) if self.heads[d] == head]

    def legal(self, transition: int, num_labels: int, root_label: int) -> bool:
        if transition == SHIFT:
            return self.next_token <= self.n
        is_left = transition <= num_labels
        label = transition - 1 if is_left else transition - 1 - num_labels
        if len(self.stack) < 2:
            return False
        s1, s2 = self.stack[-1], self.stack[-2]
        head = s1 if is_left else s2
        if is_left and s2 == 0:
            return False
        if not is_left and s2 == 0 and self.next_token <= self.n:
            return False  # the root word is attached last: one root per sentence
        return (label == root_label) == (head == 0)

    def apply(self, transition: int, num_labels: int) -> None:
        if transition == SHIFT:
            self.stack.append(self.next_token)
            self.next_token += 1
            return
        s1, s2 = self.stack[-1], self.stack[-2]
        if transition <= num_labels:
            head, dep, label = s1, s2, transition - 1
            del self.stack[-2]
        else:
            head, dep, label = s2, s1, transition - 1 - num_labels
            del self.stack[-1]
        self.heads[dep] = head
        self.labels[dep] = label


def oracle_sequence(heads: Sequence[int], labels: Sequence[int], num_labels: int) -> list[int]:
    """The static arc-standard oracle's transitions for a projective gold tree.

    Prefers LEFT, then RIGHT once s1 has all its children, else SHIFT.
    Raises ValueError for a non-projective tree (the oracle gets stuck).
    """
    n = len(heads)
    gold_heads = [-1, *heads]
    gold_labels = [-1, *labels]
    pending = [0] * (n + 1)  # children not yet attached
    for h in heads:
        pending[h] += 1
    config = Configuration(n)
    sequence = []
    while not config.is_terminal():
        stack = config.stack
        if len(stack) >= 2 and stack[-2] != 0 and gold_heads[stack[-2]] == stack[-1]:
            t = left_arc(gold_labels[stack[-2]])
        elif len(stack) >= 2 and gold_heads[stack[-1]] == stack[-2] and pending[stack[-1]] == 0:
            t = right_arc(gold_labels[stack[-1]], num_labels)
        elif config.next_token <= n:
            t = SHIFT
        else:
            raise ValueError("no oracle transition: the tree is not projective")
        if t != SHIFT:
            pending[stack[-1] if t <= num_labels else stack[-2]] -= 1
        config.apply(t, num_labels)
        sequence.append(t)
    return sequence


# ---- many sentences at once ---------------------------------------------------


class BatchedConfigurations:
    """Arc-standard configurations of B sentences, advanced together.

    Positions: 0 is ROOT, 1..n_b the tokens of sentence b, and ``none`` =
    N + 1 (N the longest sentence) a sentinel meaning "no such token". Every
    per-position array has width N + 2 and holds the sentinel's own value at
    ``none`` (its children are ``none`` again), so features such as
    lc1(lc1(s1)) are plain gathers without masks.

    Arrays (int64, (B, N + 2) unless noted):
        heads, labels: the arcs built so far (-1 where none).
        lc1, lc2:      leftmost and second-leftmost child left of the token.
        rc1, rc2:      rightmost and second-rightmost child right of it.
        attached:      number of children attached so far.
        stack:         (B, N + 4); the first 3 slots hold ``none``, so s2 and
                       s3 of a short stack read the sentinel. ``depth`` (B,)
                       counts the real entries.
        next_token:    (B,) first buffer token; ``lengths`` (B,) the n_b.
    """

    PAD = 3  # sentinel slots below the stack

    def __init__(self, lengths: np.ndarray, num_labels: int, root_label: int) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1 or (lengths < 1).any():
            raise ValueError("every sentence needs at least one token")
        self.num_labels = num_labels
        self.root_label = root_label
        self.lengths = lengths
        batch = len(lengths)
        width = int(lengths.max(initial=0)) + 2
        self.none = width - 1
        self.rows = np.arange(batch)
        self.heads = np.full((batch, width), -1, dtype=np.int64)
        self.labels = np.full((batch, width), -1, dtype=np.int64)
        self.lc1 = np.full((batch, width), self.none, dtype=np.int64)
        self.lc2 = self.lc1.copy()
        self.rc1 = self.lc1.copy()
        self.rc2 = self.lc1.copy()
        self.attached = np.zeros((batch, width), dtype=np.int64)
        self.stack = np.full((batch, width + self.PAD), self.none, dtype=np.int64)
        self.stack[:, self.PAD] = 0  # ROOT
        self.depth = np.ones(batch, dtype=np.int64)
        self.next_token = np.ones(batch, dtype=np.int64)

    # ---- views --------------------------------------------------------------

    def top(self, i: int, rows: np.ndarray) -> np.ndarray:
        """s_i (i = 1, 2, 3) of the given sentences; ``none`` where the stack is shorter."""
        return self.stack[rows, self.PAD + self.depth[rows] - i]

    def buffer(self, i: int, rows: np.ndarray) -> np.ndarray:
        """b_i (i = 1, 2, 3); ``none`` past the sentence's end."""
        token = self.next_token[rows] + (i - 1)
        return np.where(token <= self.lengths[rows], token, self.none)

    def terminal(self) -> np.ndarray:
        """(B,) bool: buffer empty and only ROOT left on the stack."""
        return (self.next_token > self.lengths) & (self.depth == 1)

    def legal(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), 2L + 1) bool: which transitions each configuration allows.

        The same rules as ``Configuration.legal``: LEFT never pops ROOT, the
        arc to ROOT comes last and carries the root label, and no other arc does.
        """
        L = self.num_labels
        can_shift = self.next_token[rows] <= self.lengths[rows]
        two = self.depth[rows] >= 2
        s2 = self.top(2, rows)
        s2_root = s2 == 0
        can_left = two & ~s2_root
        can_right = two & (~s2_root | ~can_shift)
        is_root_label = np.arange(L) == self.root_label
        # LEFT's head is s1, never ROOT: non-root labels only. RIGHT's head is
        # s2: the root label exactly when s2 is ROOT.
        left = can_left[:, None] & ~is_root_label[None, :]
        right = can_right[:, None] & (is_root_label[None, :] == s2_root[:, None])
        return np.concatenate([can_shift[:, None], left, right], axis=1)

    # ---- transitions ----------------------------------------------------------

    def apply(self, rows: np.ndarray, transitions: np.ndarray) -> None:
        """Applies one transition to each given sentence (rows distinct; assumed legal)."""
        rows = np.asarray(rows, dtype=np.int64)
        transitions = np.asarray(transitions, dtype=np.int64)
        L = self.num_labels
        shift = transitions == SHIFT
        r = rows[shift]
        self.stack[r, self.PAD + self.depth[r]] = self.next_token[r]
        self.depth[r] += 1
        self.next_token[r] += 1

        left = (transitions >= 1) & (transitions <= L)
        r = rows[left]
        s1, s2 = self.top(1, r), self.top(2, r)
        self._add_arcs(r, s1, s2, transitions[left] - 1)
        self.stack[r, self.PAD + self.depth[r] - 2] = s1
        self.depth[r] -= 1

        right = transitions > L
        r = rows[right]
        s1, s2 = self.top(1, r), self.top(2, r)
        self._add_arcs(r, s2, s1, transitions[right] - 1 - L)
        self.depth[r] -= 1

    def _add_arcs(self, rows: np.ndarray, heads: np.ndarray, deps: np.ndarray, labels: np.ndarray) -> None:
        self.heads[rows, deps] = heads
        self.labels[rows, deps] = labels
        self.attached[rows, heads] += 1
        none = self.none
        # Left children: keep the two smallest positions (``none`` is larger than any).
        is_left = deps < heads
        r, h, d = rows[is_left], heads[is_left], deps[is_left]
        first, second = self.lc1[r, h], self.lc2[r, h]
        new_first = d < first
        self.lc2[r, h] = np.where(new_first, first, np.minimum(second, d))
        self.lc1[r, h] = np.where(new_first, d, first)
        # Right children: keep the two largest (``none`` means empty here).
        r, h, d = rows[~is_left], heads[~is_left], deps[~is_left]
        first, second = self.rc1[r, h], self.rc2[r, h]
        first_v = np.where(first == none, -1, first)
        second_v = np.where(second == none, -1, second)
        new_first = d > first_v
        self.rc2[r, h] = np.where(new_first, first, np.where(d > second_v, d, second))
        self.rc1[r, h] = np.where(new_first, d, first)

    def oracle(
        self, rows: np.ndarray, gold_heads: np.ndarray, gold_labels: np.ndarray, gold_children: np.ndarray
    ) -> np.ndarray:
        """The static oracle's next transition for each given sentence.

        ``gold_heads``, ``gold_labels``, ``gold_children`` are (B, N + 2) int
        arrays over positions (head, label id and number of children of each
        token; anything at 0 and ``none``, whose heads must not equal a real
        token). Raises ValueError when a sentence has no oracle transition,
        i.e. its tree is not projective.
        """
        s1, s2 = self.top(1, rows), self.top(2, rows)
        two = self.depth[rows] >= 2
        left = two & (s2 != 0) & (s2 != self.none) & (gold_heads[rows, s2] == s1)
        right = two & ~left & (gold_heads[rows, s1] == s2) & (self.attached[rows, s1] == gold_children[rows, s1])
        shift = ~left & ~right
        if (shift & (self.next_token[rows] > self.lengths[rows])).any():
            raise ValueError("no oracle transition: the tree is not projective")
        L = self.num_labels
        out = np.zeros(len(rows), dtype=np.int64)
        out[left] = 1 + gold_labels[rows[left], s2[left]]
        out[right] = 1 + L + gold_labels[rows[right], s1[right]]
        return out
