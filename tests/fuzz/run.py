"""Runs every fuzz harness under atheris for a while, one process each.

    python tests/fuzz/run.py --seconds 20          # the CI smoke run
    python tests/fuzz/run.py --seconds 1800        # a campaign (docs/reliability.md)

A harness that finds a failing input stops, leaves it as crash-* in --artifacts
and makes the run exit 1; the input then becomes a regression test
(tests/test_fuzz.py) before the fix.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = ("fuzz_topk", "fuzz_backward", "fuzz_lstm", "fuzz_optim", "fuzz_readers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=20, help="per harness (default 20)")
    parser.add_argument("--harness", nargs="+", choices=HARNESSES, default=list(HARNESSES))
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"))
    args = parser.parse_args(argv)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.harness:
        start = time.monotonic()
        command = [
            sys.executable,
            str(HERE / f"{name}.py"),
            f"-max_total_time={args.seconds}",
            f"-artifact_prefix={args.artifacts}/{name}-",
            "-print_final_stats=1",
            # Inputs long enough to fill a harness's largest arrays; libFuzzer
            # would otherwise start at a few bytes and grow them slowly.
            "-max_len=2048",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = done.stderr.splitlines()
        runs = next((line.split(":")[-1].strip() for line in lines if "number_of_executed_units" in line), "?")
        coverage = next((line.split("cov: ")[1].split()[0] for line in reversed(lines) if "cov: " in line), "?")
        verdict = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        elapsed = time.monotonic() - start
        print(f"{name}: {verdict}, {runs} inputs, {coverage} coverage edges, in {elapsed:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
            print(done.stderr[-4000:], file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
