"""What ``meprop bench`` times: for one layer shape, batch and k, the contenders
of three cases, each a pool of calls on rotating inputs.

* ``top-k``: the k largest |dy| of every example, meProp's kernel against
  NumPy's ``argpartition`` and ``torch.topk``;
* ``linear backward``: dx and dW of one layer, meProp (only the touched rows
  of dW) against this library's dense path, NumPy's products and torch's;
* ``training step``: forward, softmax cross-entropy, backward and Adam of an
  MLP n_in-n_out-n_out-10, meProp against this library's dense path, a NumPy
  MLP and a torch one (``torch.nn.Linear`` and ``torch.optim.Adam``), and
  the torch drop-ins' recommended loop (``torch meprop``: row-sparse
  gradients, ``meprop_native.torch.optim.Adam``).

The first contender of each case is meProp; the others are its baselines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from .. import _core
from ..nn import mlp, softmax_cross_entropy
from ..optim import Adam

POOL = 8  # rotating inputs per contender
CLASSES = 10


@dataclass(frozen=True)
class Shape:
    n_in: int
    n_out: int
    batch: int
    k: int
    dtype: type

    def __str__(self) -> str:
        return f"{self.n_in}x{self.n_out} B={self.batch} k={self.k}"


Calls = list[Callable[[], object]]


def numpy_topk(a: np.ndarray, k: int) -> np.ndarray:
    return np.argpartition(np.abs(a), -k, axis=1)[:, -k:]


def torch_topk(torch: Any, t: Any, k: int) -> Any:
    return torch.topk(t.abs(), k, dim=1)


def dense_backward(dy: Any, x: Any, W: Any) -> tuple[Any, Any, Any]:
    """dx, dW and db by dense products: NumPy's or torch's, whichever arrays come."""
    return dy @ W, dy.T @ x, dy.sum(0)


def topk_case(s: Shape, rng: np.random.Generator, torch: Any) -> dict[str, Calls]:
    dys: list[np.ndarray] = [rng.standard_normal((s.batch, s.n_out)).astype(s.dtype) for _ in range(POOL)]
    cases: dict[str, Calls] = {
        "meprop": [partial(_core.topk_rows, a, s.k) for a in dys],
        "numpy": [partial(numpy_topk, a, s.k) for a in dys],
    }
    if torch is not None:
        cases["torch"] = [partial(torch_topk, torch, torch.from_numpy(a), s.k) for a in dys]
    return cases


def backward_case(s: Shape, rng: np.random.Generator, torch: Any) -> dict[str, Calls]:
    W = (rng.standard_normal((s.n_out, s.n_in)) / np.sqrt(s.n_in)).astype(s.dtype)
    pairs: list[tuple[np.ndarray, np.ndarray]] = [
        (
            rng.standard_normal((s.batch, s.n_out)).astype(s.dtype),
            rng.standard_normal((s.batch, s.n_in)).astype(s.dtype),
        )
        for _ in range(POOL)
    ]
    compact = _core.linear_backward_compact
    cases: dict[str, Calls] = {
        "meprop": [partial(compact, dy, x, W, s.k) for dy, x in pairs],
        "meprop dense": [partial(compact, dy, x, W, None, "dense") for dy, x in pairs],
        "numpy": [partial(dense_backward, dy, x, W) for dy, x in pairs],
    }
    if torch is not None:
        Wt = torch.from_numpy(W)
        cases["torch"] = [partial(dense_backward, torch.from_numpy(dy), torch.from_numpy(x), Wt) for dy, x in pairs]
    return cases


def _batches(s: Shape, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (rng.standard_normal((s.batch, s.n_in)).astype(s.dtype), rng.integers(0, CLASSES, s.batch)) for _ in range(POOL)
    ]


def _library_step(model: Any, optimizer: Adam, x: np.ndarray, y: np.ndarray) -> None:
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    model.backward(dlogits)
    optimizer.step()


class NumpyMlp:
    """The baseline a NumPy user writes: ReLU MLP, softmax cross-entropy, dense Adam."""

    def __init__(self, sizes: list[int], dtype: type, rng: np.random.Generator) -> None:
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.params += [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype), np.zeros(n_out, dtype)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, x: np.ndarray, y: np.ndarray, lr: float = 1e-3) -> None:
        acts = [x]
        for i in range(0, len(self.params), 2):
            z = acts[-1] @ self.params[i].T + self.params[i + 1]
            acts.append(np.maximum(z, 0) if i + 2 < len(self.params) else z)
        _, dz = softmax_cross_entropy(acts[-1], y)
        grads: list[np.ndarray] = []
        for i in range(len(self.params) - 2, -1, -2):
            grads = [dz.T @ acts[i // 2], dz.sum(0)] + grads
            if i:
                dz = (dz @ self.params[i]) * (acts[i // 2] > 0)
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= lr * (m / (1 - 0.9**self.t)) / (np.sqrt(v / (1 - 0.999**self.t)) + 1e-8)


def step_case(s: Shape, rng: np.random.Generator, torch: Any) -> dict[str, Calls]:
    sizes = [s.n_in, s.n_out, s.n_out, CLASSES]
    batches = _batches(s, rng)
    cases: dict[str, Calls] = {}
    for name, k in (("meprop", s.k), ("meprop dense", None)):
        model = mlp(sizes, k=k, dtype=s.dtype)
        # As `meprop train mnist`: lazy Adam for meProp (the same update for dense).
        optimizer = Adam(model.parameters(), lazy=k is not None)
        cases[name] = [partial(_library_step, model, optimizer, x, y) for x, y in batches]
    numpy_mlp = NumpyMlp(sizes, s.dtype, rng)
    cases["numpy"] = [partial(numpy_mlp.step, x, y) for x, y in batches]
    if torch is not None:
        dtype = torch.float32 if s.dtype == np.float32 else torch.float64
        layers: list[Any] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out, dtype=dtype), torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def torch_step(x: Any, y: Any) -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        cases["torch"] = [partial(torch_step, torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        cases["torch meprop"] = _torch_meprop_step(torch, s, dtype, sizes, batches)
    return cases


def _torch_meprop_step(torch: Any, s: Shape, dtype: Any, sizes: list[int], batches: list) -> Calls:
    """The PyTorch loop docs/torch.md recommends: the drop-ins with error feedback and
    row-sparse gradients, the native lazy Adam; the output layer torch.nn.Linear."""
    import meprop_native.torch as mt

    layers: list[Any] = []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers += [mt.Linear(n_in, n_out, k=s.k, memory_decay=1.0, sparse_grad=True, dtype=dtype), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1], dtype=dtype))
    opt = mt.optim.Adam(net.parameters(), lr=1e-3)

    def step(x: Any, y: Any) -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return [partial(step, torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]


CASES: dict[str, Callable[[Shape, np.random.Generator, Any], dict[str, Calls]]] = {
    "top-k": topk_case,
    "linear backward": backward_case,
    "training step": step_case,
}
