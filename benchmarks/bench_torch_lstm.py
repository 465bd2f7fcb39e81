"""Backward of meprop_native.torch.LSTM against torch.nn.LSTM, through autograd.

Usage::

    python benchmarks/bench_torch_lstm.py --threads 1     # ~40 s
    python benchmarks/bench_torch_lstm.py --quick         # shorter, noisier

What is measured
----------------
The paper's POS tagger layer by default: input 190, hidden 500, one sentence
of T = 20 steps (batch 1), k = 5 of the 4h = 2000 gate rows per step,
float32. Every contender has the same weights:

* ``torch``: ``torch.nn.LSTM`` (its CPU forward records the unrolled cells;
  autograd runs their backward, dense);
* ``meprop k=5`` (the headline row) and ``meprop dense`` (k = None, the same
  kernels): ``meprop_native.torch.LSTM``.

Backward: ``loss.backward(retain_graph=True)`` on graphs built before the
timing (loss = sum(R * output), R random), so only the backward is timed; the
parameters' and the input's ``.grad`` are reset to ``None`` first, as
``optimizer.zero_grad()`` does. The input requires grad (dx is computed, as
for an embedding layer below). The ``step`` rows time forward + backward.

How it is timed (see ``_timing.py``): each contender in its own block with
warm-up, inputs rotating over ``--pool`` different (x, R) pairs, medians of at
least 20 samples and 0.2 s, pauses between blocks; the whole set runs
``--rounds`` times in alternating order, a ratio is taken within each round
and the median over rounds is reported. torch and the kernels get the same
thread count (``--threads``). Before timing, the dense meprop gradients are
checked against torch.nn.LSTM's and the k=5 ones against
``meprop_native.nn.LSTM`` (the NumPy layer over the same kernels; the tests
check both against independent references).

No bar: this is for information. Output: a table and JSON written atomically
(default ``benchmarks/results/torch_lstm.json``).
"""

from __future__ import annotations

import argparse
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
    results_path,
    torch_missing,
)

torch, meprop = import_torch_then_meprop()

DEFAULT_OUT = results_path("torch_lstm.json")


def contenders(k: int) -> tuple[tuple[str, int | str | None], ...]:
    """(row name, k for meprop or "torch")."""
    return (("torch", "torch"), (f"meprop k={k}", k), ("meprop dense", None))


def make_layer(kind: int | str | None, template: Any) -> Any:
    """torch.nn.LSTM or meprop's, with the template's weights."""
    import meprop_native.torch as mt

    n_in, h, dtype = template.input_size, template.hidden_size, template.weight_hh_l0.dtype
    layer = torch.nn.LSTM(n_in, h, dtype=dtype) if kind == "torch" else mt.LSTM(n_in, h, dtype=dtype, k=kind)
    layer.load_state_dict(template.state_dict())
    return layer


def loss_of(layer: Any, x: Any, R: Any) -> Any:
    return (layer(x)[0] * R).sum()


def reset(layer: Any, x: Any) -> None:
    for p in layer.parameters():
        p.grad = None
    x.grad = None


def backward_calls(layer: Any, xs: list[Any], Rs: list[Any]) -> list[Callable[[], None]]:
    """One call per pooled input: reset the grads, back-propagate a prebuilt graph."""
    losses = [loss_of(layer, x, R) for x, R in zip(xs, Rs)]

    def call(x: Any, loss: Any) -> None:
        reset(layer, x)
        loss.backward(retain_graph=True)

    return [lambda x=x, loss=loss: call(x, loss) for x, loss in zip(xs, losses)]


def step_calls(layer: Any, xs: list[Any], Rs: list[Any]) -> list[Callable[[], None]]:
    """One call per pooled input: forward and backward."""

    def call(x: Any, R: Any) -> None:
        reset(layer, x)
        loss_of(layer, x, R).backward()

    return [lambda x=x, R=R: call(x, R) for x, R in zip(xs, Rs)]


def gradients(layer: Any, x: Any, R: Any) -> list[np.ndarray]:
    x = x.detach().clone().requires_grad_()
    loss_of(layer, x, R).backward()
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    return [g.double().numpy() for g in grads]


def numpy_layer_gradients(template: Any, k: int, x: Any, R: Any) -> list[np.ndarray]:
    """The same gradients from meprop_native.nn.LSTM (one bias: both torch biases get its gradient)."""
    from meprop_native.nn import LSTM

    dtype = template.weight_hh_l0.detach().numpy().dtype
    layer = LSTM(template.input_size, template.hidden_size, k=k, dtype=dtype)
    state = {name: p.detach().numpy() for name, p in template.named_parameters()}
    layer.weight_ih.value[...] = state["weight_ih_l0"]
    layer.weight_hh.value[...] = state["weight_hh_l0"]
    layer.bias.value[...] = state["bias_ih_l0"] + state["bias_hh_l0"]
    layer.forward(x.detach().numpy()[:, 0])
    dx = layer.backward(R.numpy()[:, 0])
    db = layer.bias.dense_grad()
    return [
        a.astype(np.float64) for a in (dx[:, None], layer.weight_ih.dense_grad(), layer.weight_hh.dense_grad(), db, db)
    ]


def max_relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(g - w)) / max(1.0, float(np.max(np.abs(w))))) for g, w in zip(got, want))


def run_round(
    layers: dict[str, Any], xs: list[Any], Rs: list[Any], cfg: TimingConfig, reverse: bool, k: int
) -> dict[str, dict[str, Timing]]:
    """Every contender's backward and step, each in its own block."""
    order = [name for name, _ in contenders(k)][:: -1 if reverse else 1]
    phases = {
        "backward": lambda name: backward_calls(layers[name], xs, Rs),
        "step": lambda name: step_calls(layers[name], xs, Rs),
    }
    return timed_round(order, phases, cfg)


def summarise(rounds: list[dict[str, dict[str, Timing]]], k: int) -> list[dict[str, Any]]:
    return round_rows(rounds, {name: "torch" for name, _ in contenders(k)}, ("backward", "step"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for torch and the kernels (default 1)")
    p.add_argument("--steps", type=int, default=20, help="sequence length T")
    p.add_argument("--n-in", type=int, default=190)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--k", type=int, default=5)
    add_round_arguments(p, DEFAULT_OUT, "(x, R)")
    args = p.parse_args(argv)
    if min(args.threads, args.pool, args.rounds, args.steps, args.n_in, args.hidden, args.k) < 1:
        p.error("--threads, --pool, --rounds, --steps, --n-in, --hidden and --k must be >= 1")
    if args.k >= 4 * args.hidden:
        p.error("--k must be below 4 x --hidden (k >= 4h is the dense row)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if torch_missing(torch):
        return 2
    cfg, dtype, info = start_rounds(torch, meprop, args)
    print(
        f"meprop-native {info['meprop_native']} | torch {info['torch']} | {info['cpu_count']} CPUs | "
        f"torch {torch.get_num_threads()} / meprop {meprop.get_num_threads()} threads | {args.dtype} | "
        f"input {args.n_in}, h={args.hidden}, T={args.steps}, batch 1, k={args.k} | {'quick' if args.quick else 'full'}"
    )

    torch.manual_seed(args.seed)
    template = torch.nn.LSTM(args.n_in, args.hidden, dtype=dtype)
    gen = torch.Generator().manual_seed(args.seed)
    xs = [
        (0.3 * torch.randn(args.steps, 1, args.n_in, generator=gen, dtype=dtype)).requires_grad_()
        for _ in range(args.pool)
    ]
    Rs = [0.05 * torch.randn(args.steps, 1, args.hidden, generator=gen, dtype=dtype) for _ in range(args.pool)]
    layers = {name: make_layer(kind, template) for name, kind in contenders(args.k)}

    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch_grads = gradients(layers["torch"], xs[0], Rs[0])
    errors = {
        "meprop dense": max_relative_error(gradients(layers["meprop dense"], xs[0], Rs[0]), torch_grads),
        f"meprop k={args.k}": max_relative_error(
            gradients(layers[f"meprop k={args.k}"], xs[0], Rs[0]), numpy_layer_gradients(template, args.k, xs[0], Rs[0])
        ),
    }
    checks = {name: err <= tol for name, err in errors.items()}

    started = time.perf_counter()
    rounds = [run_round(layers, xs, Rs, cfg, reverse=i % 2 == 1, k=args.k) for i in range(args.rounds)]
    elapsed = time.perf_counter() - started
    rows = summarise(rounds, args.k)

    print_round_rows(rows, checks, width=16)
    head = next(r for r in rows if r["contender"] == f"meprop k={args.k}" and r["phase"] == "backward")
    print(
        f"\nmeprop k={args.k} backward {format_ns(head['median_ns'])}: {head['speedup_vs_torch']:.2f}x "
        f"torch.nn.LSTM's (per round: {', '.join(f'{r:.2f}x' for r in head['round_speedups'])})"
    )
    print(f"measured in {elapsed:.1f} s")

    return write_results(args, info, cfg, elapsed, rows, checks, check_errors=errors)


if __name__ == "__main__":
    sys.exit(main())
