"""MNIST training steps, dense against meProp, in one process (the paper's Table 2 columns).

The reproduction (reproduce_mnist.py) times whole 20-epoch runs one after
another, and on a shared machine the load can change between them. This
benchmark puts the two side by side: the paper's 784-500-500-10 MLP at batch
10, the same real training images, dense (k = n, the same kernels) and meProp
(per-example top-k: Adam k=20, AdaGrad k=10, the paper's settings), each
trained with its own optimizer. A round runs a block of consecutive steps for
each contender in rotating order -- consecutive, so that each step finds the
caches as its own previous step left them, as in training -- and sums each
part of the step. The report is the median per-step time of each part over
the rounds and the dense/meProp ratios:

    python benchmarks/bench_mnist_step.py --data-dir ../data --optimizer adam --threads 1

``backprop`` is the linear layers' backward kernels (the paper's "backprop
time"), ``overall_backprop`` all of the backward, ``optimizer`` the update.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _timing import STEP_PARTS, cpu_model, training_step_times

import meprop_native as mp
from meprop_native.data import load_mnist
from meprop_native.nn import mlp, softmax_cross_entropy
from meprop_native.nn.init import INITS
from meprop_native.optim import AdaGrad, Adam
from meprop_native.tasks.mnist import DEFAULT_K, LAZY_ADAM, MNIST_MEMORY_DECAY
from meprop_native.train.atomic import write_json

# The paper's MNIST settings: (k, learning rate) per optimizer; the learning
# rates are also `meprop train mnist`'s, its k is --k's default.
SETTINGS = {"adam": (20, 1e-3), "adagrad": (10, 0.1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--optimizer", choices=sorted(SETTINGS), default="adam")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=400, help="consecutive steps per contender and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--init", choices=INITS, default="pytorch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help=f"meProp's k (default: `meprop train mnist`'s for the optimizer, {DEFAULT_K}; the paper: "
        "adam 20, adagrad 10)",
    )
    parser.add_argument(
        "--memory-decay",
        type=float,
        default=None,
        help=f"meProp's error feedback (default: `meprop train mnist`'s, {MNIST_MEMORY_DECAY}; "
        "0: the paper's plain meProp)",
    )
    parser.add_argument(
        "--lazy",
        action=argparse.BooleanOptionalAction,
        default=LAZY_ADAM,
        help=f"meProp under lazy Adam, only rows with gradient moving (default: `meprop train mnist`'s, {LAZY_ADAM})",
    )
    parser.add_argument(
        "--fused-update",
        action="store_true",
        help="also time meProp with fused updates (Linear(fused_update=True)): its dW rows are computed in "
        "the optimizer's pass, so they count under optimizer, not backprop",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mnist_step.json"))
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--rounds, --steps and --threads must be >= 1 and --warmup >= 0")

    splits = load_mnist(args.data_dir)
    x, y = splits.train_x, splits.train_y
    k = args.k if args.k is not None else DEFAULT_K[args.optimizer]
    lr = SETTINGS[args.optimizer][1]
    if args.memory_decay is None:
        args.memory_decay = MNIST_MEMORY_DECAY[args.optimizer]
    order = np.random.default_rng(0).permutation(len(y))
    contenders = {}
    runs = [("dense", None, False), ("meprop", k, False)] + ([("fused", k, True)] if args.fused_update else [])
    for name, kk, fused in runs:
        model = mlp([784, 500, 500, 10], k=kk, seed=0, init=args.init, selection={"memory_decay": args.memory_decay})
        for layer in model.linear_layers():
            layer.fused_update = fused
        opt = (
            Adam(model.parameters(), lr=lr, clip=5.0, lazy=args.lazy and kk is not None)
            if args.optimizer == "adam"
            else AdaGrad(model.parameters(), lr=lr, clip=5.0)
        )
        contenders[name] = (model, opt)

    batches = len(y) // 10
    if args.steps >= batches:
        parser.error(f"--steps must be below the {batches} batches of the training set")
    sums: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    mp.set_num_threads(args.threads)
    with mp.thread_limits(blas=1):
        for r in range(args.warmup + args.rounds):
            first = (r * args.steps) % (batches - args.steps)
            shift = r % len(contenders)
            names = list(contenders)[shift:] + list(contenders)[:shift]  # rotate who goes first
            for name in names:
                total = dict.fromkeys(STEP_PARTS, 0.0)
                for s in range(first, first + args.steps):
                    batch = order[s * 10 : (s + 1) * 10]
                    for part, t in training_step_times(
                        *contenders[name], x[batch], y[batch], softmax_cross_entropy
                    ).items():
                        total[part] += t
                if r >= args.warmup:
                    sums[name].append({part: t / args.steps for part, t in total.items()})
                time.sleep(0.1)  # let spinning worker threads idle before the other contender

    medians = {
        name: {part: statistics.median(s[part] for s in rounds) for part in STEP_PARTS} for name, rounds in sums.items()
    }
    ratios = {part: medians["dense"][part] / medians["meprop"][part] for part in STEP_PARTS}
    others = {
        name: {part: medians["dense"][part] / medians[name][part] for part in STEP_PARTS}
        for name in medians
        if name not in ("dense", "meprop")
    }
    print(
        f"CPU: {cpu_model()}; {args.rounds} rounds x {args.steps} steps, batch 10, {args.optimizer} "
        f"(meProp k={k}, memory decay {args.memory_decay}{', lazy' if args.lazy and args.optimizer == 'adam' else ''}), "
        f"init {args.init}, "
        f"threads {args.threads}; "
        "median microseconds per step"
    )
    print(f"{'':8}" + "".join(f"{part:>18}" for part in STEP_PARTS))
    for name, m in medians.items():
        print(f"{name:8}" + "".join(f"{1e6 * m[part]:18.1f}" for part in STEP_PARTS))
    print(f"{'ratio':8}" + "".join(f"{ratios[part]:17.2f}x" for part in STEP_PARTS))
    for name, r in others.items():
        print(f"{'ratio ' + name:8}" + "".join(f"{r[part]:17.2f}x" for part in STEP_PARTS))
    per_round = [d["backprop"] / m["backprop"] for d, m in zip(sums["dense"], sums["meprop"])]
    print(
        f"backprop ratio per round: min {min(per_round):.2f}x, median {statistics.median(per_round):.2f}x, "
        f"max {max(per_round):.2f}x"
    )
    write_json(
        args.out,
        {
            "args": {key: str(v) for key, v in vars(args).items()},
            "cpu_model": cpu_model(),
            "medians": medians,
            "ratios": ratios,
            "other_ratios": others,
            "per_round": sums,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
