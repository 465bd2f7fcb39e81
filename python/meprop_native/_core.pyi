"""Types of the compiled core (python/bindings/core_module.cpp).

Every kernel takes float32 or float64 arrays (any array-like is accepted and
converted to C order; other dtypes raise TypeError, never cast). The result
has the dtype of the inputs: the overloads below say so for NumPy arrays of a
known dtype. Index arrays are int64. Bad shapes, k, modes or methods raise
ValueError. Allowed strings: method "auto" | "heap" | "radix" | "threshold"; mode
"per_example" | "unified" | "dense"; bias_grad "dense" | "sparse".
"""

from typing import Any, SupportsFloat, SupportsIndex, SupportsInt, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias

_Float = TypeVar("_Float", np.float32, np.float64)
_Int: TypeAlias = SupportsInt | SupportsIndex
_Real: TypeAlias = SupportsFloat | SupportsIndex
_AnyFloatArray: TypeAlias = NDArray[np.floating[Any]]

__version__: str

class WeightGradient:
    """The touched rows of a meProp dW, not computed yet (linear_backward_compact(...,
    defer_weight_grad=True)): sgd_update, adagrad_update and adam_update take it as
    grad_rows (with its rows) and compute each row while updating it. It holds the
    layer input x, which must not change before the update."""

    @property
    def rows(self) -> NDArray[np.int64]: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def materialize(self) -> _AnyFloatArray:
        """The gradient rows, (len(rows), n_in), in a new array."""
    def __array__(self, dtype: Any = None, copy: Any = None) -> _AnyFloatArray: ...

# ---- top-k -------------------------------------------------------------------

def topk(a: ArrayLike, k: _Int, method: str = "auto") -> NDArray[np.int64]:
    """Indices (int64, ascending) of the k largest |a[i]| of a 1-D float array: shape (k,)."""

def topk_rows(A: ArrayLike, k: _Int, method: str = "auto") -> NDArray[np.int64]:
    """Per-row top-k of a 2-D float array (B, n): (B, k) int64, each row ascending."""

def topk_unified(A: ArrayLike, k: _Int, method: str = "auto") -> NDArray[np.int64]:
    """The k columns (int64, ascending) with the largest sum over rows of |A[b, j]|: shape (k,)."""

def select_method_for(n: _Int, k: _Int) -> str:
    """The method ("heap", "radix" or "threshold") that "auto" picks for a row of n entries."""

# ---- linear backward ---------------------------------------------------------

@overload
def linear_backward(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    W: NDArray[_Float],
    k: _Int | None = None,
    mode: str = "per_example",
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    dx_out: NDArray[_Float] | None = None,
    dW_out: NDArray[_Float] | None = None,
    db_out: NDArray[_Float] | None = None,
    accumulate: bool = False,
) -> tuple[NDArray[_Float], NDArray[_Float], NDArray[_Float]]:
    """meProp backward of y = x W^T + b: (dx (B, n_in), dW (n_out, n_in), db (n_out,))."""

@overload
def linear_backward(
    dy: ArrayLike,
    x: ArrayLike,
    W: ArrayLike,
    k: _Int | None = None,
    mode: str = "per_example",
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    dx_out: _AnyFloatArray | None = None,
    dW_out: _AnyFloatArray | None = None,
    db_out: _AnyFloatArray | None = None,
    accumulate: bool = False,
) -> tuple[_AnyFloatArray, _AnyFloatArray, _AnyFloatArray]: ...
@overload
def linear_backward_compact(
    dy: NDArray[_Float],
    x: NDArray[_Float],
    W: NDArray[_Float],
    k: _Int | None = None,
    mode: str = "per_example",
    input_grad: bool = True,
    defer_weight_grad: bool = False,
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    memory: NDArray[_Float] | None = None,
    memory_decay: float = 1.0,
    indices: NDArray[np.int64] | None = None,
    counts: NDArray[np.int64] | None = None,
) -> tuple[NDArray[_Float] | None, NDArray[np.int64], NDArray[_Float] | WeightGradient, NDArray[_Float]]:
    """meProp backward with only the touched rows of dW: (dx or None, rows (m,), dW_rows (m, n_in), db).

    defer_weight_grad: dW_rows comes as a WeightGradient, computed by the optimizers' fused updates.

    memory (n_out,): error feedback, updated in place (memory_decay in [0, 1]).
    indices: the kept entries, (B, k) per example or (k,) unified, instead of top-k (k None).
    counts (n_out,) int64: counts[j] += the examples whose kept entries include column j (meSimp).
    """

@overload
def linear_backward_compact(
    dy: ArrayLike,
    x: ArrayLike,
    W: ArrayLike,
    k: _Int | None = None,
    mode: str = "per_example",
    input_grad: bool = True,
    defer_weight_grad: bool = False,
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    memory: _AnyFloatArray | None = None,
    memory_decay: float = 1.0,
    indices: ArrayLike | None = None,
    counts: NDArray[np.int64] | None = None,
) -> tuple[_AnyFloatArray | None, NDArray[np.int64], _AnyFloatArray | WeightGradient, _AnyFloatArray]: ...
def linear_backward_into(
    dy: ArrayLike,
    x: ArrayLike,
    W: ArrayLike,
    k: _Int | None = None,
    mode: str = "per_example",
    *,
    bias_grad: str = "dense",
    method: str = "auto",
    dx_out: _AnyFloatArray | None = None,
    dW_out: _AnyFloatArray | None = None,
    db_out: _AnyFloatArray | None = None,
    memory: _AnyFloatArray | None = None,
    memory_decay: float = 1.0,
    indices: ArrayLike | None = None,
) -> None:
    """meProp backward written into caller-owned buffers, each optional.

    dx_out (B, n_in), dW_out (n_out, n_in), db_out (n_out,): C-contiguous,
    writable, the inputs' dtype, not overlapping the inputs or each other. A
    missing buffer is not computed; a given one is overwritten (dW_out is zero
    in the rows no kept entry touches).
    """

# ---- linear forward ----------------------------------------------------------

@overload
def linear_forward(
    x: NDArray[_Float], W: NDArray[_Float], b: NDArray[_Float] | None = None, *, out: NDArray[_Float] | None = None
) -> NDArray[_Float]:
    """y = x W^T + b: x (B, n_in), W (n_out, n_in), b (n_out,) or None -> y (B, n_out).

    Runs on the library's threads (against BLAS: docs/benchmarks.md). ``out``
    (C-contiguous, the inputs' dtype, not overlapping them) receives y.
    """

@overload
def linear_forward(
    x: ArrayLike, W: ArrayLike, b: ArrayLike | None = None, *, out: _AnyFloatArray | None = None
) -> _AnyFloatArray: ...
def isa_target() -> str:
    """The instruction-set build of the hot loops that runs here: x86-64-v4, x86-64-v3, baseline or native."""

def linear_forward_uses_avx512() -> bool:
    """Whether linear_forward runs its AVX-512 register tile on this machine."""

# ---- fused optimizer updates (in place) ----------------------------------------
# param: float32/float64, 1-D or 2-D, C-contiguous and writable; rows: 1-D int64
# strictly ascending; grad_rows: (len(rows), cols) of param's dtype; the state
# arrays (sum_sq, m, v): param's shape and dtype.

def sgd_update(
    param: _AnyFloatArray, rows: ArrayLike, grad_rows: ArrayLike | WeightGradient, lr: _Real, clip: _Real = 0.0
) -> None:
    """In place: param[rows] -= lr * grad_rows (clipped to +-clip when clip > 0)."""

def adagrad_update(
    param: _AnyFloatArray,
    rows: ArrayLike,
    grad_rows: ArrayLike | WeightGradient,
    sum_sq: _AnyFloatArray,
    lr: _Real,
    eps: _Real = 1e-06,
    clip: _Real = 0.0,
) -> None:
    """In place AdaGrad step on the given rows."""

def adam_update(
    param: _AnyFloatArray,
    rows: ArrayLike,
    grad_rows: ArrayLike | WeightGradient,
    m: _AnyFloatArray,
    v: _AnyFloatArray,
    step: _Int,
    lr: _Real = 0.001,
    beta1: _Real = 0.9,
    beta2: _Real = 0.999,
    eps: _Real = 1e-08,
    clip: _Real = 0.0,
    lazy: bool = False,
    decay1: NDArray[np.float64] | None = None,
    decay2: NDArray[np.float64] | None = None,
) -> None:
    """In place Adam step (bias-corrected, step >= 1); lazy=False also moves rows without gradient.

    decay1, decay2 (together; float64, one entry per row of param, start at 1):
    deferred decay of the moments -- row r's moments are decay1[r] * m[r] and
    decay2[r] * v[r], so rows without gradient need not rewrite m and v.
    """

# ---- threads -----------------------------------------------------------------

def set_num_threads(n: _Int) -> None:
    """Sets the number of OpenMP threads the kernels use (n >= 1), process-wide."""

def get_num_threads() -> int:
    """The number of threads the kernels use."""

# ---- LSTM --------------------------------------------------------------------

def lstm_forward(
    input_gates: ArrayLike, W_hh: ArrayLike, offsets: ArrayLike
) -> tuple[_AnyFloatArray, _AnyFloatArray, _AnyFloatArray, _AnyFloatArray]:
    """LSTM recurrence over packed sequences (sequence b in rows offsets[b]:offsets[b+1]).

    input_gates (N, 4h) = x W_ih^T + b; W_hh (4h, h), gates i, f, g, o; offsets
    (B + 1,) int64. Returns (gates (N, 4h) activated, cells (N, h),
    cell_tanh (N, h), hidden (N, h)).
    """

def lstm_backward(
    x: ArrayLike,
    W_ih: ArrayLike,
    W_hh: ArrayLike,
    offsets: ArrayLike,
    gates: ArrayLike,
    cells: ArrayLike,
    cell_tanh: ArrayLike,
    hidden: ArrayLike,
    dhidden: ArrayLike,
    k: _Int | None = None,
    *,
    method: str = "auto",
    input_grad: bool = True,
    per_gate: bool = False,
    memory_decay: float = 0.0,
) -> tuple[
    _AnyFloatArray | None, NDArray[np.int64], _AnyFloatArray, _AnyFloatArray, _AnyFloatArray, NDArray[np.int64], float
]:
    """meProp backward through time: each step's 4h gate gradient keeps its top-k for every product.

    Returns (dx (N, n_in) or None, rows (m,), dW_ih_rows (m, n_in), dW_hh_rows (m, h),
    db (4h,) dense, kept (N, k) or (0, 0) when dense, gate_seconds). k None = dense.
    per_gate=True keeps k/4 entries of each gate's h instead of k of all 4h (k a
    multiple of 4), as an LSTM with one weight matrix per gate would.
    memory_decay > 0: error feedback through time within each sequence.
    """

# ---- per-element layers ------------------------------------------------------

def relu_forward(x: NDArray[_Float], *, out: NDArray[_Float] | None = None) -> NDArray[_Float]:
    """max(x, 0) element-wise (any shape; NaN kept), into out if given (it may be x)."""

def relu_backward(dy: NDArray[_Float], y: NDArray[_Float], *, out: NDArray[_Float] | None = None) -> NDArray[_Float]:
    """dy * (y > 0) with y the forward's output, into out if given (it may be dy)."""

def softmax_cross_entropy(
    logits: NDArray[_Float], labels: ArrayLike, divisor: _Real | None = None
) -> tuple[float, NDArray[_Float]]:
    """(mean cross-entropy, gradient (softmax - onehot) / divisor (default B)) of logits (B, C), labels (B,)."""
