"""Timing one call against another, the same way everywhere: the benchmark
scripts of the repository and ``meprop bench``.

How one case is timed (:func:`measure`):

* The caller passes a *pool* of zero-argument calls, one per input array
  (typically 8 different random arrays). Every timed batch walks through the
  pool in rotation, so consecutive calls never see the same data and the
  branch predictor / caches cannot learn one input.
* A few warm-up calls run first (page faults, lazy allocations, thread-pool
  start-up), then one pass over the pool estimates the cost of a call.
* If one call is shorter than ~20 us, each timed sample is a batch of calls
  (still rotating) whose total time is divided by the batch length, so the
  ~0.1 us of ``perf_counter_ns`` overhead stays well under 1%.
* Samples are taken until there are at least ``min_runs`` of them *and*
  ``min_time_s`` has passed (or ``max_time_s`` runs out); the reported time is
  the median per-call time, with the quartiles to judge stability.
* The garbage collector is paused inside a block so that a collection
  triggered by one method's allocations is not billed to a random sample.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

# Below this per-call time, samples become batches of calls (see module doc).
BATCH_TARGET_NS = 20_000
# A batch never grows beyond this many calls; at that point the timer
# overhead is negligible anyway.
MAX_BATCH = 256
# Pause between measurement blocks: lets busy-waiting OpenMP / BLAS worker
# threads from the previous block give up their cores before the next one.
# OpenBLAS workers spin for about 2^28 cycles (~0.1 s) after a call; a 50 ms
# pause left them spinning into the next block and made the torch baseline
# measured right after NumPy's up to 1.5x slower than alone.
IDLE_PAUSE_S = 0.25


@dataclass(frozen=True)
class TimingConfig:
    """How hard to try for a stable median."""

    min_runs: int = 20
    min_time_s: float = 0.2
    max_time_s: float = 5.0
    warmup: int = 3


FULL = TimingConfig()
QUICK = TimingConfig(min_runs=7, min_time_s=0.03, max_time_s=1.0, warmup=2)


@dataclass(frozen=True)
class Timing:
    """Per-call statistics of one measured block, in nanoseconds."""

    median_ns: float
    q1_ns: float
    q3_ns: float
    min_ns: float
    samples: int
    batch: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def idle_pause() -> None:
    """Sleeps briefly so spinning thread pools go idle between blocks."""
    time.sleep(IDLE_PAUSE_S)


def _batch_size(estimate_ns: float) -> int:
    """Calls per timed sample so that one sample lasts about BATCH_TARGET_NS."""
    if estimate_ns <= 0:
        return MAX_BATCH
    return max(1, min(MAX_BATCH, math.ceil(BATCH_TARGET_NS / estimate_ns)))


def measure(calls: Sequence[Callable[[], object]], cfg: TimingConfig) -> Timing:
    """Times one method as a single block: warm-up, then rotating-input samples.

    ``calls`` holds one zero-argument callable per input of the pool; they are
    cycled in order so that each call sees a different input than the last.
    """
    if not calls:
        raise ValueError("measure() needs at least one call")
    pool = len(calls)
    for j in range(cfg.warmup):
        calls[j % pool]()

    # One full pass over the pool gives a per-call estimate for the batch size.
    t0 = time.perf_counter_ns()
    for c in calls:
        c()
    batch = _batch_size((time.perf_counter_ns() - t0) / pool)

    # A long enough rotation list so that any window of `batch` calls starting
    # at any pool offset can be sliced out (slicing happens outside the timer).
    cycle = list(calls) * (math.ceil(batch / pool) + 1)
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        min_ns = cfg.min_time_s * 1e9
        max_ns = cfg.max_time_s * 1e9
        offset = 0
        while True:
            seq = cycle[offset : offset + batch]
            t0 = time.perf_counter_ns()
            for c in seq:
                c()
            t1 = time.perf_counter_ns()
            samples.append((t1 - t0) / batch)
            offset = (offset + batch) % pool
            elapsed = t1 - start
            enough = len(samples) >= cfg.min_runs and elapsed >= min_ns
            if enough or (elapsed >= max_ns and len(samples) >= 3):
                break
    finally:
        if gc_was_enabled:
            gc.enable()

    if len(samples) > 1:
        q1, med, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = med = q3 = samples[0]
    return Timing(median_ns=med, q1_ns=q1, q3_ns=q3, min_ns=min(samples), samples=len(samples), batch=batch)


def cpu_model() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch: ModuleType | None, meprop: ModuleType, threads: int) -> dict[str, Any]:
    """Versions, core count and the thread settings in effect for the run."""
    import numpy as np

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "meprop_native": getattr(meprop, "__version__", None),
        "threads": threads,
        "meprop_threads": meprop.get_num_threads(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads", "filepath")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = None
    return info


# Each probe process spins for this long and reports the fraction of wall time
# it was not running (gaps > 1 ms between two clock reads = descheduled).


def format_ns(ns: float) -> str:
    """Human-readable duration."""
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"
