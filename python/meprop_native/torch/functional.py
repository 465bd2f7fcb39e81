"""meProp linear as a PyTorch autograd function: dense forward, native sparse backward.

The backward hands the native kernels NumPy views of the tensors' own memory
(``Tensor.numpy()`` shares it) and lets them write the gradients straight into
tensors allocated here, so the hot path copies nothing when its inputs are
contiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .. import _core, modes

SUPPORTED_DTYPES = (torch.float32, torch.float64)


def resolve_mode(k: int | None, mode: str, out_features: int) -> tuple[int | None, str]:
    """:func:`meprop_native.modes.resolve_mode`, with torch's TypeError for a k that is no integer."""
    return modes.resolve_mode(k, mode, out_features, wrong_type=TypeError)


def check_native_support(tensors: dict[str, torch.Tensor | None], layer: str, alternative: str) -> None:
    """Raises unless the native kernels can run on these tensors (CPU, float32/float64,
    dense, one dtype). ``layer`` names the layer in the message, ``alternative`` the
    torch module to use where they cannot."""
    present = {name: t for name, t in tensors.items() if t is not None}
    for name, t in present.items():
        if t.device.type != "cpu":
            raise ValueError(
                f"{layer} runs its native kernels on the CPU only; {name} is on {t.device}"
                f" (use {alternative} there, or move the model to the CPU)"
            )
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{layer} supports float32 and float64; {name} has dtype {t.dtype}"
                " (float16/bfloat16 and other dtypes have no native kernels)"
            )
        if t.layout != torch.strided:
            raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    dtypes = {t.dtype for t in present.values()}
    if len(dtypes) > 1:
        raise TypeError(f"{', '.join(present)} must share one dtype, got {sorted(map(str, dtypes))}")


def check_backward_support(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Raises unless the native backward can run on these tensors."""
    check_native_support({"input": x, "weight": weight, "bias": bias}, "meprop_native.torch", "torch.nn.Linear")


def as_rows(t: torch.Tensor, cols: int) -> torch.Tensor:
    """A C-contiguous (N, cols) tensor: a view of ``t`` when it is contiguous, else a copy.

    The copy is the documented fallback for non-contiguous inputs and output
    gradients (e.g. the expanded gradient of ``y.sum()``).
    """
    return t.detach().reshape(-1, cols).contiguous()


class MepropLinearFunction(torch.autograd.Function):
    """``y = x W^T + b`` with meProp's backward.

    Forward: ``torch.nn.functional.linear``. Backward: of ``dy`` (..., n_out)
    only the ``k`` largest-magnitude entries per example (``per_example``) or
    one set of ``k`` columns per batch (``unified``) are kept; ``dx`` and
    ``dW`` are the dense gradients of that masked ``dy`` (``dW`` is zero in
    untouched rows), ``db = sum(dy)`` over all leading dims is dense, as in
    the paper. Gradients the graph does not need are not computed.
    ``k`` and ``mode`` must already be resolved by :func:`resolve_mode`.

    ``sparse_grad=True`` gives ``dW`` as a row-sparse tensor (``torch.sparse_coo``,
    coalesced, one index dimension: the touched rows) instead of a dense one
    with zero rows: the backward then writes only those rows, and an optimizer
    that takes sparse gradients (``meprop_native.torch.optim.Adam``,
    ``torch.optim.SparseAdam``, ``torch.optim.SGD``) updates only them.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, k, mode, memory=None, memory_decay=0.0, sparse_grad=False):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.k = k
        ctx.mode = mode
        ctx.memory = memory
        ctx.memory_decay = memory_decay
        ctx.has_bias = bias is not None
        ctx.sparse_grad = sparse_grad
        return F.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        need_dx, need_dW, need_db = ctx.needs_input_grad[:3]
        n_out, n_in = weight.shape
        if dy.dtype != weight.dtype:  # e.g. under torch.autocast, which casts F.linear's output
            raise TypeError(
                f"meprop_native.torch: the output gradient has dtype {dy.dtype} but the weight {weight.dtype};"
                " autocast and other dtype changes of the layer's output are not supported"
            )
        if n_out == 0 or n_in == 0:  # nothing to select from or nothing to multiply: sums of nothing
            dx = torch.zeros_like(x) if need_dx else None
            dW = torch.zeros_like(weight) if need_dW else None
            db = None
            if need_db and ctx.has_bias:
                db = dy.detach().reshape(-1, n_out).sum(0) if n_out else torch.zeros(0, dtype=weight.dtype)
            return dx, dW, db, None, None, None, None, None
        dy2 = as_rows(dy, n_out)
        x2 = as_rows(x, n_in)
        W = weight.detach().contiguous()
        if ctx.sparse_grad and need_dW and dy2.shape[0] > 0:
            return _sparse_backward(ctx, dy2, x2, W, need_dx, need_db) + (None,) * 5
        dx2 = torch.empty_like(x2) if need_dx else None
        dW = torch.empty_like(W) if need_dW else None
        db = torch.empty(n_out, dtype=W.dtype) if need_db and ctx.has_bias else None
        if dy2.shape[0] == 0:  # an empty batch: every gradient is an empty sum
            for g in (dW, db):
                if g is not None:
                    g.zero_()
        elif dx2 is not None or dW is not None or db is not None:
            _core.linear_backward_into(
                dy2.numpy(),
                x2.numpy(),
                W.numpy(),
                ctx.k,
                ctx.mode,
                dx_out=None if dx2 is None else dx2.numpy(),
                dW_out=None if dW is None else dW.numpy(),
                db_out=None if db is None else db.numpy(),
                memory=None if ctx.memory is None else ctx.memory.numpy(),
                memory_decay=ctx.memory_decay,
            )
        dx = None if dx2 is None else dx2.view(x.shape)
        if dW is not None and ctx.sparse_grad:  # an empty batch: no row touched
            dW = row_sparse(torch.zeros(0, dtype=torch.int64), dW[:0], weight.shape)
        return dx, dW, db, None, None, None, None, None


def row_sparse(rows: torch.Tensor, values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A coalesced ``torch.sparse_coo`` tensor of ``shape`` whose rows ``rows``
    (ascending, distinct) hold ``values`` (len(rows), shape[1]); no copy."""
    return torch.sparse_coo_tensor(rows.view(1, -1), values, shape, is_coalesced=True, check_invariants=False)


def _sparse_backward(
    ctx, dy2: torch.Tensor, x2: torch.Tensor, W: torch.Tensor, need_dx: bool, need_db: bool
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:  # type: ignore[no-untyped-def]
    """dx, the row-sparse dW and db from the touched rows of the native backward."""
    x, weight = ctx.saved_tensors
    memory = None if ctx.memory is None else ctx.memory.numpy()
    dx, rows, dW_rows, db = _core.linear_backward_compact(
        dy2.numpy(),
        x2.numpy(),
        W.numpy(),
        None if ctx.mode == "dense" else ctx.k,
        ctx.mode,
        need_dx,
        memory=memory,
        memory_decay=ctx.memory_decay if memory is not None else 1.0,
    )
    assert not isinstance(dW_rows, _core.WeightGradient)  # computed, not deferred
    dW = row_sparse(torch.from_numpy(rows), torch.from_numpy(dW_rows), weight.shape)
    dx_t = None if dx is None else torch.from_numpy(dx).view(x.shape)
    db_t = torch.from_numpy(db) if need_db and ctx.has_bias else None
    return dx_t, dW, db_t


def meprop_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    k: int | None = None,
    mode: str = "per_example",
    memory: torch.Tensor | None = None,
    memory_decay: float = 1.0,
    sparse_grad: bool = False,
) -> torch.Tensor:
    """``torch.nn.functional.linear`` whose backward is meProp's.

    Args:
        x: (..., in_features) float32 or float64 CPU tensor.
        weight: (out_features, in_features), same dtype.
        bias: (out_features,) or None.
        k: entries of dy kept per example (``per_example``) or columns per
            batch (``unified``); ``None`` or ``k >= out_features`` is dense.
        mode: ``"per_example"`` (the paper's meProp), ``"unified"`` or ``"dense"``.
        memory: error feedback's memory, a CPU (out_features,) tensor of the
            weight's dtype, updated in place by the backward: what top-k drops
            is added back before the next selection (``meprop_native.nn.Selection``).
            None (default): plain meProp.
        memory_decay: the memory's decay in [0, 1].
        sparse_grad: the weight's gradient as a row-sparse ``torch.sparse_coo``
            tensor holding only the touched rows (see ``MepropLinearFunction``).

    Returns:
        (..., out_features), computed densely.

    When no gradient is needed (``torch.no_grad()``, or no argument requires
    grad) this is plain ``F.linear`` on any device and dtype. Otherwise the
    tensors must be on the CPU in float32/float64 (else ``ValueError`` /
    ``TypeError``), and only one backward is possible: ``create_graph=True``
    (double backward) raises. Non-contiguous ``x``, ``weight`` or output
    gradients are copied to contiguous memory in the backward.
    """
    if weight.dim() != 2 or x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"input of shape {tuple(x.shape)} does not match weight of shape {tuple(weight.shape)}"
            " (need (..., in_features) and (out_features, in_features))"
        )
    k, mode = resolve_mode(k, mode, weight.shape[0])
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        return F.linear(x, weight, bias)
    check_backward_support(x, weight, bias)
    if memory is not None:
        if memory.device.type != "cpu" or memory.dtype != weight.dtype or memory.shape != (weight.shape[0],):
            raise ValueError(
                f"memory must be a CPU tensor of shape ({weight.shape[0]},) and dtype {weight.dtype}, "
                f"got {tuple(memory.shape)} {memory.dtype} on {memory.device}"
            )
        if not memory.is_contiguous():
            raise ValueError("memory must be contiguous: the backward updates it in place")
        if not 0.0 <= memory_decay <= 1.0:
            raise ValueError(f"memory_decay must be in [0, 1], got {memory_decay}")
    return MepropLinearFunction.apply(x, weight, bias, k, mode, memory, float(memory_decay), bool(sparse_grad))
