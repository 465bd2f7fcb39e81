"""``meprop bench``: meProp against dense backprop on this machine and these shapes.

For each layer shape (``--shapes``, n_in x n_out), the batch and k, three
cases (``cases.py``): the top-k selection, one layer's backward and a whole
training step of an MLP, meProp against this library's dense path, NumPy
and PyTorch (when installed). Every contender runs in rounds, in alternating
order, each time as a block of calls on rotating inputs (``timing.py``); a
speed-up is the ratio of two medians within one round, and the result the
median over the rounds, so that a machine's load drifting during the run
moves both sides. The table goes to stdout, the figures to a JSON file and,
with matplotlib installed, a PNG.

The library's contenders run as a training loop does (the kernels on
``--threads`` threads, NumPy's BLAS on one); NumPy's and torch's baselines get
the same ``--threads`` for their own pools.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, get_num_threads, set_num_threads, thread_limits
from .cases import CASES, Shape
from .timing import FULL, QUICK, Timing, cpu_model, format_ns, idle_pause, machine_info, measure

__all__ = ["add_arguments", "run"]


def shape_list(text: str) -> list[tuple[int, int]]:
    """An argparse type: "784x500,500x500" -> [(784, 500), (500, 500)]."""
    shapes = []
    for part in text.split(","):
        try:
            n_in, n_out = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"shapes are n_in x n_out, e.g. 784x500; got {part!r}") from None
        if n_in < 1 or n_out < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {part!r}")
        shapes.append((n_in, n_out))
    return shapes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..tasks.arguments import count  # the argparse types every command shares

    parser.add_argument(
        "--shapes", type=shape_list, default=[(784, 500)], help="layer shapes n_in x n_out (default 784x500)"
    )
    parser.add_argument("--batch", type=count(1), default=32, help="examples per batch (default 32)")
    parser.add_argument("--k", type=count(1), default=20, help="entries of dy kept per example (default 20)")
    parser.add_argument(
        "--threads", type=count(1, 1024), default=None, help="threads for every library (default: the library's)"
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--rounds", type=count(1), default=3, help="rounds of every contender (default 3)")
    parser.add_argument("--quick", action="store_true", help="fewer samples per block: short and noisier")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even where it is installed")
    parser.add_argument("--out", type=Path, default=Path("meprop-bench.json"), help="JSON results")
    parser.add_argument("--plot", type=Path, default=Path("meprop-bench.png"), help="PNG (needs matplotlib)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def import_torch(wanted: bool) -> Any:
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextlib.contextmanager
def pools_for(contender: str, threads: int, torch: Any) -> Iterator[None]:
    """The thread pools a contender runs with (see the module docstring)."""
    if contender.startswith("meprop"):
        with thread_limits(threads, blas=1):
            yield
        return
    if torch is not None:
        torch.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def check_shapes(shapes: list[tuple[int, int]], k: int) -> None:
    for n_in, n_out in shapes:
        if k > n_out:
            raise ValueError(f"--k {k} is more than the {n_out} outputs of shape {n_in}x{n_out}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the benchmark; prints the table, writes ``args.out`` (and ``args.plot``); the results."""
    check_shapes(args.shapes, args.k)
    torch = import_torch(not args.no_torch)
    threads = args.threads or get_num_threads()
    set_num_threads(threads)
    dtype = np.float32 if args.dtype == "float32" else np.float64
    cfg = QUICK if args.quick else FULL
    info = machine_info(torch, __import__("meprop_native"), threads)
    print(
        f"meprop bench | {cpu_model()} | {threads} threads | {args.dtype} | torch "
        f"{info['torch'] or 'not installed' if not args.no_torch else 'left out'} | {'quick' if args.quick else 'full'}"
    )
    results = []
    started = time.perf_counter()
    for n_in, n_out in args.shapes:
        shape = Shape(n_in, n_out, args.batch, args.k, dtype)
        for case, build in CASES.items():
            calls = build(shape, np.random.default_rng(args.seed), torch)
            rounds: list[dict[str, Timing]] = []
            for r in range(args.rounds):
                order = list(calls)[:: -1 if r % 2 else 1]
                timings = {}
                for name in order:
                    idle_pause()
                    with pools_for(name, threads, torch):
                        timings[name] = measure(calls[name], cfg)
                rounds.append(timings)
            results.append(summarise(str(shape), case, rounds))
            print_case(results[-1])
    payload = {
        "version": __version__,
        "machine": info,
        "settings": {
            "shapes": [f"{a}x{b}" for a, b in args.shapes],
            "batch": args.batch,
            "k": args.k,
            "threads": threads,
            "dtype": args.dtype,
            "rounds": args.rounds,
            "timing": cfg.__dict__,
        },
        "seconds": time.perf_counter() - started,
        "results": results,
    }
    from ..train.atomic import write_json

    write_json(args.out, payload)
    plotted = plot(results, args.plot)
    print(f"wrote {args.out}" + (f" and {args.plot}" if plotted else " (install matplotlib for the PNG)"))
    return payload


def summarise(shape: str, case: str, rounds: list[dict[str, Timing]]) -> dict[str, Any]:
    """Per contender: the median of its round medians and meProp's speed-up over it (median of in-round ratios)."""
    contenders = {}
    for name in rounds[0]:
        ratios = [r[name].median_ns / r["meprop"].median_ns for r in rounds]
        contenders[name] = {
            "median_ns": statistics.median(r[name].median_ns for r in rounds),
            "round_medians_ns": [r[name].median_ns for r in rounds],
            "meprop_speedup": statistics.median(ratios),
        }
    return {"shape": shape, "case": case, "contenders": contenders}


def print_case(result: dict[str, Any]) -> None:
    print(f"\n{result['shape']}, {result['case']}")
    for name, c in result["contenders"].items():
        versus = "" if name == "meprop" else f"  meProp {c['meprop_speedup']:.2f}x faster"
        print(f"  {name:<14} {format_ns(c['median_ns']):>10}{versus}")


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    """Bars of each case's times, one group per case; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from ..train.atomic import write_with

    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(results)), 4))
    names = sorted({n for r in results for n in r["contenders"]}, key=lambda n: (n != "meprop", n))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j, r in enumerate(results) if name in r["contenders"]]
        ys = [r["contenders"][name]["median_ns"] / 1e3 for r in results if name in r["contenders"]]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(results))])
    ax.set_xticklabels([f"{r['case']}\n{r['shape']}" for r in results], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("median time per call (µs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_with(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)
    return True
