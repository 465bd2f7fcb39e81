"""SGD, AdaGrad and Adam over row-form gradients, on fused native kernels.

By default the optimizers behave as in the paper's code: every parameter is
updated, so under Adam rows that got no gradient this step still move through
their moments. ``lazy=True`` (Adam) updates only the rows that received
gradient. SGD and AdaGrad leave rows without gradient unchanged either way
(their update for a zero gradient is zero). ``clip > 0`` clips each gradient
element to [-clip, clip] first (the paper used 5).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np

from . import _core
from .nn.parameter import Parameter

_NO_ROWS = np.zeros(0, dtype=np.int64)
# Gradient rows as the native updates take them: computed, or deferred (fused).
_Gradient = Union[np.ndarray, _core.WeightGradient]


class Optimizer:
    """Holds the parameters and their per-parameter state arrays."""

    def __init__(self, params: list[Parameter], lr: float, clip: float = 0.0) -> None:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a finite number > 0, got {lr}")
        if not (math.isfinite(clip) and clip >= 0):
            raise ValueError(f"clip must be a finite number >= 0 (0 disables clipping), got {clip}")
        self.params = list(params)
        seen: set[int] = set()
        for p in self.params:
            if id(p) in seen:
                raise ValueError(f"parameter {p.name!r} is given twice: it would be updated twice a step")
            seen.add(id(p))
        self.lr = lr
        self.clip = clip
        self.steps = 0

    def step(self) -> None:
        """Updates every parameter in place from its row-form gradient (none: zero)."""
        step = self.steps + 1  # counted only once every update went through
        gradients = [self._gradient(i, p) for i, p in enumerate(self.params)]
        # Every gradient is checked before any parameter moves: a bad one of a
        # later parameter must not leave the earlier ones half a step ahead.
        for i, (rows, grad) in enumerate(gradients):
            self._update(i, self.params[i], rows, grad, step)
        self.steps = step

    @staticmethod
    def _gradient(i: int, p: Parameter) -> tuple[np.ndarray, _Gradient]:
        """Parameter i's (rows, grad rows), checked as the native update would check them.

        On the hot path of every step, so the checks are the cheap ones:
        ascending rows make the first and last the range to check. A deferred
        gradient (``_core.WeightGradient``) stays deferred: the native update
        computes its rows while updating them.
        """
        matrix = p.matrix()
        rows = p.grad_rows if p.grad_rows is not None else _NO_ROWS
        given = p.update_grad
        grad = given if given is not None else np.zeros((0, matrix.shape[1]), p.value.dtype)
        if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.ndim != 1:
            raise TypeError(f"parameter {i} ({p.name}): gradient rows must be a 1-D int64 array")
        if not isinstance(grad, (np.ndarray, _core.WeightGradient)) or grad.dtype != p.value.dtype:
            raise TypeError(f"parameter {i} ({p.name}): gradient must be an array of dtype {p.value.dtype}")
        if grad.shape != (rows.shape[0], matrix.shape[1]):
            raise ValueError(f"parameter {i} ({p.name}): gradient must be {rows.shape[0]} x {matrix.shape[1]}")
        if rows.shape[0]:
            if rows.shape[0] > 1 and not (rows[1:] > rows[:-1]).all():
                raise ValueError(f"parameter {i} ({p.name}): gradient row ids must be strictly ascending")
            if rows[0] < 0 or rows[-1] >= matrix.shape[0]:
                raise ValueError(f"parameter {i} ({p.name}): a gradient row id is outside [0, {matrix.shape[0]})")
        return rows, grad

    def zero_grad(self) -> None:
        """Forgets every parameter's gradient."""
        for p in self.params:
            p.zero_grad()

    def _update(self, i: int, p: Parameter, rows: np.ndarray, grad: _Gradient, step: int) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Named state arrays (for checkpoints); shared with the optimizer."""
        return {}

    # ---- per-parameter state as parameters change shape (meSimp) -------------

    def _per_parameter_state(self) -> list[tuple[list[np.ndarray], bool, float]]:
        """The state kept per parameter: (arrays, one entry per row?, initial value).
        An entry of ``arrays`` belongs to the parameter of the same index;
        ``False``: shaped like the parameter's matrix."""
        return []

    def take(self, param: Parameter, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> None:
        """Keeps the state of these rows and columns of ``param``'s matrix (ascending
        ids; None: all), for a parameter that a simplification just shrank the same way."""
        i = self._index(param)
        for arrays, per_row, _ in self._per_parameter_state():
            a = arrays[i]
            if rows is not None:
                a = a[rows]
            if cols is not None and not per_row:
                a = a[:, cols]
            arrays[i] = np.ascontiguousarray(a)

    def fit_parameters(self) -> None:
        """Fresh state for every parameter whose shape changed since the state was made
        (a model resized to a checkpoint's sizes, before that checkpoint is loaded)."""
        for arrays, per_row, initial in self._per_parameter_state():
            for i, p in enumerate(self.params):
                shape = p.matrix().shape[:1] if per_row else p.matrix().shape
                if arrays[i].shape != shape:
                    arrays[i] = np.full(shape, initial, dtype=arrays[i].dtype)

    def reset(self) -> None:
        """Starts again as if new: every state array at its initial value, the step count at 0
        (meSimp re-initialises the optimizer at the start of each cycle)."""
        for arrays, _, initial in self._per_parameter_state():
            for a in arrays:
                a[...] = initial
        self.steps = 0

    def _index(self, param: Parameter) -> int:
        for i, p in enumerate(self.params):
            if p is param:
                return i
        raise ValueError(f"parameter {param.name!r} is not one this optimizer updates")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the state arrays plus "steps" (0-d int64), for checkpoints."""
        state = {name: a.copy() for name, a in self.state_arrays().items()}
        state["steps"] = np.array(self.steps, dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copies a state_dict back in place; ValueError if an array is missing or misshapen."""
        steps = np.asarray(state.get("steps", np.nan))
        if steps.shape != () or steps.dtype.kind not in "iu" or int(steps) < 0:
            raise ValueError(f"optimizer state 'steps' must be an integer >= 0, got {steps!r}")
        for name, array in self.state_arrays().items():
            if name not in state or state[name].shape != array.shape:
                raise ValueError(f"optimizer state {name!r} missing or of the wrong shape")
            if not np.isfinite(state[name]).all():
                raise ValueError(f"optimizer state {name!r} holds NaN or infinite values")
        for name, array in self.state_arrays().items():
            array[...] = state[name]
        self.steps = int(steps)


class SGD(Optimizer):
    """param -= lr * grad."""

    def _update(self, i: int, p: Parameter, rows: np.ndarray, grad: _Gradient, step: int) -> None:
        if len(rows):
            _core.sgd_update(p.matrix(), rows, grad, self.lr, self.clip)


class AdaGrad(Optimizer):
    """sum_sq += grad^2; param -= lr * grad / (sqrt(sum_sq) + eps)."""

    def __init__(self, params: list[Parameter], lr: float = 0.01, eps: float = 1e-6, clip: float = 0.0) -> None:
        super().__init__(params, lr, clip)
        self.eps = eps
        self.sum_sq = [np.zeros_like(p.matrix()) for p in self.params]

    def _update(self, i: int, p: Parameter, rows: np.ndarray, grad: _Gradient, step: int) -> None:
        if len(rows):
            _core.adagrad_update(p.matrix(), rows, grad, self.sum_sq[i], self.lr, self.eps, self.clip)

    def _per_parameter_state(self) -> list[tuple[list[np.ndarray], bool, float]]:
        return [(self.sum_sq, False, 0.0)]

    def state_arrays(self) -> dict[str, np.ndarray]:
        """ "sum_sq.<i>": the running sum of squared gradients of parameter i."""
        return {f"sum_sq.{i}": a for i, a in enumerate(self.sum_sq)}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; beta1 0.9, beta2 0.999, eps 1e-8.

    Rows without gradient (``lazy=False``) defer their moments' decay: their
    stored ``m`` and ``v`` stay as they are and per-row factors
    (``decay1[i]``, ``decay2[i]``: beta1^s and beta2^s after s steps without
    gradient) carry the decay, so such a row costs a read of its value and
    moments and a write of its value, not a rewrite of the moments too -- the
    larger part of a meProp step under Adam, where most rows get no gradient.
    The update is the same as decaying in place up to rounding (a few units in
    the last place); rows with gradient every step are updated bit for bit as
    without it. ``moments(i)`` gives parameter i's actual moments.
    """

    def __init__(
        self,
        params: list[Parameter],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        clip: float = 0.0,
        lazy: bool = False,
    ) -> None:
        super().__init__(params, lr, clip)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.lazy = lazy
        self.m = [np.zeros_like(p.matrix()) for p in self.params]
        self.v = [np.zeros_like(p.matrix()) for p in self.params]
        self.decay1 = [np.ones(p.matrix().shape[0]) for p in self.params]
        self.decay2 = [np.ones(p.matrix().shape[0]) for p in self.params]

    def _update(self, i: int, p: Parameter, rows: np.ndarray, grad: _Gradient, step: int) -> None:
        if self.lazy and not len(rows):
            return
        _core.adam_update(
            p.matrix(),
            rows,
            grad,
            self.m[i],
            self.v[i],
            step,
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.clip,
            self.lazy,
            self.decay1[i],
            self.decay2[i],  # by position: keywords cost ~1 us a call
        )

    def _per_parameter_state(self) -> list[tuple[list[np.ndarray], bool, float]]:
        return [(self.m, False, 0.0), (self.v, False, 0.0), (self.decay1, True, 1.0), (self.decay2, True, 1.0)]

    def moments(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Parameter i's first and second moments (new arrays, the deferred decay applied)."""
        m = (self.m[i] * self.decay1[i][:, None]).astype(self.m[i].dtype)
        v = (self.v[i] * self.decay2[i][:, None]).astype(self.v[i].dtype)
        return m, v

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """As Optimizer.load_state_dict; a state without the decay factors (saved
        before they existed) holds the actual moments, which factors of 1 keep."""
        names = [f"decay{j}.{i}" for j in (1, 2) for i in range(len(self.params))]
        if not any(name in state for name in names):
            state = dict(
                state,
                **{
                    f"decay{j}.{i}": np.ones_like(a)
                    for j, arrays in ((1, self.decay1), (2, self.decay2))
                    for i, a in enumerate(arrays)
                },
            )
        super().load_state_dict(state)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """ "m.<i>", "v.<i>": parameter i's stored moments; "decay1.<i>", "decay2.<i>": their deferred decay."""
        arrays = {f"m.{i}": a for i, a in enumerate(self.m)}
        arrays.update({f"v.{i}": a for i, a in enumerate(self.v)})
        arrays.update({f"decay1.{i}": a for i, a in enumerate(self.decay1)})
        arrays.update({f"decay2.{i}": a for i, a in enumerate(self.decay2)})
        return arrays


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adagrad": AdaGrad, "adam": Adam}
