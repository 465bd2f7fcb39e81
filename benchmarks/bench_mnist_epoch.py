"""One MNIST training epoch: meprop-native (meProp and dense) against PyTorch, in one process.

The same MLP (784-500-500-10, ReLU), the same mini-batch size and Adam, the
same thread count for everyone. PyTorch trains with nn.Linear, autograd and
torch.optim.Adam; meprop-native with its own layers and fused Adam. Each
contender runs the same number of steps over the same shuffled batches, in
alternating rounds so that machine noise hits all of them alike; the median
per-step time of the rounds is reported, and the epoch time is that times the
number of steps in an epoch (55,000 / batch).

    python benchmarks/bench_mnist_epoch.py --data-dir ../data
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

try:  # import torch before meprop_native so its OpenMP keeps its own defaults
    import torch
except ImportError:  # the comparison needs it; the meprop rows still run
    torch = None

import meprop_native as mp
from meprop_native.data import load_mnist
from meprop_native.nn import mlp, softmax_cross_entropy
from meprop_native.optim import Adam


def meprop_trainer(k: int | None, seed: int):
    model = mlp([784, 500, 500, 10], k=k, seed=seed)
    opt = Adam(model.parameters())

    def step(x: np.ndarray, y: np.ndarray) -> None:
        _, grad = softmax_cross_entropy(model.forward(x), y)
        model.backward(grad)
        opt.step()

    return step


def torch_trainer(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10)
    )
    opt = torch.optim.Adam(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=500, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/mnist_epoch.json"))
    args = parser.parse_args()

    data = load_mnist(args.data_dir)
    order = np.random.default_rng(0).permutation(len(data.train_y))
    batches = [
        (data.train_x[order[i : i + args.batch_size]], data.train_y[order[i : i + args.batch_size]])
        for i in range(0, args.steps * args.batch_size, args.batch_size)
    ]
    mp.set_num_threads(args.threads)
    contenders = {f"meprop k={args.k}": meprop_trainer(args.k, 0), "meprop dense": meprop_trainer(None, 0)}
    if torch is not None:
        torch.set_num_threads(args.threads)
        contenders["torch dense"] = torch_trainer(0)
    per_step: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            time.sleep(0.05)  # let the previous contender's spinning threads settle
            # meprop's policy: BLAS on one thread while its kernels train; torch
            # keeps its own settings (its thread count set above).
            limits = mp.thread_limits(blas=1) if name.startswith("meprop") else contextlib.nullcontext()
            with limits:
                start = time.perf_counter()
                for x, y in batches:
                    step(x, y)
                per_step[name].append((time.perf_counter() - start) / len(batches))
    steps_per_epoch = len(data.train_y) // args.batch_size
    result = {
        name: {"median_step_ms": 1e3 * statistics.median(t), "epoch_s": statistics.median(t) * steps_per_epoch}
        for name, t in per_step.items()
    }
    print(f"threads {args.threads}, batch {args.batch_size}, {args.rounds} rounds of {args.steps} steps")
    for name, r in result.items():
        print(f"  {name:14} {r['median_step_ms']:7.3f} ms/step   epoch {r['epoch_s']:6.1f} s")
    if "torch dense" in result:
        ratio = result["torch dense"]["epoch_s"] / result[f"meprop k={args.k}"]["epoch_s"]
        print(f"meProp epoch vs PyTorch: {ratio:.2f}x faster  [{'PASS' if ratio > 1 else 'FAIL'}: bar > 1x]")
        result["speedup_vs_torch"] = ratio
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
