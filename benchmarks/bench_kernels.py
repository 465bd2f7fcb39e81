"""Benchmark of meprop-native's kernels against NumPy and PyTorch on the CPU.

Usage::

    python benchmarks/bench_kernels.py               # full run (~1-2 min on 2 cores)
    python benchmarks/bench_kernels.py --quick       # short run, noisier
    python benchmarks/bench_kernels.py --bars-only   # only the acceptance-bar cases

What is measured
----------------
* Top-k of |A| per row, A of shape (B, n) with n = n_out of each layer shape:
  ``meprop_native.topk_rows`` with method heap, auto and radix;
  ``numpy.argpartition(np.abs(A), -k, axis=1)[:, -k:]`` (unsorted, the fair
  baseline); ``torch.topk(A.abs(), k, dim=1, sorted=False)`` if torch is
  installed. Every method computes the magnitudes itself, inside the timing.
* Backward of a linear layer y = x W^T + b, W of shape (n_out, n_in):
  - meprop ``per_example`` and ``unified`` in the compact form
    (``linear_backward_compact``: dx, the touched rows of dW, db), which is
    what a training loop uses;
  - the same two modes accumulating into persistent dense buffers
    (``linear_backward(..., dx_out=, dW_out=, db_out=, accumulate=True)``),
    rows ``per_example_accum`` and ``unified_accum``;
  - NumPy dense backward: dx = dy @ W, dW = dy.T @ x, db = dy.sum(0);
  - torch dense backward: the same three products on tensors made once with
    ``torch.from_numpy`` (``torch.mm`` and ``Tensor.sum``). Direct products are
    the fastest torch can do (autograd of ``F.linear`` runs the same GEMMs plus
    graph bookkeeping), so they are the strictest torch baseline.
  Every meprop row shows its speedup over both dense baselines (baseline time
  divided by meprop time, measured in the same run) and the ideal speedup
  n_out / k, the ratio of multiply-adds.

How it is timed (see ``_timing.py``)
------------------------------------
Each method is measured in its own block: warm-up calls, then all its samples,
then the next method after a 50 ms pause. The pause and the blocking matter:
meprop's OpenMP threads and NumPy's OpenBLAS threads busy-wait after work, and
interleaving them would make each steal the other's cores. Inputs rotate over
a pool of ``--pool`` different random arrays (standard normal, like a real
gradient) inside every sample so no branch predictor or cache learns one input.
Calls under ~20 us are timed in batches and divided. The reported time is the
median per call over at least 20 samples and 0.2 s (``--quick``: 7 samples,
0.03 s).

Every library gets the same number of threads (``--threads``, default
``os.cpu_count()``): ``meprop_native.set_num_threads``,
``torch.set_num_threads`` and NumPy's BLAS through ``threadpoolctl``. torch is
imported before meprop_native so that torch's OpenMP runtime starts with its
own defaults, whatever meprop's import does to the OpenMP environment (on
Linux both may share one libgomp; the JSON lists the thread pools loaded).

Before any timing, and again after, the script measures how many of the
``--threads`` spinning processes the host really runs at once. Some virtual
machines advertise more vCPUs than the host grants; a parallel region then
waits whole scheduler ticks (4 ms) at every barrier and multi-threaded medians
measure the host, not the code. The bars are marked unreliable in that case;
``--threads 1`` gives clean numbers there.

Known baseline quirk: for B = 1, NumPy's ``dy.T @ x`` is an outer product
(inner dimension 1) that NumPy does not hand to a fast BLAS path, so the NumPy
dense row at B = 1 is far slower than torch's; the B = 1 bar uses torch.

Before a meprop backward case is timed its result is checked once against a
NumPy reference, so a fast but wrong kernel cannot pass unnoticed.

Output: a table on stdout, the acceptance bars with PASS/FAIL, and JSON
(default ``benchmarks/results/kernels.json``, ``--out`` to change) written
atomically.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _timing import (
    FULL,
    QUICK,
    Timing,
    TimingConfig,
    format_ns,
    idle_pause,
    import_torch_then_meprop,
    machine_info,
    measure,
    parallel_capacity,
    results_path,
    write_json_atomic,
)

torch, meprop = import_torch_then_meprop()  # see the module docstring

DEFAULT_SHAPES = ("784x500", "500x500", "1024x4096")  # n_in x n_out
DEFAULT_BATCHES = (1, 32, 128)
DEFAULT_KS = (10, 20, 40)
DEFAULT_OUT = results_path("kernels.json")

TORCH_DENSE_NOTE = (
    "torch dense backward = torch.mm(dy, W), torch.mm(dy.t(), x), dy.sum(0) on tensors "
    "made once with torch.from_numpy (no autograd)"
)
MEPROP_MODES = ("per_example", "unified")
# Below this fraction of --threads really running at once (see
# _timing.parallel_capacity), multi-threaded results are flagged unreliable.
CAPACITY_OK = 0.8


# ---------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Shape:
    """A linear layer's size: W is (n_out, n_in)."""

    n_in: int
    n_out: int

    @property
    def label(self) -> str:
        return f"{self.n_in}x{self.n_out}"

    @staticmethod
    def parse(text: str) -> Shape:
        n_in, n_out = (int(v) for v in text.lower().split("x"))
        return Shape(n_in, n_out)


@dataclass(frozen=True)
class TopkCase:
    n: int
    B: int
    k: int


@dataclass(frozen=True)
class BackwardCase:
    shape: Shape
    B: int
    ks: tuple[int, ...]


@dataclass
class Plan:
    """Which cases to run; built from the CLI filters or from the bars."""

    topk: list[TopkCase] = field(default_factory=list)
    backward: list[BackwardCase] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    """One acceptance bar: ``method`` must be >= ``threshold`` x faster than each baseline."""

    name: str
    kind: str  # "topk" or "backward"
    method: str
    n_in: int | None  # None for top-k (row length is n_out)
    n_out: int
    B: int
    k: int
    baselines: tuple[str, ...]  # "numpy" and/or "torch"
    threshold: float
    companion: str | None = None  # shown beside, not judged (the accumulate form)


# The acceptance bars of the issue. The compact form is judged (it is the
# training form); the accumulate form is shown beside.
# fmt: off
BARS: tuple[Bar, ...] = (
    #   name                                   kind        method         n_in  n_out  B    k   baselines           x     companion
    Bar("1. topk_rows auto n=500 k=20 B=128",  "topk",     "auto",        None, 500,   128, 20, ("numpy", "torch"), 3.0),
    Bar("2a. per_example 784x500 k=20 B=1",    "backward", "per_example", 784,  500,   1,   20, ("torch",),         5.0,  "per_example_accum"),
    Bar("2b. per_example 784x500 k=20 B=32",   "backward", "per_example", 784,  500,   32,  20, ("torch",),         3.0,  "per_example_accum"),
    Bar("3. unified 784x500 k=20 B=128",       "backward", "unified",     784,  500,   128, 20, ("numpy", "torch"), 6.0,  "unified_accum"),
    Bar("4. per_example 1024x4096 k=20 B=32",  "backward", "per_example", 1024, 4096,  32,  20, ("torch",),         10.0, "per_example_accum"),
)
# fmt: on


def plan_from_filters(shapes: Sequence[Shape], batches: Sequence[int], ks: Sequence[int]) -> Plan:
    """The full cross product of the filters; top-k rows have length n_out."""
    plan = Plan()
    row_lengths = sorted({s.n_out for s in shapes})
    plan.topk = [TopkCase(n, B, k) for n in row_lengths for B in batches for k in ks if k <= n]
    plan.backward = [BackwardCase(s, B, tuple(k for k in ks if k <= s.n_out)) for s in shapes for B in batches]
    return plan


def plan_for_bars() -> Plan:
    """Only the cases the acceptance bars read."""
    plan = Plan()
    for bar in BARS:
        if bar.kind == "topk":
            plan.topk.append(TopkCase(bar.n_out, bar.B, bar.k))
        else:
            assert bar.n_in is not None
            case = BackwardCase(Shape(bar.n_in, bar.n_out), bar.B, (bar.k,))
            if case not in plan.backward:
                plan.backward.append(case)
    return plan


# ---------------------------------------------------------------------------
# Inputs


def normal_pool(rng: np.random.Generator, shape: tuple[int, ...], count: int, dtype: np.dtype) -> list[np.ndarray]:
    """``count`` different standard-normal arrays (a gradient-like distribution)."""
    return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]


def to_tensors(arrays: Iterable[np.ndarray]) -> list[Any]:
    """Zero-copy torch views of the arrays, made once outside the timing."""
    assert torch is not None
    return [torch.from_numpy(a) for a in arrays]


# ---------------------------------------------------------------------------
# Top-k


def numpy_topk(a: np.ndarray, k: int) -> np.ndarray:
    """Unsorted argpartition on the magnitudes: the cheapest NumPy way to a top-k set."""
    return np.argpartition(np.abs(a), -k, axis=1)[:, -k:]


def torch_topk(t: Any, k: int) -> Any:
    """torch's top-k of the magnitudes, unsorted like the others."""
    return torch.topk(t.abs(), k, dim=1, sorted=False)


def topk_calls(case: TopkCase, pool: list[np.ndarray]) -> dict[str, list[Callable[[], object]]]:
    """For each method, one zero-argument call per input of the pool."""
    k = case.k
    calls: dict[str, list[Callable[[], object]]] = {
        m: [functools.partial(meprop.topk_rows, a, k, m) for a in pool] for m in ("heap", "auto", "radix")
    }
    calls["numpy"] = [functools.partial(numpy_topk, a, k) for a in pool]
    if torch is not None:
        calls["torch"] = [functools.partial(torch_topk, t, k) for t in to_tensors(pool)]
    return calls


def check_topk(case: TopkCase, a: np.ndarray) -> bool:
    """meprop's index sets equal argpartition's (random floats have no ties)."""
    ref = np.sort(np.argpartition(np.abs(a), -case.k, axis=1)[:, -case.k :], axis=1)
    return all(
        np.array_equal(np.sort(np.asarray(meprop.topk_rows(a, case.k, m)), axis=1), ref)
        for m in ("heap", "auto", "radix")
    )


def run_topk_case(
    case: TopkCase, cfg: TimingConfig, pool_size: int, dtype: np.dtype, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Times every top-k method on one (n, B, k), each in its own block."""
    pool = normal_pool(rng, (case.B, case.n), pool_size, dtype)
    ok = check_topk(case, pool[0])
    timings: dict[str, Timing] = {}
    for method, calls in topk_calls(case, pool).items():
        idle_pause()
        timings[method] = measure(calls, cfg)
    rows = []
    for method, t in timings.items():
        row = {"n": case.n, "B": case.B, "k": case.k, "method": method, **t.as_dict()}
        row["speedup_vs_numpy"] = timings["numpy"].median_ns / t.median_ns
        row["speedup_vs_torch"] = timings["torch"].median_ns / t.median_ns if "torch" in timings else None
        if method in ("heap", "auto", "radix"):
            row["auto_picks"] = meprop.select_method_for(case.n, case.k) if method == "auto" else None
            row["check"] = "ok" if ok else "MISMATCH"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Linear backward


def numpy_dense_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, ...]:
    """Dense backward of y = x W^T + b."""
    return dy @ W, dy.T @ x, dy.sum(0)


def torch_dense_backward(dy: Any, x: Any, W: Any) -> tuple[Any, ...]:
    """The same three products in torch (see TORCH_DENSE_NOTE)."""
    return torch.mm(dy, W), torch.mm(dy.t(), x), dy.sum(0)


def dense_calls(dys: list[np.ndarray], xs: list[np.ndarray], W: np.ndarray) -> dict[str, list[Callable[[], object]]]:
    """Calls for the dense baselines, rotating over the (dy, x) pool."""
    calls: dict[str, list[Callable[[], object]]] = {
        "numpy_dense": [functools.partial(numpy_dense_backward, dy, x, W) for dy, x in zip(dys, xs)]
    }
    if torch is not None:
        Wt = torch.from_numpy(W)
        calls["torch_dense"] = [
            functools.partial(torch_dense_backward, dy, x, Wt) for dy, x in zip(to_tensors(dys), to_tensors(xs))
        ]
    return calls


def meprop_calls(
    k: int, dys: list[np.ndarray], xs: list[np.ndarray], W: np.ndarray
) -> dict[str, list[Callable[[], object]]]:
    """Calls for the meprop forms: compact, and accumulating into persistent dense buffers."""
    B, n_in, n_out = dys[0].shape[0], W.shape[1], W.shape[0]
    calls: dict[str, list[Callable[[], object]]] = {}
    for mode in MEPROP_MODES:
        calls[mode] = [functools.partial(meprop.linear_backward_compact, dy, x, W, k, mode) for dy, x in zip(dys, xs)]
    for mode in MEPROP_MODES:
        # Buffers live as long as a training run would keep them; the values
        # grow with every call, which does not change the work done.
        dx_out = np.zeros((B, n_in), W.dtype)
        dW_out = np.zeros((n_out, n_in), W.dtype)
        db_out = np.zeros(n_out, W.dtype)
        calls[f"{mode}_accum"] = [
            functools.partial(
                meprop.linear_backward,
                dy,
                x,
                W,
                k,
                mode,
                dx_out=dx_out,
                dW_out=dW_out,
                db_out=db_out,
                accumulate=True,
            )
            for dy, x in zip(dys, xs)
        ]
    return calls


def reference_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, k: int, mode: str) -> tuple[np.ndarray, ...]:
    """NumPy meProp reference: dense products on dy with all but the kept entries zeroed."""
    a = np.abs(dy).astype(np.float64)
    mask = np.zeros(dy.shape, dtype=bool)
    if mode == "per_example":
        np.put_along_axis(mask, np.argpartition(a, -k, axis=1)[:, -k:], True, axis=1)
    else:  # unified: the k columns with the largest summed magnitude, for every row
        mask[:, np.argpartition(a.sum(0), -k)[-k:]] = True
    dys = np.where(mask, dy, 0).astype(np.float64)
    return dys @ W, dys.T @ x, dy.astype(np.float64).sum(0)


def check_backward(dy: np.ndarray, x: np.ndarray, W: np.ndarray, k: int, mode: str) -> bool:
    """One compact result compared with the reference, relative to each array's scale."""
    got = meprop.linear_backward_compact(dy, x, W, k, mode)
    want = reference_backward(dy, x, W, k, mode)
    tol = 1e-4 if dy.dtype == np.float32 else 1e-10
    pairs = zip((got.dx, got.dense_dW(W.shape[0]), got.db), want)
    return all(np.max(np.abs(g - w)) <= tol * max(1.0, float(np.max(np.abs(w)))) for g, w in pairs)


def run_backward_case(
    case: BackwardCase, cfg: TimingConfig, pool_size: int, dtype: np.dtype, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Times the dense baselines once for (shape, B), then every meprop form for each k."""
    s = case.shape
    dys = normal_pool(rng, (case.B, s.n_out), pool_size, dtype)
    xs = normal_pool(rng, (case.B, s.n_in), pool_size, dtype)
    # One W, as in training: the parameter is the same array every step.
    W = (rng.standard_normal((s.n_out, s.n_in)) / np.sqrt(s.n_in)).astype(dtype)

    base: dict[str, Timing] = {}
    for method, calls in dense_calls(dys, xs, W).items():
        idle_pause()
        base[method] = measure(calls, cfg)

    common = {"shape": s.label, "n_in": s.n_in, "n_out": s.n_out, "B": case.B}
    rows = [{**common, "k": None, "method": m, **t.as_dict()} for m, t in base.items()]
    for k in case.ks:
        checks = {mode: check_backward(dys[0], xs[0], W, k, mode) for mode in MEPROP_MODES}
        for method, calls in meprop_calls(k, dys, xs, W).items():
            idle_pause()
            t = measure(calls, cfg)
            rows.append(
                {
                    **common,
                    "k": k,
                    "method": method,
                    **t.as_dict(),
                    "speedup_vs_numpy": base["numpy_dense"].median_ns / t.median_ns,
                    "speedup_vs_torch": base["torch_dense"].median_ns / t.median_ns if "torch_dense" in base else None,
                    "ideal_speedup": s.n_out / k,
                    "check": "ok" if checks[method.removesuffix("_accum")] else "MISMATCH",
                }
            )
    return rows


# ---------------------------------------------------------------------------
# Reporting


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def print_topk_table(rows: list[dict[str, Any]]) -> None:
    print("\nTop-k of |A| per row (A is B x n); speedup = baseline time / method time")
    print(
        f"{'n':>5} {'B':>4} {'k':>3} {'method':<8} {'median':>10} {'IQR/med':>8} {'vs numpy':>9} {'vs torch':>9}  note"
    )
    for r in rows:
        note = ""
        if r.get("auto_picks"):
            note = f"auto->{r['auto_picks']}"
        if r.get("check") == "MISMATCH":
            note += " RESULT MISMATCH"
        iqr = (r["q3_ns"] - r["q1_ns"]) / r["median_ns"]
        print(
            f"{r['n']:>5} {r['B']:>4} {r['k']:>3} {r['method']:<8} {format_ns(r['median_ns']):>10} {iqr:>7.0%} "
            f"{fmt_ratio(r['speedup_vs_numpy']):>9} {fmt_ratio(r['speedup_vs_torch']):>9}  {note}"
        )


def print_backward_table(rows: list[dict[str, Any]]) -> None:
    print("\nLinear backward (shape = n_in x n_out); speedup = dense time / meprop time; ideal = n_out / k")
    print(
        f"{'shape':>10} {'B':>4} {'k':>4} {'method':<18} {'median':>10} {'IQR/med':>8} {'vs numpy':>9} "
        f"{'vs torch':>9} {'ideal':>7}  note"
    )
    for r in rows:
        iqr = (r["q3_ns"] - r["q1_ns"]) / r["median_ns"]
        k = "-" if r["k"] is None else str(r["k"])
        note = "RESULT MISMATCH" if r.get("check") == "MISMATCH" else ""
        print(
            f"{r['shape']:>10} {r['B']:>4} {k:>4} {r['method']:<18} {format_ns(r['median_ns']):>10} {iqr:>7.0%} "
            f"{fmt_ratio(r.get('speedup_vs_numpy')):>9} {fmt_ratio(r.get('speedup_vs_torch')):>9} "
            f"{fmt_ratio(r.get('ideal_speedup')):>7}  {note}"
        )


def find_row(rows: list[dict[str, Any]], bar: Bar, method: str) -> dict[str, Any] | None:
    """The measured row a bar refers to, or None if it was not run."""
    for r in rows:
        if r["method"] != method or r["B"] != bar.B or r["k"] != bar.k:
            continue
        if bar.kind == "topk" and r["n"] == bar.n_out:
            return r
        if bar.kind == "backward" and r["n_in"] == bar.n_in and r["n_out"] == bar.n_out:
            return r
    return None


def evaluate_bars(topk_rows: list[dict[str, Any]], backward_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PASS / FAIL / SKIP per bar with the measured ratios."""
    out = []
    for bar in BARS:
        rows = topk_rows if bar.kind == "topk" else backward_rows
        row = find_row(rows, bar, bar.method)
        companion = find_row(rows, bar, bar.companion) if bar.companion else None
        entry: dict[str, Any] = {
            "bar": bar.name,
            "method": bar.method,
            "threshold": bar.threshold,
            "baselines": list(bar.baselines),
            "ratios": {},
            "companion": bar.companion,
            "companion_ratios": {},
        }
        if row is None:
            entry["status"] = "NOT RUN"
            out.append(entry)
            continue
        status = "PASS"
        for b in bar.baselines:
            ratio = row[f"speedup_vs_{b}"]
            entry["ratios"][b] = ratio
            if companion is not None:
                entry["companion_ratios"][b] = companion[f"speedup_vs_{b}"]
            if ratio is None:
                status = "SKIP" if status == "PASS" else status  # torch missing: cannot judge
            elif ratio < bar.threshold:
                status = "FAIL"
        if row.get("check") == "MISMATCH":
            status = "FAIL"
        entry["status"] = status
        out.append(entry)
    return out


def print_bars(bars: list[dict[str, Any]]) -> None:
    print("\nAcceptance bars (compact form judged; accumulate form shown beside, not judged)")
    for b in bars:
        ratios = ", ".join(f"{k} {fmt_ratio(v)}" for k, v in b["ratios"].items()) or "-"
        comp = ", ".join(f"{k} {fmt_ratio(v)}" for k, v in b["companion_ratios"].items())
        comp = f"   [{b['companion']}: {comp}]" if comp else ""
        print(
            f"  {b['status']:<7} {b['bar']:<38} need >= {b['threshold']:g}x vs {'+'.join(b['baselines'])}: "
            f"{ratios}{comp}"
        )


# ---------------------------------------------------------------------------
# Main


def parse_list(text: str, convert: Callable[[str], Any]) -> list[Any]:
    return [convert(v) for v in text.split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer samples per case (short, noisier run)")
    p.add_argument("--bars-only", action="store_true", help="run only the cases the acceptance bars need")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for meprop, torch and NumPy's BLAS alike (default: cpu count)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON output path (default: {DEFAULT_OUT})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--shapes", default=",".join(DEFAULT_SHAPES), help="n_in x n_out list, e.g. 784x500,500x500")
    p.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)), help="batch sizes, e.g. 1,32,128")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="k values, e.g. 10,20,40")
    p.add_argument("--pool", type=int, default=8, help="number of rotating random inputs per case")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads < 1 or args.pool < 1:
        p.error("--threads and --pool must be >= 1")
    return args


def report_capacity(capacity: float, threads: int) -> None:
    """Prints how many threads the host really runs at once, warning when short."""
    print(f"parallel capacity: {capacity:.2f} of {threads} spinning processes really ran")
    if capacity < CAPACITY_OK * threads:
        # Multi-threaded kernels then lose whole scheduler ticks at every barrier.
        print(
            "WARNING: the host does not give this machine all its CPUs at once; multi-threaded "
            "timings will be noisy (compare with --threads 1)"
        )


def set_threads(n: int) -> Any:
    """Same thread count for all three libraries; returns the BLAS limiter to keep alive."""
    from threadpoolctl import threadpool_limits

    meprop.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    # Only the BLAS API: the OpenMP runtime's count is set by meprop / torch above.
    return threadpool_limits(limits=n, user_api="blas")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else FULL
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    if args.bars_only:
        plan = plan_for_bars()
    else:
        plan = plan_from_filters(
            parse_list(args.shapes, Shape.parse), parse_list(args.batches, int), parse_list(args.ks, int)
        )

    limiter = set_threads(args.threads)
    info = machine_info(torch, meprop, args.threads)
    print(
        f"meprop-native {info['meprop_native']} | numpy {info['numpy']} | torch {info['torch'] or 'not installed'}"
        f" | {info['cpu_count']} CPUs | {args.threads} threads each | {args.dtype}"
        f" | {'quick' if args.quick else 'full'}{' bars-only' if args.bars_only else ''}"
    )
    if torch is None:
        print("torch is not installed: torch columns and torch bars are skipped")
    capacity = [parallel_capacity(args.threads)]
    report_capacity(capacity[0], args.threads)

    started = time.perf_counter()
    topk_rows: list[dict[str, Any]] = []
    for case in plan.topk:
        topk_rows += run_topk_case(case, cfg, args.pool, dtype, rng)
    backward_rows: list[dict[str, Any]] = []
    for bcase in plan.backward:
        backward_rows += run_backward_case(bcase, cfg, args.pool, dtype, rng)
    elapsed = time.perf_counter() - started
    limiter.restore_original_limits()
    # Throttling by the host comes and goes: measure again, judge on the worse.
    capacity.append(parallel_capacity(args.threads))
    info["parallel_capacity"] = capacity
    reliable = min(capacity) >= CAPACITY_OK * args.threads

    print_topk_table(topk_rows)
    print_backward_table(backward_rows)
    bars = evaluate_bars(topk_rows, backward_rows)
    print_bars(bars)
    if not reliable:
        print(
            f"  NOTE: parallel capacity {min(capacity):.2f} of {args.threads} threads: the host throttled this "
            "machine, so multi-threaded medians (torch's especially) include scheduler stalls and these "
            "verdicts are unreliable; rerun with --threads 1 or on a quiet machine"
        )
    print(f"\nmeasured in {elapsed:.1f} s")

    payload = {
        "machine": info,
        "config": {
            "quick": args.quick,
            "bars_only": args.bars_only,
            "dtype": args.dtype,
            "pool": args.pool,
            "seed": args.seed,
            "timing": cfg.__dict__,
            "torch_dense": TORCH_DENSE_NOTE,
            "numpy_topk": "np.argpartition(np.abs(A), -k, axis=1)[:, -k:]",
            "torch_topk": "torch.topk(A.abs(), k, dim=1, sorted=False)",
        },
        "elapsed_s": elapsed,
        "topk": topk_rows,
        "backward": backward_rows,
        "bars": bars,
        "bars_reliable": reliable,
    }
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")
    mismatches = [r for r in topk_rows + backward_rows if r.get("check") == "MISMATCH"]
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
