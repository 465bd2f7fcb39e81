"""When meSimp simplifies during training, and what it reports.

The schedule follows the authors' MNIST code (lancopku/meSimp): an epoch is
cut into ``per_epoch`` equal parts (8 there) and after each part the hidden
layers drop the units that fewer than ``fraction`` (0.1) of that part's
examples selected. Training runs in cycles of ``cycle`` epochs (5): the
model is simplified in the even cycles (epochs 0-4, 10-14, ...) and trained
at its size in the odd ones, and the optimizer starts afresh at the start of
every cycle. (The authors' code re-initialises it at each of the eight
points of a cycle's last epoch, which ends the same way: fresh state when the
next cycle begins.) ``cycle=0`` simplifies in every epoch and never resets.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..bench.timing import TimingConfig, idle_pause, measure
from ..nn.sequential import Sequential
from ..nn.simplify import hidden_layers, hidden_sizes, simplify
from ..optim import Optimizer

# How the forward pass of the simplified model is timed against the original's.
FORWARD_TIMING = TimingConfig(min_runs=15, min_time_s=0.1, max_time_s=1.0, warmup=3)
FORWARD_ROUNDS = 3  # alternating blocks of each model, the median of their medians
FORWARD_INPUTS = 4  # rotating input arrays per block


@dataclass(frozen=True)
class SimplifyConfig:
    """meSimp's parameters: the fraction p, simplifications per epoch, the cycle
    length in epochs (0: no cycles) and whether each cycle resets the optimizer."""

    fraction: float = 0.1
    per_epoch: int = 8
    cycle: int = 5
    reset_optimizer: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"the simplification fraction must be in (0, 1), got {self.fraction}")
        if isinstance(self.per_epoch, bool) or not isinstance(self.per_epoch, int) or self.per_epoch < 1:
            raise ValueError(f"simplifications per epoch must be an integer >= 1, got {self.per_epoch!r}")
        if isinstance(self.cycle, bool) or not isinstance(self.cycle, int) or self.cycle < 0:
            raise ValueError(f"the cycle must be a whole number of epochs >= 0, got {self.cycle!r}")


class Simplifier:
    """Simplifies ``stack`` (the model's MLP) on the config's schedule, updating
    ``optimizer``'s state with it; the trainer calls it after steps and epochs.

    Built before any training, it keeps a copy of the unsimplified stack to time
    the forward pass against at the end (``time_forward``; off, the summary
    has no timing).
    """

    def __init__(
        self, config: SimplifyConfig, stack: Sequential, optimizer: Optimizer, time_forward: bool = True
    ) -> None:
        pairs = hidden_layers(stack)
        if not pairs:
            raise ValueError("meSimp needs a hidden linear layer followed by another linear layer")
        if all(layer.selection.dense for layer, _ in pairs):
            raise ValueError("meSimp counts meProp's selections: the hidden layers are dense (give a k)")
        self.config = config
        self.stack = stack
        self.optimizer = optimizer
        self.time_forward = time_forward
        self.initial_sizes = hidden_sizes(stack)
        self._original = copy.deepcopy(stack)
        for layer, _ in pairs:
            layer.selection.track_hits()
        # (epoch, step, hidden sizes) after every simplification that removed units.
        self.history: list[dict[str, Any]] = []

    def simplifies_in(self, epoch: int) -> bool:
        """Whether the model is simplified during epoch ``epoch`` (0-based)."""
        return self.config.cycle == 0 or (epoch // self.config.cycle) % 2 == 0

    def points(self, steps: int) -> set[int]:
        """The steps of an epoch of ``steps`` after which the model is simplified (its end included)."""
        n = self.config.per_epoch
        return {round(j * steps / n) for j in range(1, n + 1)} - {0}

    def after_step(self, epoch: int, step_in_epoch: int, steps: int, global_step: int) -> None:
        """Simplifies if this step ends one of the epoch's parts (the epoch's end is
        left to ``end_epoch``, after its evaluation)."""
        if step_in_epoch < steps and self.simplifies_in(epoch) and step_in_epoch in self.points(steps):
            self._simplify(epoch, global_step)

    def end_epoch(self, epoch: int, global_step: int) -> None:
        """The simplification of the epoch's last part, then the optimizer's reset when a cycle ends."""
        if self.simplifies_in(epoch):
            self._simplify(epoch, global_step)
        cycle = self.config.cycle
        if self.config.reset_optimizer and cycle > 0 and (epoch + 1) % cycle == 0:
            self.optimizer.reset()

    def _simplify(self, epoch: int, global_step: int) -> None:
        before = hidden_sizes(self.stack)
        after = simplify(self.stack, self.config.fraction, self.optimizer)
        if after != before:
            self.history.append({"epoch": epoch + 1, "step": global_step, "sizes": after})

    @property
    def sizes(self) -> list[int]:
        """The hidden sizes now."""
        return hidden_sizes(self.stack)

    def weight_names(self, model: Any) -> list[str]:
        """The names, in ``model.named_parameters()``, of the simplified layers' weights, in layer order."""
        order = {id(layer.weight): i for i, (layer, _) in enumerate(hidden_layers(self.stack))}
        named = [(order[id(p)], name) for name, p in model.named_parameters() if id(p) in order]
        return [name for _, name in sorted(named)]

    # ---- checkpoints and the summary ---------------------------------------

    def state(self) -> list[dict[str, Any]]:
        """What a resume needs beyond the model and selections: the history (JSON)."""
        return copy.deepcopy(self.history)

    def load_state(self, history: list[dict[str, Any]]) -> None:
        self.history = copy.deepcopy(history)

    def forward_timing(self, batch: int) -> dict[str, Any]:
        """The forward pass of the stack now against the unsimplified one, on ``batch``
        rows: medians in microseconds over alternating blocks, and the speed-up."""
        first = self._original.linear_layers()[0]
        dtype, width = first.weight.value.dtype, first.in_features
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal((batch, width)).astype(dtype) for _ in range(FORWARD_INPUTS)]
        medians: dict[str, list[float]] = {"simplified": [], "original": []}
        models = {"simplified": self.stack, "original": self._original}
        for model in models.values():
            model.eval()
        try:
            for _ in range(FORWARD_ROUNDS):
                for name, model in models.items():
                    calls = [lambda x=x, m=model: m.forward(x) for x in inputs]
                    medians[name].append(measure(calls, FORWARD_TIMING).median_ns / 1000.0)
                    idle_pause()
        finally:
            for model in models.values():
                model.train()
        simplified = statistics.median(medians["simplified"])
        original = statistics.median(medians["original"])
        return {
            "batch": batch,
            "simplified_us": simplified,
            "original_us": original,
            "speedup": original / simplified if simplified > 0 else None,
        }

    def summary(self, batches: list[int]) -> dict[str, Any]:
        """The settings, the sizes and their history, and the forward timing at each batch size."""
        return {
            **asdict(self.config),
            "initial_sizes": self.initial_sizes,
            "final_sizes": self.sizes,
            "history": self.state(),
            "forward": [self.forward_timing(b) for b in batches] if self.time_forward else [],
        }
