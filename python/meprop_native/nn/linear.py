"""The linear layer whose backward is meProp's."""

from __future__ import annotations

import time

import numpy as np

from .. import _core
from ..distributed.world import World
from ..modes import check_mode
from .init import check_layer, init_bias, init_weight
from .module import Module
from .parameter import Parameter
from .selection import Selection

# Batch sizes whose forward runs on the library's own kernel; BLAS's
# matrix-vector product is as fast for one example. With AVX-512 the kernel's
# tile beats OpenBLAS at every batch measured; with AVX2 only, up to about 12
# examples (docs/benchmarks.md, "The forward kernel against BLAS").
NATIVE_FORWARD_MIN_BATCH = 2
NATIVE_FORWARD_MAX_BATCH: int | None = None if _core.linear_forward_uses_avx512() else 12


# Data parallelism (``exchanges_factors``): a dense layer gathers its
# factors only when it is this narrow, so that its backward is cheap to repeat
# on every rank (a classifier's output layer); then a meProp model gathers in
# every layer and its result does not depend on the number of ranks.
FACTOR_EXCHANGE_MAX_WIDTH = 64


def _native_forward(batch: int) -> bool:
    return batch >= NATIVE_FORWARD_MIN_BATCH and (NATIVE_FORWARD_MAX_BATCH is None or batch <= NATIVE_FORWARD_MAX_BATCH)


class Linear(Module):
    """y = x W^T + b with a meProp backward.

    Args:
        in_features, out_features: sizes; W is (out_features, in_features).
        k: how many entries of dy to keep per example (``per_example``) or per
            mini-batch (``unified``). ``None`` or ``k >= out_features`` means
            dense backprop, run through the same kernels so that dense and
            meProp timings compare like with like.
        mode: ``"per_example"`` (the paper's meProp), ``"unified"`` or ``"dense"``
            (every entry, whatever k; see ``meprop_native.modes``).
        bias: whether to learn a bias. Its gradient is dense, as in the paper.
        rng: the generator for initialisation.
        dtype: float32 (default) or float64.
        init: ``"pytorch"`` (default; W and b uniform in
            [-1/sqrt(in_features), 1/sqrt(in_features)], as torch.nn.Linear)
            or ``"paper"`` (W normal with sd sqrt(6 / (in + out)), b zero, as
            the meProp authors' code); see ``meprop_native.nn.init``.
        selection: options of :class:`meprop_native.nn.Selection` beyond k and
            the mode (error feedback, adaptive k, warm-up, random selection),
            as a dict; the layer builds its own Selection from them.
        fused_update: hand the weight gradient to the optimizer deferred, so
            that its update computes each touched row in cache while updating
            it, never writing the rows out (bit for bit the same result). Off
            by default: where the rows fit in L2, as on the machines measured
            (docs/benchmarks.md, "Fused updates"), it is no faster. The input
            kept from the forward must not be changed before the step.

    ``backward_seconds`` accumulates the wall time of the backward kernel: the
    paper's "backprop time" of the linear transformations.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        k: int | None = None,
        mode: str = "per_example",
        bias: bool = True,
        rng: np.random.Generator | None = None,
        dtype: type = np.float32,
        init: str = "pytorch",
        selection: dict | None = None,
        fused_update: bool = False,
    ) -> None:
        check_mode(mode)
        check_layer({"in_features": in_features, "out_features": out_features}, k, init, dtype)
        # Checks k and every selection option, naming the bad one.
        dense = mode == "dense"
        self.selection = Selection(out_features, None if dense else k, unified=mode == "unified", **(selection or {}))
        rng = rng if rng is not None else np.random.default_rng(0)
        self.in_features = in_features
        self.out_features = out_features
        self.mode = mode
        shape = (out_features, in_features)
        self.weight = Parameter("weight", init_weight(rng, shape, in_features, out_features, init, dtype))
        self.bias = Parameter("bias", init_bias(rng, out_features, in_features, init, dtype)) if bias else None
        self.backward_seconds = 0.0
        self.fused_update = fused_update
        self._x: np.ndarray | None = None
        self._all_rows = np.arange(1, dtype=np.int64)

    @property
    def k(self) -> int | None:
        """Entries of dy kept per example (per batch in unified mode); None: dense."""
        return self.selection.k

    @property
    def dense(self) -> bool:
        """True when the backward keeps every entry of dy at every step."""
        return self.selection.dense

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = x W^T + b: x (B, in_features) -> y (B, out_features), in the layer's dtype.

        x is converted to the layer's dtype and C order, and kept for the backward.
        """
        x = np.ascontiguousarray(x, dtype=self.weight.value.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of shape (B, {self.in_features}), got {x.shape}")
        self._x = x
        bias = None if self.bias is None else self.bias.value
        # A shard of a data-parallel batch takes the path the whole batch
        # would: the two paths round differently.
        world = self.world
        rows = world.batch_rows if world is not None and world.distributed and self.training else len(x)
        if _native_forward(rows):
            return _core.linear_forward(x, self.weight.value, bias)
        y = x @ self.weight.value.T
        if bias is not None:
            y += bias
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """meProp backward: dy (B, out_features) -> dx (B, in_features), or None.

        Stores the touched rows of dW on ``weight`` (``grad_rows``, ``grad``)
        and the dense db on ``bias``. Raises RuntimeError before any forward.
        """
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        start = time.perf_counter()
        world = self.world
        if world is None or not world.distributed:
            dx, rows, dW_rows, db = self._backward_kernel(dy, self._x, input_grad, self.fused_update)
        else:
            exchanged = world.seconds
            dx, rows, dW_rows, db = self._backward_exchanged(world, dy, input_grad)
            start += world.seconds - exchanged  # the exchange is the world's time, not the kernel's
        self.backward_seconds += time.perf_counter() - start
        self.weight.set_grad(rows, dW_rows)
        if self.bias is not None:
            self.bias.set_grad(self._all_rows, db.reshape(1, -1))
        return dx

    def _backward_kernel(
        self, dy: np.ndarray, x: np.ndarray, input_grad: bool, defer: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | _core.WeightGradient, np.ndarray]:
        """Selection, dx, the touched rows of dW and db for this (dy, x): (dx, rows, dW_rows, db).

        ``defer``: dW_rows comes deferred (a ``_core.WeightGradient``) for a fused update.
        """
        sel = self.selection
        k = sel.step_k(dy)
        mode = "dense" if k >= self.out_features else self.mode
        memory = sel.memory_for(self.weight.value.dtype)
        hits = sel.record_hits(len(dy))
        # The compiled call itself (what linear_backward_compact wraps): at the
        # paper's batch of 10 a meProp backward takes tens of microseconds, and
        # a Python-level wrapper would be a measurable share of it.
        if memory is None and hits is None and (sel.select == "topk" or mode == "dense"):
            result = _core.linear_backward_compact(
                dy, x, self.weight.value, None if mode == "dense" else k, mode, input_grad, defer
            )
        else:
            indices = sel.random_indices(len(dy), k) if sel.select == "random" and mode != "dense" else None
            result = _core.linear_backward_compact(
                dy,
                x,
                self.weight.value,
                None if mode == "dense" or indices is not None else k,
                mode,
                input_grad,
                defer,
                memory=memory,
                memory_decay=sel.memory_decay,
                indices=indices,
                counts=hits,
            )
        sel.count(len(dy), k)
        return result

    def exchanges_factors(self) -> bool:
        """Whether, under data parallelism, this layer gathers its factors (x and dy).

        Gathering x and dy and running the backward of the whole global batch
        on every rank gives each rank exactly the gradient one process would
        compute, whatever the number of ranks, and carries the selection's
        state (error feedback, adaptive k, random draws) unchanged. It costs
        a backward of the whole batch on every rank: cheap where the layer
        keeps few entries of dy (a meProp layer, a narrow output layer), the
        dominant cost of training for a wide dense layer, which sums its
        gradient over the ranks instead (Allreduce, as dense data-parallel
        training does). A meProp layer always gathers: its selection needs the
        whole batch.
        """
        return not self.dense or self.out_features <= FACTOR_EXCHANGE_MAX_WIDTH

    def _backward_exchanged(
        self, world: World, dy: np.ndarray, input_grad: bool
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | _core.WeightGradient, np.ndarray]:
        """The backward of a rank's shard, exchanging with the other ranks."""
        assert self._x is not None
        rows = world.batch_rows
        if self.exchanges_factors():
            dy_all = world.gather_rows(dy, rows)
            x_all = world.gather_rows(self._x, rows)
            dx, touched, dW_rows, db = self._backward_kernel(dy_all, x_all, input_grad, self.fused_update)
            lo, hi = world.shard(rows)
            return (None if dx is None else dx[lo:hi]), touched, dW_rows, db
        dx, touched, dW_rows, db = self._backward_kernel(dy, self._x, input_grad)
        dW = np.zeros_like(self.weight.value)
        dW[touched] = dW_rows  # computed rows: a layer that sums over ranks is never deferred
        dW = world.allreduce_sum(dW)
        db = world.allreduce_sum(db)
        return dx, np.arange(self.out_features, dtype=np.int64), dW, db

    # ---- meSimp: removing units ----------------------------------------------

    def keep_outputs(self, units: np.ndarray) -> None:
        """Keeps only these output units (ascending ids): rows of W, entries of b,
        the selection's state. Gradients and the cached input are dropped."""
        self.selection.keep(units)
        self.weight.value = np.ascontiguousarray(self.weight.value[units])
        if self.bias is not None:
            self.bias.value = np.ascontiguousarray(self.bias.value[units])
        self.out_features = len(units)
        self._forget_step()

    def keep_inputs(self, units: np.ndarray) -> None:
        """Keeps only these input features (ascending ids): columns of W."""
        units = np.asarray(units, dtype=np.int64)
        if units.ndim != 1 or len(units) < 1 or (units < 0).any() or (units >= self.in_features).any():
            raise ValueError(f"inputs to keep must be 1-D ids in [0, {self.in_features}), at least one")
        self.weight.value = np.ascontiguousarray(self.weight.value[:, units])
        self.in_features = len(units)
        self._forget_step()

    def resize(self, out_features: int, in_features: int) -> None:
        """Takes new sizes with zero parameters, which a state of those sizes then fills
        (resuming a run whose units meSimp removed)."""
        if (out_features, in_features) == (self.out_features, self.in_features):
            return
        dtype = self.weight.value.dtype
        self.selection.resize(out_features)
        self.weight.value = np.zeros((out_features, in_features), dtype=dtype)
        if self.bias is not None:
            self.bias.value = np.zeros(out_features, dtype=dtype)
        self.out_features, self.in_features = out_features, in_features
        self._forget_step()

    def _forget_step(self) -> None:
        self._x = None
        for p in self.parameters():
            p.zero_grad()

    def parameters(self) -> list[Parameter]:
        """[weight] or [weight, bias]."""
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def selections(self) -> list[Selection]:
        """[the layer's Selection]: its state goes into checkpoints."""
        return [self.selection]

    def random_generators(self) -> list[np.random.Generator]:
        """Random selection's generator, when it draws."""
        return [self.selection.rng] if self.selection.select == "random" else []

    def __repr__(self) -> str:
        k = "dense" if self.dense else f"k={self.k}, {self.mode}"
        if self.selection.memory_decay:
            k += f", memory_decay={self.selection.memory_decay}"
        return f"Linear({self.in_features}, {self.out_features}, {k})"
