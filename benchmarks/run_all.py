"""Runs the benchmarks of this folder one after another and sums up how each ended.

    python benchmarks/run_all.py --data-dir DATA            # every micro-benchmark
    python benchmarks/run_all.py --data-dir DATA --quick    # shorter, noisier runs where a script has --quick
    python benchmarks/run_all.py --data-dir DATA --reproductions   # and the paper's tables (hours)

Each script runs in its own process with its own defaults and writes its own
results under benchmarks/results/; this runner adds nothing to the numbers. A
script that needs the data sets gets --data-dir when one is given (otherwise
it finds them itself: environment variable, then cache). The exit status is 1
when any script failed: a kernel whose result differs from its reference
(bench_kernels.py), a default thread count that loses (bench_threads.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Script:
    name: str
    group: str  # "kernel", "step" or "reproduction"
    needs_data: bool = False
    has_quick: bool = False
    needs_torch: bool = False


SCRIPTS = (
    Script("bench_select.py", "kernel", has_quick=True),
    Script("bench_kernels.py", "kernel", has_quick=True),
    Script("bench_forward.py", "kernel", has_quick=True),
    Script("bench_lstm.py", "kernel", has_quick=True),
    Script("bench_torch_linear.py", "kernel", has_quick=True, needs_torch=True),
    Script("bench_torch_lstm.py", "kernel", has_quick=True, needs_torch=True),
    Script("bench_mnist_step.py", "step", needs_data=True),
    Script("bench_mnist_epoch.py", "step", needs_data=True),
    Script("bench_pos_step.py", "step", needs_data=True),
    Script("bench_parse_step.py", "step", needs_data=True),
    Script("bench_threads.py", "step"),
    Script("bench_torch_step.py", "step", has_quick=True, needs_torch=True),
    Script("reproduce_mnist.py", "reproduction", needs_data=True),
    Script("reproduce_pos.py", "reproduction", needs_data=True),
    Script("reproduce_parse.py", "reproduction", needs_data=True),
)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def command_for(script: Script, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(HERE / script.name)]
    if script.needs_data and args.data_dir is not None:
        command += ["--data-dir", str(args.data_dir)]
    if script.has_quick and args.quick:
        command.append("--quick")
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="MNIST and UD English EWT (see data README)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that have it")
    parser.add_argument("--reproductions", action="store_true", help="also run reproduce_*.py (hours)")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in SCRIPTS], help="run just these scripts")
    args = parser.parse_args(argv)

    chosen = [s for s in SCRIPTS if (args.reproductions or s.group != "reproduction")]
    if args.only:
        chosen = [s for s in SCRIPTS if s.name in args.only]
    have_torch = torch_available()
    outcomes = []
    for script in chosen:
        if script.needs_torch and not have_torch:
            outcomes.append((script, "skipped: torch is not installed", 0.0))
            continue
        print(f"== {script.name} ({script.group})", flush=True)
        start = time.monotonic()
        done = subprocess.run(command_for(script, args), cwd=HERE.parent)
        verdict = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        outcomes.append((script, verdict, time.monotonic() - start))

    print("\n| script | group | outcome | seconds |\n|---|---|---|---|")
    for script, verdict, seconds in outcomes:
        print(f"| {script.name} | {script.group} | {verdict} | {seconds:.0f} |")
    return 1 if any(verdict.startswith("FAILED") for _, verdict, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
