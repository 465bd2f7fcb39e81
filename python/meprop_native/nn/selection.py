"""Which entries of dy a meProp layer keeps, step by step, and the state that takes.

The paper keeps a fixed k of the largest |dy| entries. A :class:`Selection`
adds the remedies and ablations around that choice, all of them ahead of the
same native backward kernels:

* **error feedback** (``memory_decay > 0``; memorized sparse back-propagation,
  Zhang, Sun et al., arXiv 1905.10194): what top-k drops is remembered per
  output unit and added back before the next selection (the native kernel does
  this; see ``meprop/error_feedback.hpp``);
* **adaptive k** (``k_rule``): ``"fixed"`` (the paper), ``"tinyprop"``
  (TinyProp, arXiv 2308.09201: the ratio follows the gradient's L1 norm
  against its running maximum) or ``"mass"`` (this library's rule: the
  smallest k whose top-k keeps a fraction ``k_mass`` of each example's
  sum of |dy|, averaged over the batch), within ``k_min .. k_max``;
* **warm-up** (``warmup_steps``): ``"dense"`` steps first, or a ``"ramp"`` of k
  falling geometrically from n to k, as Deep Gradient Compression ramps its
  ratio;
* **random selection** (``select="random"``): k of n entries uniformly per
  example (or per batch), the paper's Figure 4 ablation.

It also counts the entries it keeps, so that a run reports the fraction of
dy that really flowed back (``kept_fraction``), and, for meSimp
(``track_hits``), how many examples selected each output unit (``hits``),
which decides the units a simplification removes (``keep``).
"""

from __future__ import annotations

import math

import numpy as np

from ..modes import check_k

K_RULES = ("fixed", "tinyprop", "mass")
SELECTS = ("topk", "random")
WARMUPS = ("dense", "ramp")


class Selection:
    """The selection policy of one layer with n outputs and nominal k.

    Args:
        n: the layer's output size (entries of one row of dy).
        k: entries kept per example (per batch in unified mode); None: dense.
        unified: one index set per mini-batch instead of one per example.
        memory_decay: error feedback's decay in [0, 1]; 0 turns it off.
        select: ``"topk"`` or ``"random"``.
        k_rule, k_min, k_max, k_mass: adaptive k (see the module docstring);
            k_min / k_max default to 1 and n.
        tinyprop_zeta, depth: TinyProp's per-layer damping zeta**depth, with
            depth the layer's distance from the output (0 for the last).
        warmup_steps, warmup: the warm-up's length in steps and its kind.
        seed: seeds the generator of random selection.
    """

    def __init__(
        self,
        n: int,
        k: int | None,
        *,
        unified: bool = False,
        memory_decay: float = 0.0,
        select: str = "topk",
        k_rule: str = "fixed",
        k_min: int | None = None,
        k_max: int | None = None,
        k_mass: float = 0.9,
        tinyprop_zeta: float = 1.0,
        depth: int = 0,
        warmup_steps: int = 0,
        warmup: str = "ramp",
        seed: int = 0,
    ) -> None:
        check_k(k)
        if not (isinstance(memory_decay, (int, float)) and 0.0 <= memory_decay <= 1.0):
            raise ValueError(f"memory_decay must be in [0, 1] (0: no error feedback), got {memory_decay!r}")
        if select not in SELECTS:
            raise ValueError(f"select must be one of {SELECTS}, got {select!r}")
        if k_rule not in K_RULES:
            raise ValueError(f"k_rule must be one of {K_RULES}, got {k_rule!r}")
        if warmup not in WARMUPS:
            raise ValueError(f"warmup must be one of {WARMUPS}, got {warmup!r}")
        if not (isinstance(warmup_steps, (int, np.integer)) and warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
        if not 0.0 < k_mass <= 1.0:
            raise ValueError(f"k_mass must be in (0, 1], got {k_mass}")
        if not 0.0 < tinyprop_zeta <= 1.0:
            raise ValueError(f"tinyprop_zeta must be in (0, 1], got {tinyprop_zeta}")
        self.n = n
        # k as asked for: a layer that meSimp shrinks below it keeps all its units.
        self.k_nominal = None if k is None else int(k)
        self.k = None if k is None else int(min(k, n))
        self.unified = unified
        self.memory_decay = float(memory_decay)
        self.select = select
        self.k_rule = k_rule
        self.k_min_nominal = 1 if k_min is None else int(k_min)
        self.k_min = self.k_min_nominal
        self.k_max_nominal = n if k_max is None else int(k_max)
        self.k_max = min(self.k_max_nominal, n)
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError(f"need 1 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
        # Whether the layer back-propagates every entry by construction (a
        # dense layer, or k >= n): fixed, so that a layer meSimp shrinks to k
        # units or fewer still counts as the meProp layer it was.
        self._dense = self.k is None or (self.k >= self.n and self.k_rule == "fixed")
        self.k_mass = k_mass
        self.tinyprop_zeta = tinyprop_zeta
        self.depth = depth
        self.warmup_steps = int(warmup_steps)
        self.warmup = warmup
        self.rng = np.random.default_rng([seed, 0x5E1EC7])
        self.memory: np.ndarray | None = None
        # Counters, checkpointed: steps taken, TinyProp's running max of
        # sum |dy|, and the entries kept out of all entries seen.
        self.steps = 0
        self.y_max = 0.0
        self.kept = 0
        self.seen = 0
        # meSimp's record (track_hits): examples that selected each unit, and
        # examples counted, since the last simplification.
        self.hits: np.ndarray | None = None
        self.hit_examples = 0

    @property
    def dense(self) -> bool:
        """True when the layer was built to keep every entry (no k, or k >= its original n)."""
        return self._dense

    def track_hits(self) -> None:
        """Starts counting, per output unit, the examples whose kept entries include it (meSimp)."""
        if self.hits is None:
            self.hits = np.zeros(self.n, dtype=np.int64)

    def record_hits(self, batch: int) -> np.ndarray | None:
        """The hit counts the backward of a batch adds to (None when not tracking); counts the batch."""
        if self.hits is not None:
            self.hit_examples += batch
        return self.hits

    def reset_hits(self) -> None:
        """Forgets the hits counted so far (after a simplification, as meSimp does)."""
        if self.hits is not None:
            self.hits[:] = 0
        self.hit_examples = 0

    def keep(self, units: np.ndarray) -> None:
        """The layer keeps only these output units (ascending ids): n, k and the error
        memory follow; k stays at most n, so a layer shrunk to k units or fewer is dense."""
        units = np.asarray(units, dtype=np.int64)
        if units.ndim != 1 or len(units) < 1 or (units < 0).any() or (units >= self.n).any():
            raise ValueError(f"units to keep must be 1-D ids in [0, {self.n}), at least one")
        if len(units) > 1 and not (units[1:] > units[:-1]).all():
            raise ValueError("units to keep must be strictly ascending")
        self._set_size(len(units))
        if self.memory is not None:
            self.memory = np.ascontiguousarray(self.memory[units])
        if self.hits is not None:
            self.hits = np.ascontiguousarray(self.hits[units])

    def resize(self, n: int) -> None:
        """Takes the size n, the memory and counts at zero: before the state of a
        simplified layer (a checkpoint, a best model of another size) is loaded."""
        if n != self.n:
            self._set_size(n)
            self.memory = None if self.memory is None else np.zeros(n, dtype=self.memory.dtype)
            self.hits = None if self.hits is None else np.zeros(n, dtype=np.int64)

    def _set_size(self, n: int) -> None:
        """n outputs, and the ks as asked for, at most n."""
        self.n = n
        self.k = None if self.k_nominal is None else min(self.k_nominal, n)
        self.k_max = min(self.k_max_nominal, n)
        self.k_min = min(self.k_min_nominal, self.k_max)

    def step_k(self, dy: np.ndarray) -> int:
        """This step's k for dy (n means dense); advances the step counter."""
        step = self.steps
        self.steps += 1
        if self.k is None:
            return self.n
        if step < self.warmup_steps:
            if self.warmup == "dense":
                return self.n
            # Geometric from n (step 0) towards the rule's k (step warmup_steps).
            target = self._rule_k(dy)
            # float(): NumPy 1.x rounds its own floats to floats.
            return max(target, round(float(self.n * (target / self.n) ** (step / self.warmup_steps))))
        return self._rule_k(dy)

    def _rule_k(self, dy: np.ndarray) -> int:
        if self.k_rule == "fixed":
            return self.k  # type: ignore[return-value]
        if self.k_rule == "tinyprop":
            y = float(np.abs(dy).sum())
            self.y_max = max(self.y_max, y)
            s_min, s_max = self.k_min / self.n, self.k_max / self.n
            ratio = s_min + (y * (s_max - s_min) / self.y_max if self.y_max > 0 else 0.0)
            k = math.floor(self.n * ratio * self.tinyprop_zeta**self.depth)
        else:
            k = mass_k(dy, self.k_mass)
        return int(min(max(k, self.k_min), self.k_max))

    def random_indices(self, batch: int, k: int) -> np.ndarray:
        """k of n column ids drawn uniformly without replacement, ascending:
        (batch, k) per example, (k,) unified."""
        if self.unified:
            return np.sort(self.rng.choice(self.n, size=k, replace=False)).astype(np.int64)
        keys = self.rng.random((batch, self.n))
        return np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1).astype(np.int64)

    def memory_for(self, dtype: np.dtype) -> np.ndarray | None:
        """The error memory (created at zero on first use), or None when off."""
        if self.memory_decay == 0.0:
            return None
        if self.memory is None or self.memory.dtype != dtype:
            self.memory = np.zeros(self.n, dtype=dtype)
        return self.memory

    def count(self, batch: int, k: int) -> None:
        """Records that k of n entries of each of batch rows were kept."""
        self.kept += batch * min(k, self.n)
        self.seen += batch * self.n

    @property
    def kept_fraction(self) -> float | None:
        """Entries kept over entries seen so far; None before any step."""
        return self.kept / self.seen if self.seen else None

    # ---- checkpoints ------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state a resume needs: counters, TinyProp's maximum, the memory."""
        state = {
            "counters": np.array([self.steps, self.kept, self.seen], dtype=np.int64),
            "y_max": np.array(self.y_max, dtype=np.float64),
        }
        if self.memory is not None:
            state["memory"] = self.memory.copy()
        if self.hits is not None:
            state["hits"] = self.hits.copy()
            state["hit_examples"] = np.array(self.hit_examples, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restores what state_dict saved; ValueError if it does not fit this layer."""
        counters = np.asarray(state.get("counters"))
        if counters.shape != (3,) or counters.dtype.kind != "i" or (counters < 0).any():
            raise ValueError("selection state: 'counters' must be 3 non-negative integers")
        y_max = float(np.asarray(state.get("y_max", np.nan)))
        if not (math.isfinite(y_max) and y_max >= 0):
            raise ValueError(f"selection state: 'y_max' must be a finite number >= 0, got {y_max}")
        memory = state.get("memory")
        if memory is not None:
            memory = np.asarray(memory)
            if memory.shape != (self.n,) or memory.dtype.kind != "f" or not np.isfinite(memory).all():
                raise ValueError(f"selection state: 'memory' must be {self.n} finite floats")
        hits = state.get("hits")
        if (hits is None) != (self.hits is None):
            raise ValueError(
                "selection state: the checkpoint "
                + ("counts" if hits is not None else "does not count")
                + " meSimp's unit hits and this run "
                + ("does not" if hits is not None else "does")
            )
        hit_examples = 0
        if hits is not None:
            hits = np.asarray(hits)
            hit_examples = int(np.asarray(state.get("hit_examples", -1)))
            if hits.shape != (self.n,) or hits.dtype.kind != "i" or (hits < 0).any() or hit_examples < 0:
                raise ValueError(f"selection state: 'hits' must be {self.n} counts >= 0 with 'hit_examples' >= 0")
        self.steps, self.kept, self.seen = (int(c) for c in counters)
        self.y_max = y_max
        self.memory = None if memory is None else memory.copy()
        if hits is not None:
            self.hits = hits.astype(np.int64, copy=True)
            self.hit_examples = hit_examples


def mass_k(dy: np.ndarray, mass: float) -> int:
    """The smallest k whose top-k keeps ``mass`` of each row's sum of |dy|, averaged over rows (rounded up)."""
    a = np.abs(dy)
    a = -np.sort(-a, axis=1)
    total = a.sum(axis=1, keepdims=True)
    reached = np.cumsum(a, axis=1) >= mass * total
    per_row = reached.argmax(axis=1) + 1
    return math.ceil(per_row.mean())
