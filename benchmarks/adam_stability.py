"""Why meProp with Adam is unstable early on MNIST: which updates cause it.

    python benchmarks/adam_stability.py --data-dir ../data [--steps 600]

Trains the paper's 784-500-500-10 MLP (batch 10, Adam lr 0.001, k=20 in both
hidden layers) for a few hundred steps and prints the mean training loss per
100 steps, the mean hidden activations and the share of dead second-layer
units (no positive activation on 500 training images) for:

* dense backprop and meProp with every parameter updated (the paper's setting);
* meProp with one parameter group held fixed after each step (first hidden
  layer's weights, second's, biases, output layer), to see which sparse
  updates drive the instability;
* meProp at other learning rates;
* meProp with what differs in the paper authors' C# code for this experiment
  (github.com/lancopku/meProp, src/csharp/nnmnist): the loss gradient summed
  over the mini-batch rather than averaged (clipping at 5 then bites
  differently), and weights drawn from N(0, sd^2) with
  sd = sqrt(6 / (fan_in + fan_out)), biases zero;
* meProp with lazy Adam (only rows that received gradient move);
* meProp and dense with each element's Adam step bounded, |m^/(sqrt(v^)+eps)|
  <= c (a NumPy Adam of this script's, every row moving): a row that gets
  gradient after a silence takes a step of about 3 lr and keeps moving on
  its momentum, so a bound on the step is the obvious guess at a remedy.

Everything else is as ``meprop train mnist``. Writes the table as JSON.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meprop_native import set_num_threads, thread_limits
from meprop_native.data import load_mnist
from meprop_native.nn import mlp, softmax_cross_entropy
from meprop_native.optim import Adam
from meprop_native.train.atomic import write_json


@dataclass(frozen=True)
class Case:
    label: str
    k: int | None = 20
    fixed: tuple[str, ...] = ()  # parameters restored after every step
    lr: float = 1e-3
    summed_loss: bool = False
    authors_init: bool = False
    lazy: bool = False
    step_bound: float | None = None  # Adam's per-element step bound (BoundedAdam)


CASES = [
    Case("dense", k=None),
    Case("meProp"),
    Case("meProp, W1 fixed", fixed=("0.weight",)),
    Case("meProp, W2 fixed", fixed=("2.weight",)),
    Case("meProp, hidden biases fixed", fixed=("0.bias", "2.bias")),
    Case("meProp, output layer fixed", fixed=("4.weight", "4.bias")),
    Case("meProp, lr 0.002", lr=2e-3),
    Case("meProp, lr 0.0005", lr=5e-4),
    Case("meProp, lr 0.0001", lr=1e-4),
    Case("meProp, summed loss", summed_loss=True),
    Case("meProp, authors' init", authors_init=True),
    Case("meProp, both", summed_loss=True, authors_init=True),
    Case("dense, both", k=None, summed_loss=True, authors_init=True),
    Case("meProp, lazy Adam", lazy=True),
    Case("meProp, Adam step <= 1", step_bound=1.0),
    Case("meProp, Adam step <= 0.3", step_bound=0.3),
    Case("dense, Adam step <= 1", k=None, step_bound=1.0),
]


class BoundedAdam:
    """Adam with bias correction and clipping as the library's, every row moving, with
    each element's step m^/(sqrt(v^)+eps) clipped to [-bound, bound]. NumPy, for this study."""

    def __init__(self, params, lr: float, bound: float, clip: float = 5.0, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.bound, self.clip, self.eps = params, lr, bound, clip, eps
        self.b1, self.b2 = betas
        self.m = [np.zeros_like(p.matrix()) for p in params]
        self.v = [np.zeros_like(p.matrix()) for p in params]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            g = np.zeros_like(m)
            if p.grad_rows is not None:
                g[p.grad_rows] = np.clip(p.grad, -self.clip, self.clip)
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            step = (m / (1 - self.b1**self.t)) / (np.sqrt(v / (1 - self.b2**self.t)) + self.eps)
            p.matrix()[...] -= (self.lr * np.clip(step, -self.bound, self.bound)).astype(m.dtype)
            p.zero_grad()


def authors_init(model, seed: int) -> None:
    """Weights ~ N(0, 6 / (fan_in + fan_out)), biases 0, as in the C# code."""
    rng = np.random.default_rng([seed, 1])
    for layer in model.linear_layers():
        fan_out, fan_in = layer.weight.value.shape
        sd = np.sqrt(6.0 / (fan_in + fan_out))
        layer.weight.value[...] = rng.normal(0.0, sd, (fan_out, fan_in))
        if layer.bias is not None:
            layer.bias.value[...] = 0


def run_case(case: Case, x, y, probe, steps, seed):
    model = mlp([784, 500, 500, 10], k=case.k, seed=seed)
    if case.authors_init:
        authors_init(model, seed)
    params = dict(model.named_parameters())
    optimizer: Any = (
        BoundedAdam(model.parameters(), case.lr, case.step_bound)
        if case.step_bound is not None
        else Adam(model.parameters(), lr=case.lr, clip=5.0, lazy=case.lazy)
    )
    order = np.random.default_rng([seed, 0]).permutation(len(y))
    losses = []
    for step in range(steps):
        batch = order[step * 10 : (step + 1) * 10]
        loss, grad = softmax_cross_entropy(model.forward(x[batch]), y[batch])
        if case.summed_loss:
            grad = grad * len(batch)
        model.backward(grad)
        kept = {name: params[name].value.copy() for name in case.fixed}
        optimizer.step()
        for name, value in kept.items():
            params[name].value[...] = value
        losses.append(loss)
    layers = model.linear_layers()
    h1 = np.maximum(probe @ layers[0].weight.value.T + layers[0].bias.value, 0)
    h2 = np.maximum(h1 @ layers[1].weight.value.T + layers[1].bias.value, 0)
    return {
        "loss_per_100_steps": [float(np.mean(losses[i : i + 100])) for i in range(0, steps, 100)],
        "h1_mean": float(h1.mean()),
        "h2_mean": float(h2.mean()),
        "h2_dead_share": float((h2.max(axis=0) == 0).mean()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adam_stability.json"))
    args = parser.parse_args(argv)
    splits = load_mnist(args.data_dir)
    x, y = splits.train_x, splits.train_y
    probe = x[:500]
    set_num_threads(1)
    rows = []
    print(f"{'case':30} {'loss per 100 steps':48} {'h1':>6} {'h2':>7} {'dead h2':>8}")
    with thread_limits(blas=1):
        for case in CASES:
            r = run_case(case, x, y, probe, args.steps, args.seed)
            rows.append({**asdict(case), "fixed": list(case.fixed), **r})
            losses = " ".join(f"{v:5.2f}" for v in r["loss_per_100_steps"])
            print(
                f"{case.label:30} {losses:48} {r['h1_mean']:6.2f} {r['h2_mean']:7.2f} {r['h2_dead_share']:8.2f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, {"steps": args.steps, "seed": args.seed, "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
