"""A ``torch.nn.LSTM`` whose recurrence and backward through time are native.

The forward runs the input projection of all steps as one torch GEMM and the
recurrence in the native kernel; the backward is the native meProp backward
through time (``meprop_native.nn.LSTM``'s), which keeps the ``k`` largest
entries of every step's gate gradient for all matrix products. The kernels see
NumPy views of the tensors' own memory (``Tensor.numpy()`` shares it), and
their results become tensors without a copy (``torch.from_numpy``).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from .. import _core
from ..nn.lstm import reversal_index
from .functional import check_native_support, resolve_mode


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of ``t``'s memory (of a contiguous copy if ``t`` is not contiguous)."""
    return t.detach().contiguous().numpy()


class MepropLSTMFunction(torch.autograd.Function):
    """One LSTM layer over packed sequences, zero initial state, meProp backward.

    Inputs:
        x: (N, input_size), the steps of B sequences back to back, sequence b
            in rows ``offsets[b]:offsets[b+1]`` (time order within a sequence).
        weight_ih (4h, input_size), weight_hh (4h, h): gate rows i, f, g, o.
        bias_ih, bias_hh: (4h,) each, or both None. The kernel adds their sum.
        offsets: (B + 1,) int64 NumPy array, ascending from 0 to N.
        k: gate-gradient entries kept per step; ``None`` is dense. Must be
            resolved already (``None`` when ``k >= 4h``).

    Outputs:
        hidden (N, h): h_t of every step; c_last (B, h): the last cell state of
        every sequence (zero for an empty one).

    Backward: from the gradient of ``hidden`` (a gradient of ``c_last`` is
    refused: the kernel back-propagates hidden states only), the dense gate
    gradient dz_t of each step is masked to its ``k`` largest magnitudes for
    dx, dW_ih, dW_hh and the recurrent dh_{t-1}; both bias gradients are the
    dense sum of dz (the same values, as in ``torch.nn.LSTM``, where the two
    biases enter the gates as a sum). ``dW_ih``/``dW_hh`` are zero outside the
    gate rows some step kept.
    """

    @staticmethod
    def forward(ctx, x, weight_ih, weight_hh, bias_ih, bias_hh, offsets, k):  # type: ignore[override]
        # Our own copy: the backward reads the boundaries again, after the caller may have changed them.
        offsets = np.array(offsets, dtype=np.int64)
        # In the parameters' dtype even under torch.autocast: the kernels have no float16/bfloat16.
        with torch.autocast("cpu", enabled=False):
            input_gates = torch.mm(x.detach(), weight_ih.detach().t())
            if bias_ih is not None:
                input_gates += bias_ih.detach() + bias_hh.detach()
        gates, cells, cell_tanh, hidden = _core.lstm_forward(input_gates.numpy(), _numpy(weight_hh), offsets)
        hidden_t = torch.from_numpy(hidden)
        cells_t = torch.from_numpy(cells)
        ends = torch.from_numpy(offsets[1:] - 1)
        c_last = cells_t.index_select(0, ends.clamp(min=0))  # a copy, not a view of the cache
        c_last[torch.from_numpy(offsets[1:] == offsets[:-1])] = 0  # empty sequences end in the zero state
        ctx.save_for_backward(x, weight_ih, weight_hh, hidden_t)
        ctx.cache = (gates, cells, cell_tanh)
        ctx.offsets = offsets
        ctx.k = k
        ctx.set_materialize_grads(False)
        return hidden_t, c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, dhidden, dc_last):  # type: ignore[override]
        if dc_last is not None and bool(dc_last.ne(0).any()):
            raise RuntimeError(
                "meprop_native.torch.LSTM cannot back-propagate a gradient of the final cell state c_n:"
                " the native backward takes gradients of the hidden states only (use the output or h_n"
                " in the loss, or torch.nn.LSTM)"
            )
        x, weight_ih, weight_hh, hidden = ctx.saved_tensors
        need_dx, need_dW_ih, need_dW_hh, need_db_ih, need_db_hh = ctx.needs_input_grad[:5]
        if dhidden is None:
            dhidden = torch.zeros_like(hidden)
        gates, cells, cell_tanh = ctx.cache
        dx, rows, dW_ih_rows, dW_hh_rows, db, _, _ = _core.lstm_backward(
            x.detach().numpy(),
            _numpy(weight_ih),
            _numpy(weight_hh),
            ctx.offsets,
            gates,
            cells,
            cell_tanh,
            hidden.detach().numpy(),
            _numpy(dhidden),
            ctx.k,
            input_grad=need_dx,
        )
        rows_t = torch.from_numpy(rows)

        def scatter(compact: np.ndarray, shape: torch.Size) -> torch.Tensor:
            full = torch.zeros(shape, dtype=x.dtype)
            return full.index_copy_(0, rows_t, torch.from_numpy(compact))

        db_t = torch.from_numpy(db)
        return (
            torch.from_numpy(dx) if need_dx else None,
            scatter(dW_ih_rows, weight_ih.shape) if need_dW_ih else None,
            scatter(dW_hh_rows, weight_hh.shape) if need_dW_hh else None,
            db_t if need_db_ih else None,
            # A tensor of its own: in-place work on one bias's .grad must not change the other's.
            (db_t.clone() if need_db_ih else db_t) if need_db_hh else None,
            None,
            None,
        )


class LSTM(torch.nn.LSTM):
    """``torch.nn.LSTM`` with the native recurrence and a meProp backward (Sun et al., 2017).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device, dtype: as ``torch.nn.LSTM``, which creates
            and initialises the parameters (``weight_ih_l{l}`` (4h, in),
            ``weight_hh_l{l}`` (4h, h), ``bias_ih_l{l}``, ``bias_hh_l{l}``
            (4h,), ``_reverse`` for the backward direction; gates ordered i,
            f, g, o), so state dicts interchange with ``torch.nn.LSTM`` and
            the same seed gives the same initial weights.
        proj_size: accepted for signature compatibility; only 0 is supported
            (``ValueError`` otherwise).
        k: gate-gradient entries kept per time step, of the 4h entries of dz_t,
            in every layer and direction. ``None`` or ``k >= 4 * hidden_size``
            is dense backprop through the same kernels.

    Input and output as ``torch.nn.LSTM`` (``L`` steps, ``B`` sequences,
    ``D`` = 2 if bidirectional else 1): ``input`` (L, B, input_size),
    (B, L, input_size) with ``batch_first``, (L, input_size) unbatched, or a
    ``PackedSequence`` (variable lengths, e.g. from ``pack_padded_sequence``).
    Returns ``(output, (h_n, c_n))``: ``output`` shaped like the input with
    D * hidden_size features, ``h_n`` and ``c_n`` (num_layers * D, B,
    hidden_size) ((num_layers * D, hidden_size) unbatched). ``dropout``
    applies to the output of every layer but the last, in training mode, as
    in ``torch.nn.LSTM`` (with torch's random numbers, not cuDNN's).

    Training (grad mode with an input or a parameter requiring grad) needs CPU
    float32/float64 tensors of one dtype, the zero initial state (``hx=None``)
    and a loss that does not depend on ``c_n`` (its gradient raises
    ``RuntimeError`` in the backward); ``create_graph=True`` is refused.
    Zero-copy: the kernels work on sequences one after the other; a contiguous
    ``batch_first`` batch, or any batch of one sequence, is handed to them as
    a view, and so is every layer's output to the next layer of a
    unidirectional stack; a time-major batch of several sequences and a
    ``PackedSequence`` are reordered (one copy of the input, one of the
    output), and the backward direction reads reversed copies. Under ``torch.autocast`` it runs in the parameters' dtype
    (float32 output). When no gradient is needed (``torch.no_grad()``,
    evaluation) the forward is ``torch.nn.LSTM``'s own, on any device and
    dtype, and ``hx`` is accepted.

    The backward keeps, at every step, the ``k`` largest |dz_t| of the dense
    gate gradient for dx, dW_ih, dW_hh and the recurrent gradient; the bias
    gradients are the dense sum of dz_t (see :class:`MepropLSTMFunction`).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        k: int | None = None,
    ) -> None:
        if proj_size != 0:
            raise ValueError(f"meprop_native.torch.LSTM supports proj_size=0 only, got {proj_size!r}")
        if isinstance(hidden_size, numbers.Integral) and not isinstance(hidden_size, bool) and hidden_size > 0:
            resolve_mode(k, "per_example", 4 * hidden_size)  # fail at construction, not at the first step
        super().__init__(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.k = k

    @property
    def dense(self) -> bool:
        """Whether the backward keeps every entry of the gate gradient."""
        return resolve_mode(self.k, "per_example", 4 * self.hidden_size)[1] == "dense"

    def forward(self, input, hx=None):  # type: ignore[override]
        named = dict(self.named_parameters())
        data = input.data if isinstance(input, PackedSequence) else input
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in [data, *named.values()])):
            return super().forward(input, hx)
        if hx is not None:
            raise ValueError(
                "meprop_native.torch.LSTM starts every sequence from the zero state when training:"
                " hx must be None (the native kernels have no initial state)"
            )
        check_native_support({"input": data, **named}, "meprop_native.torch.LSTM", "torch.nn.LSTM")
        if isinstance(input, PackedSequence):
            return self._forward_packed(input)
        return self._forward_padded(input)

    def _check_features(self, x: torch.Tensor, dims: tuple[int, ...], what: str) -> None:
        if x.dim() not in dims or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{what} of shape {tuple(x.shape)} does not fit LSTM(input_size={self.input_size}):"
                f" need {' or '.join(f'{d}-D' for d in dims)} with {self.input_size} features in the last dim"
            )

    def _layers(self, rows: torch.Tensor, offsets: np.ndarray):
        """All layers and directions on packed rows (N, input_size), sequence after sequence.

        Returns the last layer's output (N, D * h) and h_n, c_n (num_layers * D, B, h),
        sequences in the order of ``offsets``.
        """
        k, _ = resolve_mode(self.k, "per_example", 4 * self.hidden_size)
        ends = torch.from_numpy(offsets[1:] - 1)  # every sequence has a step here
        # Unused (and cheap) when the layer is one-directional.
        reverse = torch.from_numpy(reversal_index(offsets))
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for suffix in ("", "_reverse")[: 2 if self.bidirectional else 1]:
                x = rows if not suffix else rows.index_select(0, reverse)
                weights = [getattr(self, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh")]
                biases = (
                    [getattr(self, f"{name}_l{layer}{suffix}") for name in ("bias_ih", "bias_hh")]
                    if self.bias
                    else [None, None]
                )
                hidden, c_last = MepropLSTMFunction.apply(x.contiguous(), *weights, *biases, offsets, k)
                # The last step each direction ran: the sequence's end in its own (possibly reversed) order.
                finals_h.append(hidden.index_select(0, ends))
                finals_c.append(c_last)
                outputs.append(hidden if not suffix else hidden.index_select(0, reverse))
            rows = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                rows = F.dropout(rows, self.dropout, training=True)
        return rows, torch.stack(finals_h), torch.stack(finals_c)

    def _forward_padded(self, batch: torch.Tensor):
        self._check_features(batch, (2, 3), "input")
        unbatched = batch.dim() == 2
        x = batch.unsqueeze(1) if unbatched else batch  # (L, 1, in): nn.LSTM ignores batch_first here
        if self.batch_first and not unbatched:
            x = x.transpose(0, 1)
        L, B = x.shape[0], x.shape[1]
        if L == 0 or B == 0:
            raise ValueError(f"input of shape {tuple(batch.shape)} has no steps or no sequences")
        # Sequence after sequence: a view for batch_first or B == 1, else a copy.
        rows = x.transpose(0, 1).reshape(B * L, self.input_size)
        out, h_n, c_n = self._layers(rows, np.arange(B + 1, dtype=np.int64) * L)
        by_sequence = out.view(B, L, out.shape[1])
        if unbatched:
            return by_sequence[0], (h_n[:, 0], c_n[:, 0])
        output = by_sequence if self.batch_first else by_sequence.transpose(0, 1).contiguous()
        return output, (h_n, c_n)

    def _forward_packed(self, packed: PackedSequence):
        self._check_features(packed.data, (2,), "PackedSequence data")
        batch_sizes = packed.batch_sizes.numpy()
        # Packed rows are time-major: step t of (sorted) sequence b is row starts[t] + b.
        starts = np.concatenate(([0], np.cumsum(batch_sizes)[:-1])).astype(np.int64)
        lengths = (batch_sizes[None, :] > np.arange(int(batch_sizes[0]))[:, None]).sum(1)
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        seq = np.repeat(np.arange(len(lengths)), lengths)
        order = torch.from_numpy(starts[np.arange(offsets[-1]) - offsets[seq]] + seq)  # native row -> packed row
        out, h_n, c_n = self._layers(packed.data.index_select(0, order), offsets)
        back = torch.empty_like(order)
        back[order] = torch.arange(len(order))
        data = out.index_select(0, back)
        if packed.unsorted_indices is not None:
            h_n = h_n.index_select(1, packed.unsorted_indices)
            c_n = c_n.index_select(1, packed.unsorted_indices)
        output = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return output, (h_n, c_n)

    def extra_repr(self) -> str:
        kept = "dense" if self.dense else f"k={self.k}"
        return f"{super().extra_repr()}, {kept}"
