"""A whole PyTorch training step of an MLP: torch.nn.Linear + torch.optim.Adam
against the meProp drop-ins, with the optimizer as docs/torch.md recommends.

Usage::

    python benchmarks/bench_torch_step.py                       # both bar shapes, ~2 min
    python benchmarks/bench_torch_step.py --sizes 784 500 500 10 --quick

What is measured
----------------
One step of the loop a user writes (``opt.zero_grad(); cross_entropy(model(x),
y).backward(); opt.step()``) for an MLP ``--sizes`` with ReLU, the hidden
layers swapped, the output layer ``torch.nn.Linear`` in every contender:

* ``torch``: ``torch.nn.Linear`` layers, ``torch.optim.Adam`` (the baseline);
* ``meprop, torch.optim.Adam``: ``mt.Linear(k, memory_decay=1.0)``, dense
  weight gradients, ``torch.optim.Adam`` (the drop-in alone);
* ``meprop sparse, lazy Adam`` (the recommended loop):
  ``mt.Linear(k, memory_decay=1.0, sparse_grad=True)`` and
  ``meprop_native.torch.optim.Adam(lazy=True)``: row-sparse weight gradients,
  only the touched rows move;
* ``meprop sparse, every-row Adam``: the same with ``lazy=False`` (every row
  moves, as torch.optim.Adam, with the deferred decay).

Each contender is a model with the same initial weights and its own
optimizer; a step's inputs rotate over ``--pool`` batches (see ``_timing.py``
and ``_rounds.py``: blocks per contender, alternating order over
``--rounds``, medians, ratios within a round). torch and the kernels share
``--threads`` (default: all cores).

Bars (issue: the whole step): 784-1024-1024-10 at batch 32 >= 2x faster than
the baseline with the recommended loop; 784-500-500-10 at batch 32 >= 1.3x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _rounds import add_round_arguments, print_round_rows, round_rows, start_rounds, timed_round, write_results
from _timing import format_ns, import_torch_then_meprop, results_path, torch_missing

torch, meprop = import_torch_then_meprop()

DEFAULT_OUT = results_path("torch_step.json")
# The bar per MLP: the recommended loop's step against the baseline's.
BARS = {(784, 1024, 1024, 10): 2.0, (784, 500, 500, 10): 1.3}
RECOMMENDED = "meprop sparse, lazy Adam"
CONTENDERS = ("torch", "meprop, torch.optim.Adam", RECOMMENDED, "meprop sparse, every-row Adam")


def mlp(kind: str, sizes: Sequence[int], k: int, dtype: Any) -> Any:
    """The contender's MLP with ReLU: meProp hidden layers unless ``kind`` is "torch";
    the output layer is torch.nn.Linear in every contender."""
    import meprop_native.torch as mt

    layers: list[Any] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        if kind == "torch" or not hidden:
            layers.append(torch.nn.Linear(n_in, n_out, dtype=dtype))
        else:
            sparse = kind.startswith("meprop sparse")
            layers.append(mt.Linear(n_in, n_out, k=k, memory_decay=1.0, sparse_grad=sparse, dtype=dtype))
        if hidden:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def make_model(kind: str, sizes: Sequence[int], k: int, template: Any) -> tuple[Any, Any]:
    """(model, optimizer) of a contender, with the template's weights."""
    import meprop_native.torch as mt

    model = mlp(kind, sizes, k, template[0].weight.dtype)
    model.load_state_dict(template.state_dict(), strict=False)
    if kind in ("torch", "meprop, torch.optim.Adam"):
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, mt.optim.Adam(model.parameters(), lr=1e-3, lazy=kind == RECOMMENDED)


def step_calls(model: Any, opt: Any, batches: list[tuple[Any, Any]]) -> list[Callable[[], None]]:
    def call(x: Any, y: Any) -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return [lambda x=x, y=y: call(x, y) for x, y in batches]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and the kernels")
    p.add_argument("--sizes", type=int, nargs="+", action="append", default=None, help="an MLP (repeatable)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--k", type=int, default=20)
    add_round_arguments(p, DEFAULT_OUT, "(x, y)")
    args = p.parse_args(argv)
    args.sizes = args.sizes or [list(s) for s in BARS]
    if min(args.threads, args.pool, args.rounds, args.batch, args.k) < 1:
        p.error("--threads, --pool, --rounds, --batch and --k must be >= 1")
    if any(len(s) < 3 or min(s) < 1 for s in args.sizes):
        p.error("--sizes needs an input, at least one hidden and an output size, each >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if torch_missing(torch):
        return 2
    from threadpoolctl import threadpool_limits

    cfg, dtype, info = start_rounds(torch, meprop, args)
    limiter = threadpool_limits(limits=1, user_api="blas")  # NumPy's BLAS: idle, never spinning
    print(
        f"meprop-native {info['meprop_native']} | torch {info['torch']} | {info['cpu_model']} | "
        f"torch {torch.get_num_threads()} / meprop {meprop.get_num_threads()} threads | {args.dtype} | "
        f"B={args.batch}, k={args.k} | {'quick' if args.quick else 'full'}"
    )
    started = time.perf_counter()
    all_rows, bars = [], []
    for sizes in args.sizes:
        gen = torch.Generator().manual_seed(args.seed)
        torch.manual_seed(args.seed)
        template = mlp("torch", sizes, args.k, dtype)  # the weights every contender copies
        contenders = {name: make_model(name, sizes, args.k, template) for name in CONTENDERS}
        batches = [
            (
                torch.randn(args.batch, sizes[0], generator=gen, dtype=dtype),
                torch.randint(0, sizes[-1], (args.batch,), generator=gen),
            )
            for _ in range(args.pool)
        ]
        phases = {"step": lambda name, c=contenders, b=batches: step_calls(*c[name], b)}
        rounds = [timed_round(CONTENDERS[:: -1 if i % 2 else 1], phases, cfg) for i in range(args.rounds)]
        rows = round_rows(rounds, dict.fromkeys(CONTENDERS, "torch"), ("step",))
        label = "-".join(map(str, sizes))
        for r in rows:
            r["sizes"] = sizes
        print(f"\nMLP {label}, batch {args.batch}")
        print_round_rows(rows, {}, width=32)
        ratio = next(r["speedup_vs_torch"] for r in rows if r["contender"] == RECOMMENDED)
        threshold = BARS.get(tuple(sizes))
        if threshold is not None and args.batch == 32:
            status = "PASS" if ratio >= threshold else "FAIL"
            step = next(r["median_ns"] for r in rows if r["contender"] == RECOMMENDED)
            print(
                f"{status}: {RECOMMENDED} step {format_ns(step)} is {ratio:.2f}x the baseline's speed (need >= {threshold:g}x)"
            )
            bars.append({"sizes": sizes, "threshold": threshold, "ratio": ratio, "status": status})
        all_rows += rows
    elapsed = time.perf_counter() - started
    limiter.restore_original_limits()
    print(f"measured in {elapsed:.1f} s")
    return write_results(args, info, cfg, elapsed, all_rows, {}, bars=bars)


if __name__ == "__main__":
    sys.exit(main())
