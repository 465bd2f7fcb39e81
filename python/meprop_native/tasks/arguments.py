"""Command-line options every ``meprop train`` task shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..nn.init import INITS


def add_clip_argument(group: argparse._ArgumentGroup) -> None:
    """--clip: element-wise gradient clipping, on by default as in the paper's code."""
    group.add_argument("--clip", type=float, default=5.0,
                       help="clip each gradient element to [-clip, clip]; 0 disables (default 5, as the paper's code)")


def add_init_argument(group: argparse._ArgumentGroup, default: str) -> None:
    """--init: the weight initialisation of the linear products (meprop_native.nn.init)."""
    group.add_argument("--init", choices=INITS, default=default,
                       help=f"weight initialisation (default {default}). paper: weights normal with sd "
                            "sqrt(6 / (fan_in + fan_out)), biases 0, as the paper authors' code; pytorch: "
                            "uniform in +-1/sqrt(fan_in), as torch.nn.Linear")


def add_lazy_argument(group: argparse._ArgumentGroup) -> None:
    """--lazy: Adam moves only the rows that received gradient."""
    group.add_argument("--lazy", action="store_true",
                       help="Adam: update only rows that received gradient (default: every row, as the paper)")


def add_run_arguments(parser: argparse.ArgumentParser, task: str, files: str,
                      examples: str) -> argparse._ArgumentGroup:
    """The "run" group: threads, data, output, resume, progress and smoke-run limits.

    ``files`` says what the data directory holds and ``examples`` what one
    training example is (for --train-limit). Returns the group, for the
    task's own run options.
    """
    run = parser.add_argument_group("run")
    run.add_argument("--threads", type=int, default=None,
                     help="threads for the native kernels (default: all cores); BLAS gets one while training")
    run.add_argument("--data-dir", type=Path, default=None,
                     help=f"directory with {files}; default: $MEPROP_DATA, then the user cache dir, "
                          "downloading there if absent")
    run.add_argument("--out", type=Path, default=Path("runs") / task,
                     help=f"output directory for checkpoint, metrics, summary and plot (default runs/{task})")
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    run.add_argument("--train-limit", type=int, default=None,
                     help=f"use only the first N training {examples} (smoke runs)")
    run.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    run.add_argument("--evals-per-epoch", type=int, default=1,
                     help="evaluations of dev and test per epoch, evenly spaced, the last at its end; the best "
                          "dev score over all of them picks the model (default 1; the paper authors' MNIST "
                          "code used 11)")
    return run
