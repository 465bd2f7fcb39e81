"""Shared timing helpers for the benchmark scripts in this folder.

The scripts import this module by name, which works because running
``python benchmarks/<script>.py`` puts this folder first on ``sys.path``.

How one case is timed: ``meprop_native.bench.timing`` (one copy, shared with
``meprop bench``), whose names this module passes on.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# torch before the library, in every benchmark: torch's OpenMP runtime then
# starts with its own defaults, whatever the library's import does.
try:
    import torch as _torch
except ImportError:
    _torch = None

from meprop_native.bench.timing import FULL as FULL
from meprop_native.bench.timing import QUICK as QUICK
from meprop_native.bench.timing import Timing as Timing
from meprop_native.bench.timing import TimingConfig as TimingConfig
from meprop_native.bench.timing import cpu_model as cpu_model
from meprop_native.bench.timing import format_ns as format_ns
from meprop_native.bench.timing import idle_pause as idle_pause
from meprop_native.bench.timing import machine_info as machine_info
from meprop_native.bench.timing import measure as measure


def import_torch() -> ModuleType | None:
    """Imports torch if installed.

    Must run before meprop_native is imported, so that torch's OpenMP runtime
    starts with its own defaults whatever meprop's import changes.
    """
    try:
        import torch
    except ImportError:
        return None
    return torch


def import_torch_then_meprop() -> tuple[Any, ModuleType]:
    """torch (None when absent), then meprop_native: in that order in every benchmark,
    so that torch's OpenMP runtime starts with its own defaults."""
    torch = import_torch()
    return torch, import_meprop()


TORCH_MISSING = "torch is not installed: pip install 'meprop-native[torch]'"


def torch_missing(torch: ModuleType | None) -> bool:
    """Whether torch is absent; says so, for a script that cannot run without it."""
    if torch is None:
        print(TORCH_MISSING)
    return torch is None


def results_path(name: str) -> str:
    """Where a benchmark writes its results by default: ``benchmarks/results/NAME``."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", name)


def import_meprop(attempts: int = 5, delay_s: float = 2.0) -> ModuleType:
    """Imports meprop_native, retrying: a concurrent reinstall can make it vanish briefly."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return importlib.import_module("meprop_native")
        except ImportError as exc:  # includes a missing compiled _core mid-reinstall
            last = exc
            for name in [m for m in sys.modules if m.startswith("meprop_native")]:
                del sys.modules[name]
            time.sleep(delay_s)
    raise ImportError(f"meprop_native could not be imported: {last}")


_SPIN_PROBE = """
import sys, time
start, length = float(sys.argv[1]), float(sys.argv[2])
while time.time() < start:
    pass
end = time.perf_counter() + length
last = time.perf_counter()
lost = 0.0
while last < end:
    now = time.perf_counter()
    if now - last > 1e-3:
        lost += now - last
    last = now
print(lost / length)
"""


def parallel_capacity(threads: int, seconds: float = 0.3) -> float:
    """How many of ``threads`` concurrently spinning processes really run.

    A virtual machine can advertise more vCPUs than the host lets it use at
    once; then multi-threaded timings are dominated by the host's throttling
    (stalls of whole scheduler ticks), not by the code. Separate processes, so
    the GIL and the already loaded thread pools play no part.
    """
    start = time.time() + 0.3  # lets every interpreter start before spinning
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SPIN_PROBE, repr(start), repr(seconds)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(threads)
    ]
    lost = [float(p.communicate()[0].strip() or 1.0) for p in procs]
    return sum(max(0.0, 1.0 - f) for f in lost)


def write_json_atomic(path: str, payload: dict[str, Any]) -> None:
    """Writes a benchmark's results as the library writes its own: atomically, into a folder made if need be."""
    from meprop_native.train.atomic import write_json  # imported here: this module loads without the library

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    write_json(Path(path), payload)


# ---- training steps, split as the paper's Table 2 ----------------------------

STEP_PARTS = ("forward", "backprop", "overall_backprop", "optimizer", "total")


def training_step_times(model: Any, optimizer: Any, x: Any, y: Any, loss: Callable[..., Any]) -> dict[str, float]:
    """One training step, timed by part (seconds).

    ``forward`` includes the loss; ``backprop`` is the time the model's linear
    kernels report (``model.backward_seconds``, the paper's "backprop time");
    ``overall_backprop`` is all of ``model.backward``.
    """
    kernels = model.backward_seconds
    t0 = time.perf_counter()
    _, grad = loss(model.forward(x), y)
    t1 = time.perf_counter()
    model.backward(grad)
    t2 = time.perf_counter()
    optimizer.step()
    t3 = time.perf_counter()
    return {
        "forward": t1 - t0,
        "backprop": model.backward_seconds - kernels,
        "overall_backprop": t2 - t1,
        "optimizer": t3 - t2,
        "total": t3 - t0,
    }
