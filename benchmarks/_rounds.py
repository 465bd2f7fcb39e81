"""Rounds of contenders against a baseline, for the benchmarks that compare
layers with PyTorch's: each round times every contender's phases in blocks
of their own, in alternating order, and the summary takes medians over the
rounds of each one's median and of its speed-up within the round.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from _timing import FULL, QUICK, Timing, TimingConfig, format_ns, idle_pause, machine_info, measure, write_json_atomic


def add_round_arguments(p: Any, default_out: str, pooled: str) -> None:
    """The options of a benchmark that times rounds of contenders on a pool of rotating inputs."""
    p.add_argument("--quick", action="store_true", help="fewer samples per block (short, noisier run)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--pool", type=int, default=8, help=f"number of rotating {pooled} inputs")
    p.add_argument("--rounds", type=int, default=3, help="repeats of the whole set, alternating order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=default_out, help=f"JSON output path (default: {default_out})")


def start_rounds(torch: ModuleType, meprop: ModuleType, args: Any, meprop_threads: int | None = None) -> Any:
    """Sets both libraries' threads; the timing configuration, dtype and machine facts of the run."""
    torch.set_num_threads(args.threads)
    meprop.set_num_threads(meprop_threads or args.threads)
    return QUICK if args.quick else FULL, getattr(torch, args.dtype), machine_info(torch, meprop, args.threads)


def timed_round(
    order: Sequence[str], phases: dict[str, Callable[[str], Sequence[Callable[[], object]]]], cfg: TimingConfig
) -> dict[str, dict[str, Timing]]:
    """Each contender in ``order``, each phase in its own block: ``phases[phase](name)``
    gives the pool of calls that time it."""
    out: dict[str, dict[str, Timing]] = {}
    for name in order:
        out[name] = {}
        for phase, calls in phases.items():
            idle_pause()
            out[name][phase] = measure(calls(name), cfg)
    return out


def round_rows(
    rounds: list[dict[str, dict[str, Timing]]], baselines: dict[str, str], phases: Sequence[str]
) -> list[dict[str, Any]]:
    """Per contender (``baselines`` maps each to the one it is compared with) and
    phase: the median over rounds of its medians and of its in-round speed-ups."""
    rows = []
    for name, base in baselines.items():
        for phase in phases:
            medians = [r[name][phase].median_ns for r in rounds]
            ratios = [r[base][phase].median_ns / r[name][phase].median_ns for r in rounds]
            spread = [(r[name][phase].q3_ns - r[name][phase].q1_ns) / r[name][phase].median_ns for r in rounds]
            rows.append(
                {
                    "contender": name,
                    "phase": phase,
                    "median_ns": statistics.median(medians),
                    "round_medians_ns": medians,
                    "speedup_vs_torch": statistics.median(ratios),
                    "round_speedups": ratios,
                    "iqr_over_median": statistics.median(spread),
                }
            )
    return rows


def print_round_rows(rows: list[dict[str, Any]], checks: dict[str, bool], width: int) -> None:
    """The rows as a table, with each contender's check against its reference."""
    print(f"\n{'contender':<{width}} {'phase':<9} {'median':>10} {'IQR/med':>8} {'vs torch':>9}  check")
    for r in rows:
        name = r["contender"]
        check = "-" if name not in checks else "ok" if checks[name] else "MISMATCH"
        print(
            f"{r['contender']:<{width}} {r['phase']:<9} {format_ns(r['median_ns']):>10} {r['iqr_over_median']:>7.0%} "
            f"{r['speedup_vs_torch']:>8.2f}x  {check}"
        )


def write_results(
    args: Any, info: dict[str, Any], cfg: TimingConfig, elapsed: float, rows: list, checks: dict, **extra: Any
) -> int:
    """Writes the run's results to ``args.out``; the exit code: 1 where a contender failed its check."""
    payload = {
        "machine": info,
        "config": {k: v for k, v in vars(args).items() if k != "out"} | {"timing": cfg.__dict__},
        "elapsed_s": elapsed,
        "rows": rows,
        "checks": checks,
        **extra,
    }
    write_json_atomic(args.out, payload)
    print(f"wrote {args.out}")
    return 0 if all(checks.values()) else 1
