"""The accuracy study: dense, plain meProp and each remedy, over seeds, per task and optimizer.

    python benchmarks/study_accuracy.py --data-dir ../data --study mnist-adam --seeds 0 1 2 3 4
    python benchmarks/study_accuracy.py --data-dir ../data --study all --jobs 2

Each (study, method, seed) is one ``meprop train`` run (the torch drop-in's
study runs ``benchmarks/torch_mnist.py``) in a subprocess, its summary kept
under ``--out``; a finished run is not run again unless ``--rerun``. Then,
per study, a table of test accuracy at the best dev evaluation (mean +- std
over seeds), the kept fraction of dy entries the run itself reports, and the
linear backprop time relative to dense (the trainer's own timing, summed over
the run: a ratio of separate runs, so the side-by-side figures of
``bench_mnist_step.py`` are the ones to quote for speed). Writes
``study.json``, ``study.md`` and ``study.png`` (accuracy against kept
fraction, one marker per method, error bars one std).

``--jobs 2`` runs two trainings at once, each on one thread: on a 2-core
machine that halves the wall time and leaves the accuracy unchanged (results
do not depend on the thread count), but the time ratios then carry the other
run's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from meprop_native.train.atomic import atomic_open, write_json

HERE = Path(__file__).resolve().parent

# The methods: extra options of `meprop train` on top of the study's base.
# "plain" is the paper's meProp (no error feedback); "default" is what
# `meprop train` does with no options.
PLAIN = ["--memory-decay", "0"]
METHODS: dict[str, list[str]] = {
    "dense": ["--mode", "dense"],
    "plain meProp": PLAIN,
    "error feedback 1.0": ["--memory-decay", "1.0"],
    "error feedback 0.8": ["--memory-decay", "0.8"],
    "error feedback 1.0, k 25": ["--memory-decay", "1.0", "--k", "25"],
    "error feedback 0.8, k 25": ["--memory-decay", "0.8", "--k", "25"],
    "error feedback 0.9, k 25": ["--memory-decay", "0.9", "--k", "25"],
    "error feedback 0.7, k 25": ["--memory-decay", "0.7", "--k", "25"],
    # Adam moving only the rows that got gradient: the cheapest update.
    "error feedback 0.8, k 25, lazy Adam": ["--memory-decay", "0.8", "--k", "25", "--lazy"],
    "warm-up ramp 2000 steps": PLAIN + ["--warmup-steps", "2000"],
    "error feedback 0.8 + warm-up ramp 2000 steps": ["--memory-decay", "0.8", "--warmup-steps", "2000"],
    "warm-up dense 500 steps": PLAIN + ["--warmup-steps", "500", "--warmup", "dense"],
    # The parser takes about 40 steps an epoch (batches of 10,000).
    "warm-up ramp 40 steps": PLAIN + ["--warmup-steps", "40"],
    "adaptive k, mass 0.5": PLAIN + ["--k-rule", "mass", "--k-mass", "0.5", "--k-min", "5", "--k-max", "40"],
    "adaptive k, TinyProp": PLAIN + ["--k-rule", "tinyprop", "--k-min", "5", "--k-max", "40"],
    # Larger k for the tagger, whose base k=5 keeps 0.25 % of the LSTM's 2000 gate entries.
    "plain meProp, k 20": PLAIN + ["--k", "20"],
    "plain meProp, k 50": PLAIN + ["--k", "50"],
    "plain meProp, k 100": PLAIN + ["--k", "100"],
    "error feedback 0.8, k 20": ["--memory-decay", "0.8", "--k", "20"],
    # One epoch of the tagger (12,544 sentences, one a step).
    "warm-up ramp 12544 steps": PLAIN + ["--warmup-steps", "12544"],
    "warm-up dense 12544 steps": PLAIN + ["--warmup-steps", "12544", "--warmup", "dense"],
    "unified top-k": PLAIN + ["--mode", "unified"],
    "random selection": PLAIN + ["--select", "random"],
    "random + error feedback": ["--select", "random", "--memory-decay", "0.8"],
    # meSimp: units seldom selected are removed while training (its own k and schedule).
    "meSimp": ["--simplify"],
    "meSimp, fraction 0.2": ["--simplify", "--simplify-fraction", "0.2"],
    "meSimp, k 100": ["--simplify", "--k", "100"],
    "meSimp, k 100, fraction 0.2": ["--simplify", "--k", "100", "--simplify-fraction", "0.2"],
    "meSimp, every epoch": ["--simplify", "--simplify-cycle", "0"],
    "meSimp, k 120": ["--simplify", "--k", "120"],
    "meSimp, k 100, error feedback 0.8": ["--simplify", "--k", "100", "--memory-decay", "0.8"],
}


@dataclass(frozen=True)
class Study:
    """A task and optimizer at the paper's k (``base``), the methods compared, and
    ``default``: the method that is what ``meprop train`` does with no options
    but the optimizer (marked in the table)."""

    task: str
    base: list[str]
    methods: list[str]
    default: str
    torch: bool = False
    epochs: int = 20


ALL_METHODS = list(METHODS)
# The defaults of `meprop train`: under Adam, error feedback 0.8 (MNIST with
# k=25 and lazy Adam, the other tasks at the paper's k); under AdaGrad the
# paper's plain meProp at the paper's k, which is each study's base, except
# the tagger's k=100 (its study); MNIST under SGD error feedback 0.8, k=25.
MNIST_DEFAULT = "error feedback 0.8, k 25"
MNIST_ADAM_DEFAULT = "error feedback 0.8, k 25, lazy Adam"
TASK_DEFAULT = "error feedback 0.8"
PAPER = "plain meProp"
STUDIES = {
    # Adam moving every row (the paper's code) is the study's base; "lazy Adam" methods say so.
    "mnist-adam": Study("mnist", ["--optimizer", "adam", "--k", "20", "--no-lazy"], ALL_METHODS, MNIST_ADAM_DEFAULT),
    "mnist-adagrad": Study(
        "mnist",
        ["--optimizer", "adagrad", "--k", "10"],
        ["dense", "plain meProp", "error feedback 0.8", MNIST_DEFAULT],
        PAPER,
    ),
    "mnist-sgd": Study(
        "mnist", ["--optimizer", "sgd", "--k", "20"], ["dense", "plain meProp", MNIST_DEFAULT], MNIST_DEFAULT
    ),
    "pos-adagrad": Study(
        "pos",
        ["--optimizer", "adagrad", "--k", "5", "--epochs", "5"],
        [
            "dense",
            "plain meProp",
            TASK_DEFAULT,
            "plain meProp, k 20",
            "plain meProp, k 50",
            "plain meProp, k 100",
            "error feedback 0.8, k 20",
            "warm-up ramp 12544 steps",
            "warm-up dense 12544 steps",
        ],
        "plain meProp, k 100",
        epochs=5,
    ),
    # The task's default 20 epochs; `--epochs 8` gives the first table of
    # docs/results.md, which compared how fast each method learns.
    "parse-adam": Study(
        "parse",
        ["--optimizer", "adam", "--k", "20"],
        ["dense", "plain meProp", "error feedback 0.8", "warm-up ramp 40 steps"],
        PAPER,
    ),
    "parse-adagrad": Study(
        "parse",
        ["--optimizer", "adagrad", "--k", "20", "--epochs", "8"],
        ["dense", "plain meProp", TASK_DEFAULT],
        PAPER,
        epochs=8,
    ),
    # meSimp's MNIST setting (top-160 of 500, Adam) against dense.
    "mnist-simplify": Study(
        "mnist",
        ["--optimizer", "adam"],
        [
            "dense",
            "meSimp",
            "meSimp, fraction 0.2",
            "meSimp, k 100",
            "meSimp, k 100, fraction 0.2",
            "meSimp, every epoch",
            "meSimp, k 120",
            "meSimp, k 100, error feedback 0.8",
        ],
        "meSimp",
    ),
    "torch-mnist-adam": Study(
        "torch",
        [],
        ["dense", "plain meProp", "error feedback 0.8", "error feedback 1.0", "error feedback 1.0, lazy native Adam"],
        "error feedback 1.0",
        torch=True,
        epochs=10,
    ),
}


# The torch study: torch_mnist.py trains dense and meProp (k=20 of 500) for a
# seed in one run; the method picks the memory decay and which of the two runs
# it reports. Its layers keep exactly k per example, so the kept fraction is k/n.
TORCH_METHODS = {
    "dense": (0.0, "dense", "torch"),
    "plain meProp": (0.0, "per_example", "torch"),
    "error feedback 0.8": (0.8, "per_example", "torch"),
    "error feedback 1.0": (1.0, "per_example", "torch"),
    # Row-sparse gradients and the native Adam moving only the touched rows.
    "error feedback 1.0, lazy native Adam": (1.0, "per_example", "lazy"),
}
TORCH_KEPT = 20 / 500


# `meprop` itself, through the interpreter running this script.
CLI = "import sys; from meprop_native.cli import main; sys.exit(main(sys.argv[1:]))"


def command(study: Study, method: str, seed: int, out: Path, args: argparse.Namespace) -> list[str]:
    if study.torch:
        decay, _, update = TORCH_METHODS[method]
        argv = [
            sys.executable,
            str(HERE / "torch_mnist.py"),
            "--seeds",
            str(seed),
            "--epochs",
            str(study.epochs),
            "--threads",
            "1",
            "--memory-decay",
            str(decay),
            "--update",
            update,
            "--out",
            str(out / "torch_mnist.json"),
        ]
    else:
        argv = [
            sys.executable,
            "-c",
            CLI,
            "train",
            study.task,
            *study.base,
            *METHODS[method],
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
        ]
        if "--epochs" not in study.base:
            argv += ["--epochs", str(epochs(study, args))]
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    if not study.torch:  # an interrupted run continues, --rerun starts over
        argv += ["--overwrite"] if args.rerun else ["--resume"] if (out / "checkpoint.npz").exists() else []
    return argv


def torch_summary(out: Path, method: str, seed: int) -> dict:
    """A torch_mnist.py result in the shape of a trainer's summary."""
    run = json.loads((out / "torch_mnist.json").read_text())["runs"][str(seed)][TORCH_METHODS[method][1]]
    seconds = sum(e["train_seconds"] for e in run["epochs"])
    kept = 1.0 if method == "dense" else TORCH_KEPT
    return {
        "test_at_best_dev": run["test_at_best_dev"] / 100,
        "kept_fraction": {"all": kept},
        "time": {"backprop": seconds},
    }


def run_one(study_name: str, method: str, seed: int, args: argparse.Namespace) -> dict | None:
    study = STUDIES[study_name]
    if args.report_only:
        return existing(study_name, method, seed, args)
    if study.torch:  # dense comes with the plain run; both share one process per seed and decay
        key = "plain meProp" if method == "dense" else method
        out = run_dir(study_name, method, seed, args)
        if not (out / "torch_mnist.json").exists() or args.rerun:
            out.mkdir(parents=True, exist_ok=True)
            argv = command(study, key, seed, out, args)
            with open(out / "log.txt", "w") as log:
                code = subprocess.run(
                    argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, OMP_NUM_THREADS="1")
                ).returncode
            if code != 0:
                print(f"FAILED ({code}): {' '.join(argv)}; see {out / 'log.txt'}", file=sys.stderr)
                return None
        return torch_summary(out, method, seed)
    out = run_dir(study_name, method, seed, args)
    summary = out / "summary.json"
    if not summary.exists() or args.rerun or shorter(summary, study, args):
        out.mkdir(parents=True, exist_ok=True)
        argv = command(study, method, seed, out, args)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with open(out / "log.txt", "w") as log:
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            print(f"FAILED ({code}): {' '.join(argv)}; see {out / 'log.txt'}", file=sys.stderr)
            return None
    return json.loads(summary.read_text())


def epochs(study: Study, args: argparse.Namespace) -> int:
    """The epochs a study's runs train: its own, or ``--epochs`` where its base does not fix them."""
    return study.epochs if "--epochs" in study.base else args.epochs or study.epochs


def shorter(summary: Path, study: Study, args: argparse.Namespace) -> bool:
    """Whether a finished run trained fewer epochs than asked for: it is then
    continued from its checkpoint (epochs are not part of a run's identity).
    One that trained more cannot be cut back and is refused."""
    trained, wanted = int(json.loads(summary.read_text())["epochs"]), epochs(study, args)
    if trained > wanted:
        raise SystemExit(
            f"{summary} is of a run of {trained} epochs, more than the {wanted} asked for; use another --out"
        )
    return trained < wanted


def run_dir(study_name: str, method: str, seed: int, args: argparse.Namespace) -> Path:
    if STUDIES[study_name].torch and method == "dense":
        method = "plain meProp"  # the torch study's dense run comes with its plain run
    return args.out / study_name / f"{method.replace(' ', '_').replace(',', '')}-seed{seed}"


def existing(study_name: str, method: str, seed: int, args: argparse.Namespace) -> dict | None:
    """A finished run's summary, or None."""
    out = run_dir(study_name, method, seed, args)
    if STUDIES[study_name].torch:
        return torch_summary(out, method, seed) if (out / "torch_mnist.json").exists() else None
    summary = out / "summary.json"
    return json.loads(summary.read_text()) if summary.exists() else None


def score(summary: dict) -> float:
    return 100 * float(summary["test_at_best_dev"])


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(study_name: str, results: dict[str, list[dict]]) -> tuple[list[dict], str]:
    default = STUDIES[study_name].default
    rows = []
    dense_bp = [s["time"]["backprop"] for s in results.get("dense", [])]
    for method, summaries in results.items():
        if not summaries:
            continue
        acc = [score(s) for s in summaries]
        kept = [s["kept_fraction"]["all"] for s in summaries if s.get("kept_fraction", {}).get("all") is not None]
        bp = [s["time"]["backprop"] for s in summaries]
        m, sd = mean_std(acc)
        rows.append(
            {
                "method": method + (" (default)" if method == default else ""),
                "seeds": len(acc),
                "test": acc,
                "mean": m,
                "std": sd,
                "kept_fraction": statistics.mean(kept) if kept else 1.0,
                "backprop_speedup": statistics.mean(dense_bp) / statistics.mean(bp) if dense_bp else None,
            }
        )
    lines = [
        f"### {study_name}",
        "",
        "| method | seeds | test at best dev (mean ± std) | per seed | kept fraction | linear backprop vs dense |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        speed = f"{r['backprop_speedup']:.1f}x" if r["backprop_speedup"] else "-"
        per_seed = " ".join(f"{a:.2f}" for a in r["test"])
        lines.append(
            f"| {r['method']} | {r['seeds']} | {r['mean']:.2f} ± {r['std']:.2f} | {per_seed} | "
            f"{r['kept_fraction']:.4f} | {speed} |"
        )
    lines += simplified_lines(results)
    return rows, "\n".join(lines) + "\n"


def simplified_lines(results: dict[str, list[dict]]) -> list[str]:
    """For runs that simplified (meSimp): the hidden sizes of the model tested and
    the forward pass against the unsimplified model, as each run measured it."""
    lines = []
    for method, summaries in results.items():
        runs = [s["simplify"] for s in summaries if "simplify" in s]
        if not runs:
            continue
        sizes = "; ".join("-".join(map(str, r["sizes_at_best"])) for r in runs)
        lines += ["", f"{method}: hidden units of the model tested (per seed): {sizes}"]
        batches = sorted({f["batch"] for r in runs for f in r["forward"]})
        for batch in batches:
            speedups = [f["speedup"] for r in runs for f in r["forward"] if f["batch"] == batch]
            m, sd = mean_std(speedups)
            lines.append(f"{method}: forward at batch {batch}, final model vs unsimplified: {m:.2f}x ± {sd:.2f}")
    return lines


def plot(all_rows: dict[str, list[dict]], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install '.[plot]')", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = [name for name, rows in all_rows.items() if rows]
    if not studies:
        return
    fig, axes = plt.subplots(1, len(studies), figsize=(5.5 * len(studies), 4.5), squeeze=False)
    markers = "osD^v<>pPX*h"
    for ax, name in zip(axes[0], studies):
        rows = all_rows[name]
        dense = [r for r in rows if r["method"].startswith("dense")]
        # The scale is set by the methods near dense; one far below (a
        # collapsed run) is drawn on the bottom edge with its value.
        low = (dense[0]["mean"] - 2.0) if dense else min(r["mean"] for r in rows) - 0.5
        clipped = 0
        for i, r in enumerate(rows):
            y = max(r["mean"], low + 0.05)
            ax.errorbar(
                r["kept_fraction"],
                y,
                yerr=r["std"] if r["mean"] > low else None,
                fmt=markers[i % len(markers)],
                capsize=3,
                label=r["method"],
            )
            if r["mean"] <= low:
                ax.annotate(
                    f"{r['method']}: {r['mean']:.1f} %",
                    (r["kept_fraction"], y),
                    textcoords="offset points",
                    xytext=(6, 2 + 10 * clipped),
                    fontsize=7,
                )
                clipped += 1
        if dense:  # the bar every method is measured against
            ax.axhline(dense[0]["mean"], color="0.5", linestyle="--", linewidth=0.8)
        ax.set_ylim(bottom=low)
        ax.set_xscale("log")
        ax.set_xlabel("kept fraction of dy (log)")
        ax.set_ylabel("test accuracy at best dev (%)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--study", nargs="+", default=["mnist-adam"], choices=[*STUDIES, "all"])
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods (names as in the table)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--epochs", type=int, default=None, help="override a study's epochs (a shorter finished run is continued)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="trainings run at once, one thread each (default 1)")
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    parser.add_argument("--rerun", action="store_true", help="train again even where a summary exists")
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: tabulate the runs that exist under --out"
    )
    args = parser.parse_args(argv)
    names = list(STUDIES) if "all" in args.study else args.study

    jobs = [
        (name, method, seed)
        for name in names
        for method in STUDIES[name].methods
        if args.methods is None or method in args.methods
        for seed in args.seeds
    ]
    # A torch study's dense run comes out of its plain run: read it after.
    after = {job for job in jobs if STUDIES[job[0]].torch and job[1] == "dense"}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = dict(
            zip(
                [j for j in jobs if j not in after],
                pool.map(lambda job: run_one(*job, args), [j for j in jobs if j not in after]),
            )
        )
    done.update({job: run_one(*job, args) for job in after})
    summaries = [done[job] for job in jobs]
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in names}
    for (name, method, _seed), summary in zip(jobs, summaries):
        if summary is not None:
            results[name].setdefault(method, []).append(summary)

    all_rows, text = {}, ""
    for name in names:
        all_rows[name], block = table(name, results[name])
        text += block + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "study.json", all_rows)
    with atomic_open(args.out / "study.md", "w") as handle:
        handle.write(text)
    plot(all_rows, args.out / "study.png")
    print(f"wrote {args.out / 'study.json'}, study.md, study.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
