"""Heap, radix and threshold top-k selection, one thread: what should ``auto`` pick?

Usage::

    python benchmarks/bench_select.py            # full grid
    python benchmarks/bench_select.py --quick    # fewer samples

For every row length n and k it times ``meprop_native.topk_rows(A, k, method)``
for each method on a (rows, n) standard-normal matrix, on one thread
(``set_num_threads(1)``, BLAS is not involved), and reports the time per row.
Inputs rotate over a pool of different random matrices inside every timed
sample (see ``_timing.py``) so the branch predictor cannot learn one input, and
each method is measured in its own block; ``--rounds`` blocks per method (order
rotating) give the median that is reported, so one block slowed as a whole by
the host does not flip a comparison.

The table shows each method's time, the fastest, what
``meprop_native.select_method_for(n, k)`` picks, and flags every case where
that pick is more than 20% slower than the fastest. Results also go to JSON
(default ``benchmarks/results/select.json``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from _timing import (
    FULL,
    QUICK,
    TimingConfig,
    format_ns,
    idle_pause,
    import_meprop,
    machine_info,
    measure,
    results_path,
    write_json_atomic,
)

meprop = import_meprop()

DEFAULT_NS = (100, 256, 500, 1000, 4096)
DEFAULT_KS = (1, 4, 8, 12, 16, 20, 24, 32, 64, 128)
DEFAULT_OUT = results_path("select.json")
METHODS = ("heap", "radix", "threshold")
# A pick is flagged when it is this much slower than the fastest method.
FLAG_SLOWDOWN = 1.20


def time_method(method: str, pool: list[np.ndarray], k: int, cfg: TimingConfig) -> float:
    """Median ns per row of topk_rows with one method, inputs rotating."""
    idle_pause()
    calls = [functools.partial(meprop.topk_rows, a, k, method) for a in pool]
    return measure(calls, cfg).median_ns / pool[0].shape[0]


def run_case(
    n: int,
    k: int,
    rows: int,
    pool_size: int,
    rounds: int,
    dtype: np.dtype,
    cfg: TimingConfig,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Every method on one (n, k), with auto's pick and the flag.

    Each round measures every method (one block each, the order rotating
    between rounds); the result is the median over rounds. A single block can
    be slowed as a whole by the host, which the median within a block cannot
    see, and one slowed block would flip the comparison.
    """
    pool = [rng.standard_normal((rows, n)).astype(dtype) for _ in range(pool_size)]
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for r in range(rounds):
        shift = r % len(METHODS)
        for method in METHODS[shift:] + METHODS[:shift]:
            times[method].append(time_method(method, pool, k, cfg))
    per_row = {m: statistics.median(t) for m, t in times.items()}
    pick = meprop.select_method_for(n, k)
    fastest = min(per_row, key=per_row.__getitem__)
    return {
        "n": n,
        "k": k,
        "ns_per_row": per_row,
        "rounds_ns": times,
        "fastest": fastest,
        "auto_picks": pick,
        "auto_slowdown": per_row[pick] / per_row[fastest],
        "flag": per_row[pick] / per_row[fastest] > FLAG_SLOWDOWN,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'n':>5} {'k':>4} " + " ".join(f"{m + '/row':>14}" for m in METHODS) + f" {'fastest':>10} {'auto':>10}  flag"
    )
    for r in results:
        flag = f"AUTO {r['auto_slowdown']:.2f}x SLOWER" if r["flag"] else ""
        times = " ".join(f"{format_ns(r['ns_per_row'][m]):>14}" for m in METHODS)
        print(f"{r['n']:>5} {r['k']:>4} {times} {r['fastest']:>10} {r['auto_picks']:>10}  {flag}")


def print_summary(results: list[dict[str, Any]]) -> None:
    """The cases where auto's pick is clearly slower than the fastest method."""
    flagged = [r for r in results if r["flag"]]
    print(
        f"\nauto picks a method more than {FLAG_SLOWDOWN - 1:.0%} slower than the fastest: "
        f"{len(flagged)} of {len(results)} cases"
    )
    for r in flagged:
        print(
            f"  n={r['n']} k={r['k']}: auto -> {r['auto_picks']}, {r['auto_slowdown']:.2f}x slower than {r['fastest']}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer samples per case")
    p.add_argument("--ns", default=",".join(map(str, DEFAULT_NS)), help="row lengths")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="k values (k > n skipped)")
    p.add_argument("--rounds", type=int, default=3, help="blocks per method and case; median over them")
    p.add_argument("--rows", type=int, default=64, help="rows per matrix; times are per row")
    p.add_argument("--pool", type=int, default=8, help="number of rotating random inputs")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON output path (default: {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ns = [int(v) for v in args.ns.split(",")]
    ks = [int(v) for v in args.ks.split(",")]
    cfg = QUICK if args.quick else FULL
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    # One thread: the choice between the selections is a per-row decision, and
    # threads only split rows between cores.
    meprop.set_num_threads(1)
    print(
        f"meprop-native {meprop.__version__} | 1 thread | {args.dtype} | {args.rows} rows per call"
        f" | {'quick' if args.quick else 'full'}\n"
    )

    results = [run_case(n, k, args.rows, args.pool, args.rounds, dtype, cfg, rng) for n in ns for k in ks if k <= n]
    print_table(results)
    print_summary(results)

    payload = {
        "machine": machine_info(None, meprop, 1),
        "config": {
            "quick": args.quick,
            "rows": args.rows,
            "pool": args.pool,
            "dtype": args.dtype,
            "seed": args.seed,
            "timing": cfg.__dict__,
            "flag_slowdown": FLAG_SLOWDOWN,
        },
        "results": results,
    }
    write_json_atomic(args.out, payload)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
