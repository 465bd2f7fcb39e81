"""One parser training step (10,000 transitions), dense against meProp k=20, in one process.

The reproduction runs (reproduce_parse.py) time whole runs one after another;
on a shared machine the load can change between them. This benchmark puts the
two side by side instead: the same real UD English EWT training batches, the
same model (48 x 50 -> 500 -> 500 -> 73, tanh) and optimizer, dense, meProp
(per-example top-k, the paper's) and unified top-k steps in rotating order,
each round on a different batch. It reports the
median per-step time of each part of the step (the paper's Table 2 columns)
and the ratios.

    python benchmarks/bench_parse_step.py --data-dir ../data --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _timing import STEP_PARTS, training_step_times

import meprop_native as mp
from meprop_native.data.ud import load_ud_ewt
from meprop_native.nn import softmax_cross_entropy
from meprop_native.optim import OPTIMIZERS
from meprop_native.tasks.parse.arc_standard import num_transitions
from meprop_native.tasks.parse.data import prepare
from meprop_native.tasks.parse.model import ParserModel
from meprop_native.tasks.parse.task import DEFAULT_LR
from meprop_native.train.atomic import write_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--optimizer", choices=["adagrad", "adam"], default="adagrad")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--batch-size", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/parse_step.json"))
    args = parser.parse_args()

    splits = load_ud_ewt(args.data_dir)
    data = prepare(splits.train, splits.dev[:1], splits.test[:1])
    classes = num_transitions(data.vocab.num_labels)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.train))
    contenders = {}
    # meprop: the paper's per-example top-k; unified: one top-k set per mini-batch (shown for comparison).
    for name, k, mode in (("dense", None, "per_example"), ("meprop", 20, "per_example"), ("unified", 20, "unified")):
        model = ParserModel(data.vocab.size, classes, k=k, k_out=k, mode=mode, seed=0)
        opt = OPTIMIZERS[args.optimizer](model.parameters(), lr=DEFAULT_LR[args.optimizer], clip=5.0)
        contenders[name] = (model, opt)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    mp.set_num_threads(args.threads)
    with mp.thread_limits(blas=1):
        for r in range(args.warmup + args.rounds):
            start = (r * args.batch_size) % (len(order) - args.batch_size)
            x, y = data.train.batch(order[start : start + args.batch_size])
            names = list(contenders)[r % 3 :] + list(contenders)[: r % 3]  # rotate who goes first
            for name in names:
                t = training_step_times(*contenders[name], x, y, softmax_cross_entropy)
                if r >= args.warmup:
                    samples[name].append(t)
                time.sleep(0.25)  # let spinning worker threads idle before the other contender

    medians = {
        name: {part: statistics.median(s[part] for s in runs) for part in STEP_PARTS} for name, runs in samples.items()
    }
    ratios = {
        name: {part: medians["dense"][part] / medians[name][part] for part in STEP_PARTS}
        for name in ("meprop", "unified")
    }
    print(
        f"{args.rounds} rounds, batch {args.batch_size}, {args.optimizer}, threads {args.threads}; "
        "median seconds per step"
    )
    print(f"{'':8}" + "".join(f"{part:>18}" for part in STEP_PARTS))
    for name, m in medians.items():
        print(f"{name:8}" + "".join(f"{m[part]:18.4f}" for part in STEP_PARTS))
    for name, r in ratios.items():
        print(f"{'x ' + name:8}" + "".join(f"{r[part]:17.1f}x" for part in STEP_PARTS))
    write_json(
        args.out,
        {"args": {k: str(v) for k, v in vars(args).items()}, "medians": medians, "ratios": ratios, "samples": samples},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
