"""Reproduces the paper's POS-tagging rows (Tables 1 and 2) with this code, dense and meProp alike.

Runs ``meprop train pos`` for each optimizer (AdaGrad lr 0.01, Adam lr 0.001)
in dense mode and with meProp k=5, then prints and writes (JSON and markdown)
the test accuracy at the best dev epoch, the best epoch, and the time
breakdown with speed-ups. Dense and meProp go through the same layers and
kernels (dense is k = 4h), so the ratios compare like with like.

    python benchmarks/reproduce_pos.py --data-dir ../data --epochs 3 --threads 1
"""

from __future__ import annotations

import argparse
import sys

from _runs import paper_run, reproduction_parser

from meprop_native.train.atomic import atomic_open, write_json

K = 5  # the paper's k for POS tagging (LSTM only; the output layer stays dense)
# The paper's Table 1 and 2 figures for POS (WSJ, its own code on a 3.0 GHz Xeon).
PAPER = {
    "adagrad": {"dense": "4, 17,534.4 s, 96.93 (96.89)", "meprop": "4, 253.2 s (69.2x), 97.25 (97.18)"},
    "adam": {"dense": "2, 16,167.3 s, 97.07 (97.18)", "meprop": "5, 247.2 s (65.4x), 97.12 (97.14)"},
}
PAPER_TABLE2 = (
    "Adam: overall forward / overall backprop / total 7,334 / 16,522 / 23,856 s dense; "
    "7,362 / 540 (30.5x) / 7,903 s meProp"
)


def run_one(optimizer: str, mode: str, args: argparse.Namespace) -> dict:
    options = ["--optimizer", optimizer, "--mode", mode, "--k", str(K)]
    options += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    return paper_run("pos", options, args.out / f"{optimizer}-{mode}", args)


def markdown(rows: list[dict], epochs: int) -> str:
    lines = [
        (
            f"| optimizer | mode | best epoch (of {epochs}) | test % (dev %) | unknown-word test % | backprop s | "
            "overall forward s | overall backprop s | optimizer s | total s | paper (best iter, backprop time, test (dev)) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for name in ("dense", "meprop"):
            s = r[name]
            t = s["time"]
            test = s["test_metrics_at_best_dev"]
            lines.append(
                f"| {r['optimizer']} | {name if name == 'dense' else f'meProp k={K}'} | {s['best_epoch']} | "
                f"{100 * s['test_at_best_dev']:.2f} ({100 * s['best_dev']:.2f}) | {100 * test['oov_accuracy']:.2f} | "
                f"{t['backprop']:.1f} | {t['forward']:.1f} | {t['overall_backprop']:.1f} | {t['optimizer']:.1f} | "
                f"{t['total']:.1f} | {PAPER[r['optimizer']][name]} |"
            )
        d, m = r["dense"]["time"], r["meprop"]["time"]
        lines.append(
            f"| {r['optimizer']} | speed-up | | | | **{d['backprop'] / m['backprop']:.1f}x** | "
            f"{d['forward'] / m['forward']:.2f}x | {d['overall_backprop'] / m['overall_backprop']:.1f}x | "
            f"{d['optimizer'] / m['optimizer']:.1f}x | **{d['total'] / m['total']:.2f}x** | |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = reproduction_parser(__doc__, "runs/reproduce-pos", 5, list(PAPER))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None, help="first N training sentences (smoke runs)")
    args = parser.parse_args()

    rows = []
    for optimizer in args.optimizers:
        rows.append(
            {
                "optimizer": optimizer,
                "k": K,
                "dense": run_one(optimizer, "dense", args),
                "meprop": run_one(optimizer, "meprop", args),
            }
        )
    table = markdown(rows, args.epochs)
    print(table)
    print(f"paper, Table 2: {PAPER_TABLE2}")
    write_json(args.out / "table.json", rows)
    with atomic_open(args.out / "table.md", "w") as handle:
        handle.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
