"""Training runs for the reproduction and study scripts in this folder.

A run lives in its own output directory. A finished one (it has a
``summary.json``) is reused, an interrupted one is continued from its
checkpoint, and ``--rerun`` starts it over, so a long reproduction can be
stopped and started again at any point without losing work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from meprop_native.cli import main as meprop_main

# The paper's meProp has no error feedback: the reproductions pass decay 0
# whatever a task's default is.
PAPER_MEPROP = ["--memory-decay", "0"]


def reproduction_parser(doc: str, out: str, epochs: int, optimizers: list[str]) -> argparse.ArgumentParser:
    """The options every reproduction script takes; a script adds its own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--optimizers", nargs="+", default=optimizers, choices=optimizers)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rerun", action="store_true", help="run again even if a summary exists")
    return parser


def continuation(out: Path, rerun: bool) -> list[str]:
    """The flag that continues the run in ``out`` or, with ``rerun``, starts it over."""
    if rerun:
        return ["--overwrite"]
    return ["--resume"] if (out / "checkpoint.npz").exists() else []


def shared_options(args: argparse.Namespace) -> list[str]:
    """The options every reproduction passes through from its own command line."""
    argv = []
    if args.data_dir:
        argv += ["--data-dir", str(args.data_dir)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if getattr(args, "train_limit", None):
        argv += ["--train-limit", str(args.train_limit)]
    return argv


def paper_run(task: str, options: list[str], out: Path, args: argparse.Namespace) -> dict:
    """``meprop train TASK OPTIONS`` with the paper's meProp into ``out``; its summary."""
    summary = out / "summary.json"
    if not summary.exists() or args.rerun:
        argv = ["train", task, *options, "--out", str(out), "--no-progress", *PAPER_MEPROP]
        argv += shared_options(args) + continuation(out, args.rerun)
        code = meprop_main(argv)
        if code != 0:
            raise SystemExit(f"run {out} failed with exit code {code}")
    return json.loads(summary.read_text())
