"""LSTM layers whose backward through time is meProp's (native recurrence)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import _core
from .._threads import get_num_threads
from .init import check_layer, init_bias, init_weight
from .module import Module
from .parameter import Parameter
from .selection import Selection


def offsets_from_lengths(lengths: np.ndarray | list[int]) -> np.ndarray:
    """Sequence boundaries (B + 1,) int64 of packed sequences of these lengths."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size == 0 or (lengths < 0).any():
        raise ValueError(f"lengths must be a non-empty 1-D array of counts >= 0, got {lengths!r}")
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def checked_offsets(offsets: np.ndarray | list[int] | None, rows: int) -> np.ndarray:
    """A private int64 copy of sequence boundaries, checked against ``rows``.

    None means one sequence of all rows. The copy matters: the layer keeps the
    boundaries for its backward, and the caller's array may change meanwhile.
    """
    if offsets is None:
        return np.array([0, rows], dtype=np.int64)
    given = np.asarray(offsets)
    if given.ndim != 1 or given.size < 2 or not np.issubdtype(given.dtype, np.integer):
        raise ValueError(
            f"offsets must be a 1-D integer array of at least 2 sequence boundaries, "
            f"got {given.dtype} with shape {given.shape}"
        )
    copy = given.astype(np.int64)
    if copy[0] != 0:
        raise ValueError(f"offsets must start at 0, got {copy[0]}")
    if copy[-1] != rows:
        raise ValueError(f"offsets end at {copy[-1]} but there are {rows} rows")
    steps = np.diff(copy)
    if (steps < 0).any():
        b = int(np.flatnonzero(steps < 0)[0])
        raise ValueError(f"offsets decrease at sequence {b} ({copy[b]} -> {copy[b + 1]})")
    return copy


class LSTM(Module):
    """One LSTM layer over packed sequences, with a meProp backward.

    Input ``x`` is (N, input_size): the steps of B sequences back to back,
    sequence b in rows ``offsets[b]:offsets[b+1]`` (``offsets=None``: one
    sequence). Output is the hidden state of every step, (N, hidden_size).
    The state starts at zero for every sequence.

    Gates are ordered i, f, g, o as in PyTorch; W_ih is (4h, input_size),
    W_hh (4h, h), one bias (4h,). The input projection of all steps is one
    NumPy GEMM; the recurrence and the backward through time are native.

    Backward: the element-wise gate gradient dz_t (4h entries per step) is
    dense; every matrix product's backward (input-to-gates and
    hidden-to-gates) sees only the ``k`` largest |dz_t| of each step, as in
    the paper's meProp LSTM. ``k=None`` (or ``k >= 4h``) is dense backprop
    through the same kernels. ``per_gate=True`` keeps the ``k`` largest of
    each gate's h entries instead (4k a step; dense when ``k >= h``), as an
    LSTM built from one weight matrix per gate would select them. The bias gradient is the dense sum of dz, as the
    paper's code does for biases.

    ``memory_decay > 0`` adds error feedback through time: going backwards
    through a sequence, what a step's selection drops (times the decay) joins
    the previous step's gate gradient before its selection (see
    ``meprop/lstm.hpp``). dz then holds the corrected gradients, and the bias
    gradient is their sum.

    ``warmup_steps`` (with ``warmup``: ``"ramp"`` or ``"dense"``) warms up
    as the Linear layers do (``meprop_native.nn.Selection``): the first
    backward passes keep all gate entries, or a number falling geometrically
    from 4h to the k above (per gate: a multiple of 4).

    Initialisation, ``init="pytorch"`` (the default, PyTorch's): every weight
    and bias uniform in [-1/sqrt(h), 1/sqrt(h)]. ``init="paper"`` (the
    meProp authors' scheme, see ``meprop_native.nn.init``): each gate's block
    of W_ih normal with sd sqrt(6 / (input_size + h)), of W_hh with sd
    sqrt(6 / 2h); biases zero.

    ``backward_seconds`` accumulates the time of the linear parts of the
    backward (top-k, recurrent product, weight and input gradients);
    ``gate_seconds`` the element-wise gate math. For several sequences, which
    run in parallel, the gate time is the per-thread mean (an estimate).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        k: int | None = None,
        rng: np.random.Generator | None = None,
        dtype: type = np.float32,
        method: str = "auto",
        per_gate: bool = False,
        init: str = "pytorch",
        memory_decay: float = 0.0,
        warmup_steps: int = 0,
        warmup: str = "ramp",
    ) -> None:
        check_layer({"input_size": input_size, "hidden_size": hidden_size}, k, init, dtype)
        if method not in ("auto", "heap", "radix", "threshold"):
            raise ValueError(f"method must be one of auto, heap, radix, threshold; got {method!r}")
        rng = rng if rng is not None else np.random.default_rng(0)
        G = 4 * hidden_size
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.k = k
        self.per_gate = per_gate
        self.method = method
        # PyTorch scales every LSTM tensor by the hidden size; the paper's
        # scheme treats each gate's block as a layer from its own inputs.
        fan_in_ih = hidden_size if init == "pytorch" else input_size
        self.weight_ih = Parameter("weight_ih", init_weight(rng, (G, input_size), fan_in_ih, hidden_size, init, dtype))
        self.weight_hh = Parameter(
            "weight_hh", init_weight(rng, (G, hidden_size), hidden_size, hidden_size, init, dtype)
        )
        self.bias = Parameter("bias", init_bias(rng, G, hidden_size, init, dtype))
        self.backward_seconds = 0.0
        self.gate_seconds = 0.0
        self._cache: tuple[np.ndarray, ...] | None = None
        self._bias_row = np.zeros(1, dtype=np.int64)
        # Counts the kept gate entries (kept_fraction) and the steps of the
        # warm-up, and checks the options; the error memory itself lives within
        # a sequence in the native kernel.
        self.selection = Selection(
            G, self.kept_per_step, memory_decay=memory_decay, warmup_steps=warmup_steps, warmup=warmup
        )

    @property
    def dense(self) -> bool:
        return self.k is None or self.k >= (1 if self.per_gate else 4) * self.hidden_size

    @property
    def kept_per_step(self) -> int | None:
        """Gate-gradient entries kept per step (None: all, dense)."""
        if self.dense:
            return None
        assert self.k is not None
        return 4 * self.k if self.per_gate else self.k

    def forward(self, x: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """x (N, input_size) -> hidden states (N, hidden_size), same dtype as the weights."""
        x = np.ascontiguousarray(x, dtype=self.weight_ih.value.dtype)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (N, {self.input_size}), got {x.shape}")
        offsets = checked_offsets(offsets, x.shape[0])
        input_gates = x @ self.weight_ih.value.T
        input_gates += self.bias.value
        gates, cells, cell_tanh, hidden = _core.lstm_forward(input_gates, self.weight_hh.value, offsets)
        self._cache = (x, offsets, gates, cells, cell_tanh, hidden)
        return hidden

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dy (N, hidden_size): gradient of the hidden states -> dx (N, input_size)."""
        if self._cache is None:
            raise RuntimeError("LSTM.backward called before forward")
        x, offsets, gates, cells, cell_tanh, hidden = self._cache
        dy = np.ascontiguousarray(dy, dtype=x.dtype)
        kept = self._step_kept()
        start = time.perf_counter()
        dx, rows, dW_ih, dW_hh, db, _, gate_seconds = _core.lstm_backward(
            x,
            self.weight_ih.value,
            self.weight_hh.value,
            offsets,
            gates,
            cells,
            cell_tanh,
            hidden,
            dy,
            kept,
            method=self.method,
            input_grad=input_grad,
            per_gate=self.per_gate and kept is not None,
            memory_decay=self.selection.memory_decay,
        )
        self.selection.count(len(dy), kept or 4 * self.hidden_size)
        elapsed = time.perf_counter() - start
        threads = max(1, min(get_num_threads(), len(offsets) - 1))
        self.gate_seconds += gate_seconds / threads
        self.backward_seconds += max(0.0, elapsed - gate_seconds / threads)
        self.weight_ih.set_grad(rows, dW_ih)
        self.weight_hh.set_grad(rows, dW_hh)
        self.bias.set_grad(self._bias_row, db.reshape(1, -1))
        return dx

    def _step_kept(self) -> int | None:
        """Gate entries this backward keeps per step (None: all): the k above after
        the warm-up; advances the selection's step count."""
        if self.dense:
            return None
        G = 4 * self.hidden_size
        kept = self.selection.step_k(np.empty(0))  # the fixed rule: dy is not looked at
        if kept >= G:
            return None
        return max(4, kept - kept % 4) if self.per_gate else kept

    def selections(self) -> list[Selection]:
        """[the layer's Selection]: its counters go into checkpoints."""
        return [self.selection]

    def parameters(self) -> list[Parameter]:
        return [self.weight_ih, self.weight_hh, self.bias]

    def __repr__(self) -> str:
        k = "dense" if self.dense else f"k={self.k}" + (" per gate" if self.per_gate else "")
        return f"LSTM({self.input_size}, {self.hidden_size}, {k})"


def reversal_index(offsets: np.ndarray) -> np.ndarray:
    """Row permutation reversing every packed sequence in place (its own inverse)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = int(offsets[-1])
    lengths = np.diff(offsets)
    seq = np.repeat(np.arange(len(lengths)), lengths)
    t = np.arange(n, dtype=np.int64)
    return offsets[seq] + offsets[seq + 1] - 1 - t


class BiLSTM(Module):
    """Two LSTMs, one reading each sequence forwards and one backwards.

    Output (N, 2 * hidden_size): [forward state, backward state] per step.
    Both directions take the same ``k`` and keyword options (those of
    :class:`LSTM`: rng, dtype, per_gate, init, ...); both draw their weights
    from the one ``rng`` (default ``numpy.random.default_rng(0)``), the
    forward direction first.
    """

    def __init__(self, input_size: int, hidden_size: int, k: int | None = None, **options: Any) -> None:
        rng = options.pop("rng", None)
        rng = rng if rng is not None else np.random.default_rng(0)
        self.forward_lstm = LSTM(input_size, hidden_size, k, rng, **options)
        self.backward_lstm = LSTM(input_size, hidden_size, k, rng, **options)
        self.hidden_size = hidden_size
        self._reverse: np.ndarray | None = None

    def selections(self) -> list[Selection]:
        return self.forward_lstm.selections() + self.backward_lstm.selections()

    def forward(self, x: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        offsets = checked_offsets(offsets, np.asarray(x).shape[0])
        self._reverse = reversal_index(offsets)
        ahead = self.forward_lstm.forward(x, offsets)
        behind = self.backward_lstm.forward(np.asarray(x)[self._reverse], offsets)[self._reverse]
        return np.concatenate([ahead, behind], axis=1)

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._reverse is None:
            raise RuntimeError("BiLSTM.backward called before forward")
        h = self.hidden_size
        dx_ahead = self.forward_lstm.backward(dy[:, :h], input_grad)
        dx_behind = self.backward_lstm.backward(dy[:, h:][self._reverse], input_grad)
        if not input_grad:
            return None
        assert dx_ahead is not None and dx_behind is not None
        return dx_ahead + dx_behind[self._reverse]

    @property
    def backward_seconds(self) -> float:
        return self.forward_lstm.backward_seconds + self.backward_lstm.backward_seconds

    def parameters(self) -> list[Parameter]:
        return self.forward_lstm.parameters() + self.backward_lstm.parameters()

    def train(self, mode: bool = True) -> BiLSTM:
        self.training = mode
        self.forward_lstm.train(mode)
        self.backward_lstm.train(mode)
        return self
