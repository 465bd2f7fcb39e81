"""PyTorch integration: layers whose backward runs meprop-native's kernels.

Needs the optional dependency (``pip install "meprop-native[torch]"``); the
rest of the package never imports torch.

- :class:`Linear`: a drop-in ``torch.nn.Linear`` with meProp's backward.
- :func:`meprop_linear`: the functional form, ``F.linear`` with that backward.
- :class:`MepropLinearFunction`: the ``torch.autograd.Function`` behind both.
- :mod:`meprop_native.torch.optim`: :class:`~meprop_native.torch.optim.Adam`
  on the native update, which takes the row-sparse weight gradients of
  ``Linear(sparse_grad=True)`` and moves only the touched rows.
- :class:`LSTM`: a single-layer ``torch.nn.LSTM`` with the native recurrence
  and meProp's backward through time; :class:`MepropLSTMFunction` behind it.

Threads: the kernels and torch's CPU operators share one OpenMP runtime in a
process (both link ``libgomp.so.1``; whichever is imported first provides it),
so their workers are the same threads and never spin against each other. By
default the kernels use ``omp_get_max_threads()``, which
``torch.set_num_threads`` sets; ``meprop_native.set_num_threads`` overrides it.
See docs/torch.md.
"""

from __future__ import annotations

from . import optim
from .functional import MepropLinearFunction, meprop_linear
from .linear import Linear
from .lstm import LSTM, MepropLSTMFunction

__all__ = ["LSTM", "Linear", "MepropLSTMFunction", "MepropLinearFunction", "meprop_linear", "optim"]
