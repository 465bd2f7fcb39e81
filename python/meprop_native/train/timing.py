"""The paper's time breakdown (its Table 2), summed over an epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TimeBreakdown:
    """Seconds spent in each part of training steps.

    forward:           forward pass and loss.
    backprop:          the linear layers' backward kernels only (the paper's
                       "backprop time").
    overall_backprop:  the whole backward pass, element-wise operations
                       included (the paper's "overall backprop time").
    optimizer:         parameter updates.
    total:             whole training steps (forward + backward + update +
                       batching), evaluation excluded.
    """

    forward: float = 0.0
    backprop: float = 0.0
    overall_backprop: float = 0.0
    optimizer: float = 0.0
    total: float = 0.0

    def add(self, other: TimeBreakdown) -> None:
        """Adds other's seconds to these, part by part."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float]:
        """{part: seconds}."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> TimeBreakdown:
        return cls(**values)
