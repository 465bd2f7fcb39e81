"""Backward of meprop_native.torch.Linear against torch.nn.Linear, through autograd.

Usage::

    python benchmarks/bench_torch_linear.py --threads 1     # ~30 s
    python benchmarks/bench_torch_linear.py --quick         # shorter, noisier

What is measured
----------------
One layer of the paper's MNIST MLP by default: 784 inputs, 500 outputs,
batch 32, k = 20, float32. Every contender is a layer with the same weights:

* ``torch``: ``torch.nn.Linear`` (autograd's ``AddmmBackward``: two GEMMs and
  a column sum);
* ``meprop per_example`` (the bar), ``meprop unified`` and ``meprop dense``
  (k = n through the same kernels): ``meprop_native.torch.Linear``.

Backward: ``y.backward(dy, retain_graph=True)`` on graphs built before the
timing, so only the backward is timed; the layer's and the input's ``.grad``
are reset to ``None`` first, as ``optimizer.zero_grad()`` does, so each call
allocates and fills fresh gradients as in training. The input requires grad
(a hidden layer: dx is computed); the ``first layer`` rows repeat this with an
input that does not (no dx). The ``step`` rows time forward + backward of the
layer together, for information.

How it is timed (see ``_timing.py``): each contender in its own block with
warm-up, inputs rotating over ``--pool`` different (x, dy) pairs, medians of
at least 20 samples and 0.2 s, 0.25 s pauses between blocks. The whole set of
blocks runs ``--rounds`` times in alternating order, so that a change of
machine load hits every contender alike; a ratio is taken within each round
and the median over rounds is reported. torch and the kernels get the same
thread count (``--threads``; ``--meprop-threads`` sets the kernels' alone, to
study the thread policy). Before timing, each meprop gradient is checked
against a NumPy reference (dense products on dy masked to its top-k).

Bar: the per_example backward is at least 2x faster than torch.nn.Linear's.
Output: a table, the bar with PASS/FAIL, and JSON written atomically (default
``benchmarks/results/torch_linear.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from _rounds import add_round_arguments, print_round_rows, round_rows, start_rounds, timed_round, write_results
from _timing import (
    Timing,
    TimingConfig,
    format_ns,
    import_torch_then_meprop,
    parallel_capacity,
    results_path,
    torch_missing,
)

torch, meprop = import_torch_then_meprop()

DEFAULT_OUT = results_path("torch_linear.json")
BAR = 2.0  # per_example backward vs torch.nn.Linear's
CAPACITY_OK = 0.8  # as bench_kernels.py: below this, multi-threaded medians are unreliable
# (row name, layer kind: "torch" or a meprop mode, whether the input needs a gradient)
CONTENDERS: tuple[tuple[str, str, bool], ...] = (
    ("torch", "torch", True),
    ("meprop per_example", "per_example", True),
    ("meprop unified", "unified", True),
    ("meprop dense", "dense", True),
    ("torch, first layer", "torch", False),
    ("meprop per_example, first layer", "per_example", False),
)
BAR_ROW, BAR_BASE = "meprop per_example", "torch"


def make_layer(kind: str, k: int, template: Any) -> Any:
    """A layer with the template's weights: torch.nn.Linear or meprop's in the given mode."""
    import meprop_native.torch as mt

    n_out, n_in = template.weight.shape
    if kind == "torch":
        layer = torch.nn.Linear(n_in, n_out, dtype=template.weight.dtype)
    else:
        layer = mt.Linear(n_in, n_out, k=None if kind == "dense" else k, mode=kind, dtype=template.weight.dtype)
    layer.load_state_dict(template.state_dict())
    return layer


def backward_calls(layer: Any, xs: list[Any], dys: list[Any]) -> list[Callable[[], None]]:
    """One call per pooled input: reset the grads, back-propagate a prebuilt graph."""
    graphs = [layer(x) for x in xs]

    def call(x: Any, y: Any, dy: Any) -> None:
        layer.weight.grad = None
        layer.bias.grad = None
        x.grad = None
        y.backward(dy, retain_graph=True)

    return [lambda x=x, y=y, dy=dy: call(x, y, dy) for x, y, dy in zip(xs, graphs, dys)]


def step_calls(layer: Any, xs: list[Any], dys: list[Any]) -> list[Callable[[], None]]:
    """One call per pooled input: forward and backward of the layer."""

    def call(x: Any, dy: Any) -> None:
        layer.weight.grad = None
        layer.bias.grad = None
        x.grad = None
        layer(x).backward(dy)

    return [lambda x=x, dy=dy: call(x, dy) for x, dy in zip(xs, dys)]


def reference_ok(layer: Any, kind: str, k: int, x: Any, dy: Any) -> bool:
    """The layer's gradients against dense NumPy products on the masked dy (float64)."""
    x = x.detach().clone().requires_grad_()
    layer.weight.grad = layer.bias.grad = None
    layer(x).backward(dy)
    dy64, x64 = dy.double().numpy(), x.detach().double().numpy()
    W64 = layer.weight.detach().double().numpy()
    mask = np.ones(dy64.shape, dtype=bool)
    if kind == "per_example":
        mask[:] = False
        np.put_along_axis(mask, np.argpartition(np.abs(dy64), -k, axis=1)[:, -k:], True, axis=1)
    elif kind == "unified":
        mask[:] = False
        mask[:, np.argpartition(np.abs(dy64).sum(0), -k)[-k:]] = True
    masked = np.where(mask, dy64, 0.0)
    want = (masked @ W64, masked.T @ x64, dy64.sum(0))
    got = (x.grad, layer.weight.grad, layer.bias.grad)
    tol = 1e-4 if dy.dtype == torch.float32 else 1e-10
    return all(np.max(np.abs(g.double().numpy() - w)) <= tol * max(1.0, np.max(np.abs(w))) for g, w in zip(got, want))


def run_round(
    layers: dict[str, Any], pools: dict[bool, tuple[list[Any], list[Any]]], cfg: TimingConfig, reverse: bool
) -> dict[str, dict[str, Timing]]:
    """Every contender's backward and step, each in its own block."""
    needs_dx = {name: flag for name, _, flag in CONTENDERS}
    order = [name for name, _, _ in CONTENDERS][:: -1 if reverse else 1]
    phases = {
        "backward": lambda name: backward_calls(layers[name], *pools[needs_dx[name]]),
        "step": lambda name: step_calls(layers[name], *pools[needs_dx[name]]),
    }
    return timed_round(order, phases, cfg)


def summarise(rounds: list[dict[str, dict[str, Timing]]]) -> list[dict[str, Any]]:
    """Per contender and phase: median over rounds of the medians, and of the in-round ratios to torch."""
    baselines = {name: "torch" if needs_dx else "torch, first layer" for name, _, needs_dx in CONTENDERS}
    return round_rows(rounds, baselines, ("backward", "step"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and the kernels")
    p.add_argument("--meprop-threads", type=int, default=None, help="threads for the kernels alone (default --threads)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-in", type=int, default=784)
    p.add_argument("--n-out", type=int, default=500)
    p.add_argument("--k", type=int, default=20)
    add_round_arguments(p, DEFAULT_OUT, "(x, dy)")
    args = p.parse_args(argv)
    if min(args.threads, args.pool, args.rounds, args.batch, args.k) < 1:
        p.error("--threads, --pool, --rounds, --batch and --k must be >= 1")
    if args.meprop_threads is not None and args.meprop_threads < 1:
        p.error("--meprop-threads must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if torch_missing(torch):
        return 2
    from threadpoolctl import threadpool_limits

    cfg, dtype, info = start_rounds(torch, meprop, args, args.meprop_threads)
    limiter = threadpool_limits(limits=args.threads, user_api="blas")  # NumPy's BLAS is idle here anyway
    print(
        f"meprop-native {info['meprop_native']} | torch {info['torch']} | {info['cpu_count']} CPUs | "
        f"torch {torch.get_num_threads()} / meprop {meprop.get_num_threads()} threads | {args.dtype} | "
        f"{args.n_in}x{args.n_out}, B={args.batch}, k={args.k} | {'quick' if args.quick else 'full'}"
    )
    capacity = [parallel_capacity(args.threads)]
    print(f"parallel capacity: {capacity[0]:.2f} of {args.threads} spinning processes really ran")

    gen = torch.Generator().manual_seed(args.seed)
    template = torch.nn.Linear(args.n_in, args.n_out, dtype=dtype)
    with torch.no_grad():
        template.weight.copy_(torch.randn(args.n_out, args.n_in, generator=gen, dtype=dtype) / args.n_in**0.5)
    pools: dict[bool, tuple[list[Any], list[Any]]] = {}
    for needs_dx in (True, False):
        xs = [
            torch.randn(args.batch, args.n_in, generator=gen, dtype=dtype).requires_grad_(needs_dx)
            for _ in range(args.pool)
        ]
        dys = [torch.randn(args.batch, args.n_out, generator=gen, dtype=dtype) for _ in range(args.pool)]
        pools[needs_dx] = (xs, dys)
    layers = {name: make_layer(kind, args.k, template) for name, kind, _ in CONTENDERS}
    checks = {
        name: reference_ok(layers[name], kind, args.k, pools[True][0][0], pools[True][1][0])
        for name, kind, _ in CONTENDERS
        if kind != "torch"
    }

    started = time.perf_counter()
    rounds = [run_round(layers, pools, cfg, reverse=i % 2 == 1) for i in range(args.rounds)]
    elapsed = time.perf_counter() - started
    limiter.restore_original_limits()
    capacity.append(parallel_capacity(args.threads))
    reliable = min(capacity) >= CAPACITY_OK * args.threads

    rows = summarise(rounds)
    print_round_rows(rows, checks, width=32)
    bar_row = next(r for r in rows if r["contender"] == BAR_ROW and r["phase"] == "backward")
    ratio = bar_row["speedup_vs_torch"]
    status = "PASS" if ratio >= BAR and checks[BAR_ROW] else "FAIL"
    print(
        f"\n{status}: {BAR_ROW} backward {format_ns(bar_row['median_ns'])} is {ratio:.2f}x faster than "
        f"torch.nn.Linear's (need >= {BAR:g}x; per round: "
        f"{', '.join(f'{r:.2f}x' for r in bar_row['round_speedups'])})"
    )
    if not reliable:
        print(
            f"NOTE: parallel capacity {min(capacity):.2f} of {args.threads}: the host did not run all threads "
            "all the time (other load or throttling); medians include scheduler stalls and the verdict is "
            "unreliable (rerun on a quiet machine)"
        )
    print(f"measured in {elapsed:.1f} s")

    info["parallel_capacity"] = capacity
    bar = {
        "name": f"{BAR_ROW} backward vs torch.nn.Linear",
        "threshold": BAR,
        "ratio": ratio,
        "status": status,
        "reliable": reliable,
    }
    return write_results(args, info, cfg, elapsed, rows, checks, bar=bar)


if __name__ == "__main__":
    sys.exit(main())
