"""Reproduces the paper's MNIST rows (Table 1 and 2) with this code, dense and meProp alike.

Runs ``meprop train mnist`` for each (optimizer, mode, seed), then prints a
table of test accuracy at the best dev epoch, the best-dev epoch and the time
breakdown with speed-ups, and writes it as JSON. Dense and meProp go through
the same layers and kernels (dense is k = n), so the ratios compare like with
like.

    python benchmarks/reproduce_mnist.py --data-dir ../data --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _runs import paper_run, reproduction_parser

from meprop_native.train.atomic import write_json

# The paper's settings: Adam k=20 (lr 0.001), AdaGrad k=10 (lr 0.1); batch 10.
SETTINGS = {"adam": 20, "adagrad": 10}


def run_one(optimizer: str, mode: str, seed: int, args: argparse.Namespace) -> dict:
    options = ["--optimizer", optimizer, "--mode", mode, "--k", str(SETTINGS[optimizer])]
    options += ["--epochs", str(args.epochs), "--seed", str(seed)]
    if args.dropout:
        options += ["--dropout", str(args.dropout)]
    if args.init:
        options += ["--init", args.init]
    if args.evals_per_epoch != 1:
        options += ["--evals-per-epoch", str(args.evals_per_epoch)]
    return paper_run("mnist", options, args.out / f"{optimizer}-{mode}-seed{seed}", args)


def main() -> int:
    parser = reproduction_parser(__doc__, "runs/reproduce", 20, list(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument(
        "--init",
        choices=["paper", "pytorch"],
        default=None,
        help="weight initialisation (default: meprop train mnist's, pytorch)",
    )
    parser.add_argument(
        "--evals-per-epoch", type=int, default=1, help="dev/test evaluations per epoch (the paper authors' code: 11)"
    )
    args = parser.parse_args()

    rows = []
    for optimizer in args.optimizers:
        for seed in args.seeds:
            dense = run_one(optimizer, "dense", seed, args)
            sparse = run_one(optimizer, "per_example", seed, args)
            rows.append(
                {"optimizer": optimizer, "k": SETTINGS[optimizer], "seed": seed, "dense": dense, "meprop": sparse}
            )

    header = (
        f"{'optimizer':9} {'seed':>4} {'mode':>9} {'test@best':>9} {'dev':>6} {'ep':>3} "
        f"{'fwd s':>7} {'backprop s':>10} {'overall bp s':>12} {'opt s':>6} {'total s':>8}"
    )
    print(header)
    for r in rows:
        for name in ("dense", "meprop"):
            s = r[name]
            t = s["time"]
            print(
                f"{r['optimizer']:9} {r['seed']:>4} {name:>9} {100 * s['test_at_best_dev']:9.2f} "
                f"{100 * s['best_dev']:6.2f} {s['best_epoch']:3d} {t['forward']:7.1f} {t['backprop']:10.2f} "
                f"{t['overall_backprop']:12.2f} {t['optimizer']:6.1f} {t['total']:8.1f}"
            )
        d, m = r["dense"]["time"], r["meprop"]["time"]
        print(
            f"{'':14} speed-up: backprop {d['backprop'] / m['backprop']:.1f}x, overall backprop "
            f"{d['overall_backprop'] / m['overall_backprop']:.1f}x, forward+backward "
            f"{(d['forward'] + d['overall_backprop']) / (m['forward'] + m['overall_backprop']):.2f}x, "
            f"whole step {d['total'] / m['total']:.2f}x"
        )
    for optimizer in args.optimizers:
        acc = {
            name: [100 * r[name]["test_at_best_dev"] for r in rows if r["optimizer"] == optimizer]
            for name in ("dense", "meprop")
        }
        print(
            f"{optimizer}: mean test@best-dev over seeds {args.seeds}: dense {statistics.mean(acc['dense']):.2f}, "
            f"meprop {statistics.mean(acc['meprop']):.2f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "table.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
