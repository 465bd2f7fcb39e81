"""Weight initialisations for the linear products of Linear and LSTM.

Two schemes, named after where they come from:

``"pytorch"``
    PyTorch's default for ``nn.Linear`` and ``nn.LSTM``: weights and biases
    uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (for an LSTM, fan_in is the
    hidden size, as PyTorch does).

``"paper"``
    What the meProp authors' code draws (github.com/lancopku/meProp,
    ``GlorotNormalInit`` in its C# MLP): weights from a normal distribution
    with standard deviation sqrt(6 / (fan_in + fan_out)) -- the bound of
    Glorot's uniform scheme used as a standard deviation, about 3x wider than
    ``"pytorch"`` for the paper's layers -- and biases zero.

With Adam, meProp's sparse updates of the first epochs can blow the hidden
activations up; the wider ``"paper"`` weights make that milder on some seeds
and tasks (docs/results.md compares the two).
"""

from __future__ import annotations

import numpy as np

from ..modes import check_k

INITS = ("pytorch", "paper")


def check_init(init: str) -> str:
    """Returns init if it names a scheme; ValueError otherwise."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return init


def check_layer(sizes: dict[str, int], k: object, init: str, dtype: object) -> None:
    """What a layer checks before it draws its weights: every size >= 1, k (see
    ``meprop_native.modes.check_k``), the init scheme, and a dtype the native
    kernels have (float32 or float64)."""
    if min(sizes.values()) < 1:
        raise ValueError(f"layer sizes must be >= 1, got {', '.join(f'{n} {v}' for n, v in sizes.items())}")
    check_k(k)
    check_init(init)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")


def init_weight(
    rng: np.random.Generator, shape: tuple[int, int], fan_in: int, fan_out: int, init: str, dtype: type
) -> np.ndarray:
    """A weight matrix of this shape drawn by the scheme (see the module's text)."""
    check_init(init)
    if init == "paper":
        return rng.normal(0.0, np.sqrt(6.0 / (fan_in + fan_out)), shape).astype(dtype)
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)


def init_bias(rng: np.random.Generator, size: int, fan_in: int, init: str, dtype: type) -> np.ndarray:
    """A bias vector drawn by the scheme: zeros for ``"paper"``."""
    check_init(init)
    if init == "paper":
        return np.zeros(size, dtype=dtype)
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size).astype(dtype)
