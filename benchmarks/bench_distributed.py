"""Data-parallel MNIST on MPI: time of a training epoch and bytes exchanged
per step, 1 rank against N ranks, meProp and dense.

Usage::

    python benchmarks/bench_distributed.py                  # 1 and 2 ranks, 1 thread each
    python benchmarks/bench_distributed.py --ranks 1 2 4 8 --rounds 3 --threads 1

Each configuration runs ``mpiexec -n N meprop train mnist --epochs 1`` (N=1
without mpiexec) with ``--threads`` per rank, in rounds that rotate through
the configurations, so that a load on the machine falls on all of them
alike; the medians are reported. The time is the trainer's own training time
of the epoch (``time.total`` in summary.json: forward, backward, exchanges
and updates, evaluation excluded). Bytes per step are what the run reports
(``exchange_bytes_per_step``): the size of every gathered or summed buffer
of a step. Needs mpi4py and Open MPI (``pip install ".[mpi]"``) and MNIST
(``--data-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from meprop_native.bench.timing import cpu_model
from meprop_native.distributed import find_mpiexec, launch_environment
from meprop_native.train.atomic import write_json


def mpiexec() -> str:
    found = find_mpiexec()
    if found is None:
        sys.exit("bench_distributed: no mpiexec beside this Python or on PATH: pip install '.[mpi]'")
    return found


def run(ranks: int, mode: str, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, "-m", "meprop_native.cli", "train", "mnist", "--epochs", "1", "--no-progress"]
    command += ["--batch-size", str(args.batch_size), "--threads", str(args.threads), "--out", str(out), "--overwrite"]
    command += ["--mode", "dense"] if mode == "dense" else []
    command += ["--data-dir", str(args.data_dir)] if args.data_dir else []
    command += ["--steps-per-epoch", str(args.steps)] if args.steps else []
    if ranks > 1:
        command = [mpiexec(), "--oversubscribe", "-n", str(ranks), *command]
    result = subprocess.run(command, env=launch_environment(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench_distributed: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "train_seconds": summary["time"]["total"],
        "bytes_per_step": summary["exchange_bytes_per_step"],
        "test": summary["test_at_best_dev"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["meprop", "dense"], choices=["meprop", "dense"])
    parser.add_argument("--threads", type=int, default=1, help="threads per rank (default 1)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="cap steps per epoch (default: the whole epoch)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distributed.json")
    args = parser.parse_args()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; {args.threads} thread(s) per rank")
    configs = [(mode, ranks) for mode in args.modes for ranks in args.ranks]
    results: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            # Rotate the order each round: no configuration always runs first.
            for mode, ranks in configs[r % len(configs) :] + configs[: r % len(configs)]:
                results[(mode, ranks)].append(run(ranks, mode, args, Path(scratch) / f"{mode}-{ranks}"))

    rows = []
    print(f"\nbatch {args.batch_size}, medians of {args.rounds} rounds")
    print(f"{'mode':8} {'ranks':>5} {'train s':>9} {'speed-up':>9} {'bytes/step':>12} {'vs dense':>9} {'test':>7}")
    for mode, ranks in configs:
        seconds = statistics.median(r["train_seconds"] for r in results[(mode, ranks)])
        base = statistics.median(r["train_seconds"] for r in results[(mode, args.ranks[0])])
        sent = results[(mode, ranks)][0]["bytes_per_step"]
        dense = results.get(("dense", ranks), [{}])[0].get("bytes_per_step")
        share = f"{sent / dense:.1%}" if dense else "-"
        test = results[(mode, ranks)][0]["test"]
        print(f"{mode:8} {ranks:5d} {seconds:9.2f} {base / seconds:8.2f}x {sent:12,.0f} {share:>9} {test:7.4f}")
        rows.append(
            {
                "mode": mode,
                "ranks": ranks,
                "train_seconds": [r["train_seconds"] for r in results[(mode, ranks)]],
                "speedup_vs_first": base / seconds,
                "bytes_per_step": sent,
            }
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, {"cpu": cpu_model(), "threads": args.threads, "batch_size": args.batch_size, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
