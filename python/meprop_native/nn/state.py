"""Saving and restoring a model's parameters by name."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .parameter import Parameter


class NamedState:
    """``state_dict`` / ``load_state_dict`` for any model with ``named_parameters()``."""

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, by name."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copies values in place; names, shapes and dtypes must match exactly.

        Everything is checked before anything changes, so a state that does
        not fit leaves the model as it was.
        """
        params = dict(self.named_parameters())
        missing, unexpected = set(params) - set(state), set(state) - set(params)
        if missing or unexpected:
            raise KeyError(f"state does not fit the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        values = {name: np.asarray(state[name]) for name in params}
        for name, p in params.items():
            value = values[name]
            if value.shape != p.value.shape or value.dtype != p.value.dtype:
                raise ValueError(f"{name}: expected {p.value.shape} {p.value.dtype}, got {value.shape} {value.dtype}")
        for name, p in params.items():
            p.value[...] = values[name]
