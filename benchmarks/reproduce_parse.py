"""Reproduces the paper's parsing rows (Tables 1 and 2) with this code, dense and meProp alike.

Runs ``meprop train parse`` for each optimizer (AdaGrad lr 0.01, Adam lr
0.001), dense and meProp (k = 20 in the hidden and output layers), with the
same seed, then prints and writes (JSON and Markdown) test UAS/LAS at the best
dev epoch, the best epoch, and the time breakdown with speed-ups. Dense goes
through the same layers and kernels (k = n), so the ratios compare like with
like. Runs whose summary exists are reused unless --rerun.

    python benchmarks/reproduce_parse.py --data-dir ../data --epochs 8 --threads 1

Runs are kept under --out by optimizer, mode and seed; a later call with
other --optimizers reuses the finished ones, so runs of different lengths
can share one table (its epochs column says how long each ran).
"""

from __future__ import annotations

import argparse
import json
import sys

from _runs import paper_run, reproduction_parser

from meprop_native.train.atomic import write_json, write_with

K = 20  # the paper's k for parsing, hidden and output layers
PAPER = {  # Table 1 (backprop seconds, test UAS, dev UAS, best iteration) and Table 2 (Adam)
    "adagrad": {
        "dense": {"iter": 11, "backprop": 8899.7, "test": 88.92, "dev": 89.07},
        "meprop": {"iter": 8, "backprop": 492.3, "test": 88.95, "dev": 89.17, "speedup": 18.1},
    },
    "adam": {
        "dense": {
            "iter": 14,
            "backprop": 9077.7,
            "test": 89.84,
            "dev": 90.12,
            "forward": 3906,
            "overall_backprop": 9114,
            "total": 13020,
        },
        "meprop": {
            "iter": 6,
            "backprop": 488.7,
            "test": 90.01,
            "dev": 90.02,
            "speedup": 18.6,
            "forward": 4002,
            "overall_backprop": 513,
            "total": 4516,
        },
    },
}


def run_one(optimizer: str, mode: str, args: argparse.Namespace) -> dict:
    options = ["--optimizer", optimizer, "--mode", mode, "--k", str(K), "--k-out", str(K)]
    options += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    return paper_run("parse", options, args.out / f"{optimizer}-{mode}-seed{args.seed}", args)


def row(optimizer: str, name: str, s: dict) -> dict:
    best = s["history"][s["best_epoch"] - 1]
    t = s["time"]
    return {
        "optimizer": optimizer,
        "mode": name,
        "epochs": s["epochs"],
        "best_epoch": s["best_epoch"],
        "dev_uas": 100 * best["dev"]["uas"],
        "dev_las": 100 * best["dev"]["las"],
        "test_uas": 100 * best["test"]["uas"],
        "test_las": 100 * best["test"]["las"],
        "forward": t["forward"],
        "backprop": t["backprop"],
        "overall_backprop": t["overall_backprop"],
        "optimizer_s": t["optimizer"],
        "total": t["total"],
        "epoch_seconds": [r["time"]["total"] + r["eval_seconds"] for r in s["history"]],
    }


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Seed {args.seed}, threads {args.threads}; times are sums over all epochs of a run (s).",
        "",
        (
            "| optimizer | mode | epochs | best epoch | test UAS | test LAS | dev UAS | dev LAS | forward | backprop | "
            "overall backprop | total | mean epoch incl. eval |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['optimizer']} | {r['mode']} | {r['epochs']} | {r['best_epoch']} | {r['test_uas']:.2f} | {r['test_las']:.2f} | "
            f"{r['dev_uas']:.2f} | {r['dev_las']:.2f} | {r['forward']:.1f} | {r['backprop']:.1f} | "
            f"{r['overall_backprop']:.1f} | {r['total']:.1f} | {sum(r['epoch_seconds']) / len(r['epoch_seconds']):.0f} |"
        )
    lines.append("")
    for optimizer in args.optimizers:
        pair = {r["mode"]: r for r in rows if r["optimizer"] == optimizer}
        if len(pair) < 2:
            continue
        d, m = pair["dense"], pair["meprop"]
        lines.append(
            f"- {optimizer}: speed-up backprop {d['backprop'] / m['backprop']:.1f}x, overall backprop "
            f"{d['overall_backprop'] / m['overall_backprop']:.1f}x, total {d['total'] / m['total']:.2f}x; "
            f"test UAS meProp - dense = {m['test_uas'] - d['test_uas']:+.2f}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = reproduction_parser(__doc__, "runs/reproduce-parse", 8, list(PAPER))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=None, help="first N training sentences (smoke runs)")
    args = parser.parse_args()

    rows = []
    for optimizer in args.optimizers:
        for mode, name in (("dense", "dense"), ("per_example", "meprop")):
            rows.append(row(optimizer, name, run_one(optimizer, mode, args)))
            print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "table.json",
        {"rows": rows, "paper": PAPER, "epochs": args.epochs, "seed": args.seed, "threads": args.threads},
    )
    write_with(args.out / "table.md", lambda handle: handle.write(table.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
