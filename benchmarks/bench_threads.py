"""The thread policy: a whole training step at the default thread count against one thread.

Every kernel picks its own thread count from its work (few threads for small
products, all of them for large ones), so running with the default count (the
cores, or OMP_NUM_THREADS) must never be slower than running with one. This
benchmark checks it where it matters, on the paper's MNIST MLP
(784-500-500-10, Adam, `meprop train mnist`'s meProp setting, and dense) at
batch 1, 10, 32, 128 and 1000: each contender (mode x thread count) has its own
model and optimizer; a round runs a block of consecutive steps of each, in
rotating order, and the report is the median time per step over the rounds:

    python benchmarks/bench_threads.py

A "default / 1 thread" above 1.05 is a loss, flagged in the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _timing import cpu_model, training_step_times

import meprop_native as mp
from meprop_native.nn import mlp, softmax_cross_entropy
from meprop_native.optim import Adam
from meprop_native.tasks.mnist import DEFAULT_K, LAZY_ADAM, MNIST_MEMORY_DECAY
from meprop_native.train.atomic import write_json

BATCHES = (1, 10, 32, 128, 1000)
LOSS_LIMIT = 1.05  # the default may be at most 5 % slower than one thread


def time_batch(batch: int, threads: list[int], rounds: int, seconds: float) -> dict[str, dict[int, float]]:
    """Median seconds per whole step for each (mode, thread count)."""
    rng = np.random.default_rng(batch)
    x = rng.random((max(4 * batch, 2000), 784), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    contenders = {}
    for mode, k in (("meprop", DEFAULT_K["adam"]), ("dense", None)):
        for t in threads:
            model = mlp([784, 500, 500, 10], k=k, seed=0, selection={"memory_decay": MNIST_MEMORY_DECAY["adam"]})
            lazy = LAZY_ADAM and k is not None
            contenders[(mode, t)] = (model, Adam(model.parameters(), lr=1e-3, clip=5.0, lazy=lazy))
    # Steps per block: about `seconds` of the slowest contender.
    mp.set_num_threads(1)
    probe = training_step_times(*contenders[("dense", threads[0])], x[:batch], y[:batch], softmax_cross_entropy)
    steps = max(3, int(seconds / max(probe["total"], 1e-6)))
    times: dict[tuple[str, int], list[float]] = {key: [] for key in contenders}
    keys = list(contenders)
    for r in range(rounds + 1):  # round 0 warms up
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            mp.set_num_threads(key[1])
            start = (r * steps * batch) % (len(x) - batch)
            total = 0.0
            for s in range(steps):
                lo = (start + s * batch) % (len(x) - batch)
                total += training_step_times(
                    *contenders[key], x[lo : lo + batch], y[lo : lo + batch], softmax_cross_entropy
                )["total"]
            if r > 0:
                times[key].append(total / steps)
            time.sleep(0.05)  # let the other count's spinning workers idle
    out: dict[str, dict[int, float]] = {}
    for (mode, t), values in times.items():
        out.setdefault(mode, {})[t] = statistics.median(values)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.15, help="length of one block of steps (default 0.15 s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/threads.json"))
    args = parser.parse_args(argv)
    default = mp.get_num_threads()
    threads = [1, default] if default > 1 else [1]
    print(
        f"CPU: {cpu_model()}; default threads {default}; whole Adam step of 784-500-500-10, meProp k="
        f"{DEFAULT_K['adam']} (decay {MNIST_MEMORY_DECAY['adam']}) and dense; median over {args.rounds} rounds"
    )
    print("| batch | mode | 1 thread (µs) | default (µs) | default / 1 thread |")
    print("|---|---|---|---|---|")
    results, losses = {}, []
    with mp.thread_limits(blas=1):
        for batch in args.batches:
            medians = time_batch(batch, threads, args.rounds, args.seconds)
            results[batch] = medians
            for mode in ("meprop", "dense"):
                one, many = medians[mode][1], medians[mode][default]
                ratio = many / one
                flag = "  **slower**" if ratio > LOSS_LIMIT else ""
                if ratio > LOSS_LIMIT:
                    losses.append((batch, mode, ratio))
                print(f"| {batch} | {mode} | {1e6 * one:.0f} | {1e6 * many:.0f} | {ratio:.2f}{flag} |")
    mp.set_num_threads(default)
    verdict = "never slower" if not losses else f"slower in {len(losses)} cases"
    print(f"default threads vs one: {verdict} (limit {LOSS_LIMIT:.2f})")
    write_json(
        args.out,
        {"cpu_model": cpu_model(), "default_threads": default, "results": results, "losses": losses},
    )
    return 0 if not losses else 1


if __name__ == "__main__":
    sys.exit(main())
