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
    ) -> None:
        resolve_mode(k, mode, out_features)  # fail at construction, not at the first step
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.k = k
        self.mode = mode

    @property
    def dense(self) -> bool:
        """Whether the backward keeps every entry of the output gradient."""
        return resolve_mode(self.k, self.mode, self.out_features)[1] == "dense"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return meprop_linear(input, self.weight, self.bias, self.k, self.mode)

    def extra_repr(self) -> str:
        kept = "dense" if self.dense else f"k={self.k}, mode={self.mode}"
        return f"{super().extra_repr()}, {kept}"
