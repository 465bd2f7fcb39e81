"""A drop-in ``torch.nn.Linear`` whose backward is meProp's."""

from __future__ import annotations

import torch

from .functional import meprop_linear, resolve_mode


class Linear(torch.nn.Linear):
    """``torch.nn.Linear`` with a meProp backward (Sun et al., 2017).

    Args:
        in_features, out_features, bias, device, dtype: as ``torch.nn.Linear``;
            parameters ``weight`` (out_features, in_features) and ``bias``
            (out_features,) are created and initialised by it, so state dicts
            interchange with ``torch.nn.Linear`` and the same seed gives the
            same initial weights.
        k: entries of the output gradient kept per example (``per_example``)
            or columns kept per batch (``unified``). ``None`` or
            ``k >= out_features`` means dense backprop through the same kernels.
        mode: ``"per_example"`` (the paper's meProp), ``"unified"`` (one top-k
            column set per batch, by the summed magnitudes) or ``"dense"``.
        memory_decay: error feedback (``meprop_native.nn.Selection``): what
            top-k drops is remembered per output unit, times this decay, and
            added back before the next selection. 0 (default): plain meProp.
            When on, the memory is the buffer ``error_memory`` and is saved in
            the state dict; a state dict without it (``torch.nn.Linear``'s)
            loads with the memory at zero.
        sparse_grad: ``weight.grad`` is row-sparse (``torch.sparse_coo``, the
            touched rows only) instead of dense with zero rows; with an
            optimizer that updates only those rows
            (``meprop_native.torch.optim.Adam``) the whole step gets cheaper,
            not only the backward. Off by default: most torch optimizers take
            dense gradients only.

    Input (..., in_features), output (..., out_features), as ``torch.nn.Linear``.
    The forward is ``torch.nn.functional.linear``. The backward needs CPU
    float32/float64 tensors; see :func:`meprop_native.torch.meprop_linear`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        k: int | None = None,
        mode: str = "per_example",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        memory_decay: float = 0.0,
        sparse_grad: bool = False,
    ) -> None:
        resolve_mode(k, mode, out_features)  # fail at construction, not at the first step
        if not (isinstance(memory_decay, (int, float)) and 0.0 <= memory_decay <= 1.0):
            raise ValueError(f"memory_decay must be in [0, 1] (0: no error feedback), got {memory_decay!r}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.k = k
        self.mode = mode
        self.memory_decay = float(memory_decay)
        self.sparse_grad = bool(sparse_grad)
        self.error_memory: torch.Tensor | None
        if self.memory_decay > 0:
            self.register_buffer("error_memory", torch.zeros(out_features, dtype=self.weight.dtype, device=device))
        else:
            self.error_memory = None

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):  # type: ignore[no-untyped-def]
        key = prefix + "error_memory"
        if self.error_memory is not None and key not in state_dict:
            state_dict = dict(state_dict)
            state_dict[key] = torch.zeros_like(self.error_memory)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @property
    def dense(self) -> bool:
        """Whether the backward keeps every entry of the output gradient."""
        return resolve_mode(self.k, self.mode, self.out_features)[1] == "dense"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return meprop_linear(
            input, self.weight, self.bias, self.k, self.mode, self.error_memory, self.memory_decay, self.sparse_grad
        )

    def extra_repr(self) -> str:
        kept = "dense" if self.dense else f"k={self.k}, mode={self.mode}"
        if self.memory_decay and not self.dense:
            kept += f", memory_decay={self.memory_decay}"
        if self.sparse_grad:
            kept += ", sparse_grad=True"
        return f"{super().extra_repr()}, {kept}"
