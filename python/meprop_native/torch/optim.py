"""Adam for torch parameters on the native update, taking row-sparse gradients.

``torch.optim.Adam`` takes dense gradients only, so a meProp layer's weight
gradient, zero in most rows, is still read and every row of its moments
rewritten each step: at batch 32 that update costs more than the sparse
backward saves. :class:`Adam` here runs the library's native update
(``meprop_native.optim.Adam``'s kernel) on the parameters' own memory and
takes the row-sparse gradients of ``meprop_native.torch.Linear(sparse_grad=True)``:

* ``lazy=True`` (default): a parameter with a sparse gradient moves only in
  the rows that got gradient, as ``torch.optim.SparseAdam`` does; every row
  of a dense gradient moves.
* ``lazy=False``: every row moves every step, as ``torch.optim.Adam`` with the
  dense gradient; rows without gradient defer their moments' decay (a
  per-row factor) instead of rewriting them, so they cost a read and a
  write of the value only.

The update is bias-corrected Adam (Kingma & Ba 2015), the same as
``torch.optim.Adam`` with its defaults up to rounding (the native kernel
evaluates it in another order).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from .. import _core

_NO_ROWS = np.zeros(0, dtype=np.int64)


class Adam(torch.optim.Optimizer):
    """Adam on CPU float32/float64 parameters, dense or row-sparse gradients.

    Args:
        params: parameters or parameter groups, as for ``torch.optim``.
        lr, betas, eps: as ``torch.optim.Adam`` (defaults 1e-3, (0.9, 0.999), 1e-8).
        lazy: with a row-sparse gradient, move only its rows (default) or every row.

    State per parameter (in ``state_dict``): ``step``, ``exp_avg``,
    ``exp_avg_sq`` (as stored: a row's actual moments are these times its
    ``decay1`` / ``decay2`` factors, the deferred decay of steps without
    gradient, which are 1 while a row gets gradient every step).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        lazy: bool = True,
    ) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be a number > 0, got {eps!r}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "lazy": bool(lazy)})
        for group in self.param_groups:
            for p in group["params"]:
                _check_parameter(p)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                rows, grad = _gradient_rows(p)
                if group["lazy"] and p.grad.is_sparse and len(rows) == 0:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    state["decay1"] = torch.ones(_rows(p), dtype=torch.float64)
                    state["decay2"] = torch.ones(_rows(p), dtype=torch.float64)
                state["step"] += 1
                _core.adam_update(
                    _matrix(p.detach()),
                    rows,
                    grad,
                    _matrix(state["exp_avg"]),
                    _matrix(state["exp_avg_sq"]),
                    state["step"],
                    group["lr"],
                    beta1,
                    beta2,
                    group["eps"],
                    0.0,
                    group["lazy"] and p.grad.is_sparse,
                    state["decay1"].numpy(),
                    state["decay2"].numpy(),
                )
        return loss


def _check_parameter(p: torch.Tensor) -> None:
    if p.device.type != "cpu":
        raise ValueError(f"meprop_native.torch.optim.Adam runs on the CPU; a parameter is on {p.device}")
    if p.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"meprop_native.torch.optim.Adam supports float32 and float64 parameters, got {p.dtype}")
    if not p.is_contiguous() or p.dim() == 0:
        raise ValueError("meprop_native.torch.optim.Adam needs contiguous parameters of at least one dimension")


def _rows(p: torch.Tensor) -> int:
    return p.shape[0] if p.dim() > 1 else 1


def _matrix(t: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a 2-D array (rows, rest): a bias is one row."""
    return t.numpy().reshape(_rows(t), -1)


def _gradient_rows(p: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(rows, gradient rows) of p's gradient: the touched rows of a sparse one
    (summed where several backward passes added to it), every row of a dense one."""
    grad = p.grad
    assert grad is not None
    if grad.dtype != p.dtype:
        raise TypeError(f"a gradient has dtype {grad.dtype}, its parameter {p.dtype}")
    if grad.is_sparse:
        if grad.sparse_dim() != 1 or grad.dense_dim() != p.dim() - 1 or grad.shape != p.shape:
            raise ValueError(
                "a sparse gradient must be row-sparse (one sparse dimension, the parameter's first) "
                f"of shape {tuple(p.shape)}"
            )
        # Autograd's copy of a layer's gradient loses its coalesced flag; rows
        # that already ascend strictly are coalesced, and checking costs less
        # than torch's coalesce (a sort). Several backward passes leave
        # repeated rows, which coalesce() sums.
        rows = grad._indices()[0].numpy()
        if not (grad.is_coalesced() or (rows[1:] > rows[:-1]).all()):
            grad = grad.coalesce()
            rows = grad.indices()[0].numpy()
        values = grad._values().contiguous().numpy().reshape(len(rows), *_matrix(p.detach()).shape[1:])
        return rows, values
    if grad.layout != torch.strided:
        raise TypeError(f"gradients must be dense or row-sparse COO, got layout {grad.layout}")
    matrix = grad.detach().contiguous().numpy().reshape(_rows(p), -1)
    return np.arange(_rows(p), dtype=np.int64), matrix
