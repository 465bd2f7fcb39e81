"""The ``meprop`` command: ``meprop train TASK [options]`` and ``meprop bench [options]``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .data import DatasetNotFoundError, IdxFormatError
from .data.paths import ChecksumError
from .train import CheckpointError, OutputWriteError, TrainingDiverged, TrainingInterrupted
from .train.plots import plot_summary

# Each task is a module meprop_native.tasks.<name> with HELP, add_arguments(parser)
# and run(args) -> summary.
TASKS = ("mnist", "pos", "parse")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``meprop`` (``meprop train <task> [options]``)."""
    parser = argparse.ArgumentParser(
        prog="meprop",
        description="Train networks on the CPU with meProp (minimal effort back-propagation): "
        "the backward pass of every linear layer keeps only the k largest-magnitude entries of "
        "the output gradient.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a model on one of the paper's tasks",
        description="Train a model on one of the paper's tasks.",
    )
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in TASKS:
        task = importlib.import_module(f".tasks.{name}", __package__)
        task_parser = tasks.add_parser(name, help=task.HELP, description=task.HELP + ".")
        task.add_arguments(task_parser)
        task_parser.set_defaults(run=task.run)
    bench = commands.add_parser(
        "bench",
        help="time meProp against dense backprop (this library, NumPy, PyTorch) on this machine",
        description="Time top-k, a linear layer's backward and a whole training step, meProp against "
        "this library's dense path, NumPy and PyTorch (when installed), on this machine and these shapes.",
    )
    from .bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    return parser


class OutputDirectoryError(ValueError):
    """--out cannot take this run: it holds another one, or it cannot be written."""


def check_output_directory(out: Path, resume: bool, overwrite: bool) -> None:
    """Before anything is loaded or trained: refuse to replace a run silently, and
    fail now (not after training) when the directory cannot be written."""
    if resume and overwrite:
        raise OutputDirectoryError("--resume and --overwrite contradict each other: choose one")
    if not resume and not overwrite and (out / "checkpoint.npz").exists():
        raise OutputDirectoryError(
            f"{out} already holds a run (checkpoint.npz): pass --resume to continue it, --overwrite to start "
            "over in its place, or choose another --out"
        )
    # Probe the directory, or the nearest ancestor that exists (it would be
    # created there), with a temporary file; nothing is left behind.
    probe = out.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputDirectoryError(f"--out {out}: {probe} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".meprop-write-check-"):
            pass
    except OSError as error:
        raise OutputDirectoryError(f"cannot write to --out {out}: {error.strerror or error}") from error


def fail(message: str, code: int) -> int:
    """Says what went wrong on stderr, as argparse does; the exit code.

    In a data-parallel run the message names the rank, and the whole job is
    ended: the other ranks would otherwise wait for this one forever.
    """
    from .distributed import abort_job, launched_by_mpi

    if launched_by_mpi():
        abort_job(message)
    print(f"meprop: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``meprop`` (see :func:`run_command`); in a data-parallel run, an
    unexpected error on any rank ends the whole job with a message naming the rank."""
    from .distributed import run_or_abort

    return run_or_abort(lambda: run_command(argv))


def run_command(argv: Sequence[str] | None = None) -> int:
    """Runs ``meprop`` with argv (default: sys.argv[1:]); returns the exit code.

    0: trained; 2: bad data, checkpoint or option (message on stderr); 3: the
    loss diverged; 4: an output could not be written (no space, I/O error; the
    last checkpoint is intact); 130: stopped by SIGINT/SIGTERM after saving a
    checkpoint.
    Options argparse rejects exit with 2 through SystemExit.
    """
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        try:
            args.run(args)
        except (ValueError, OSError) as error:
            return fail(str(error), 2)
        return 0
    try:
        check_output_directory(args.out, resume=args.resume, overwrite=args.overwrite)
        summary = args.run(args)
    except (DatasetNotFoundError, ChecksumError, IdxFormatError, CheckpointError, ValueError) as error:
        return fail(str(error), 2)
    except MemoryError:
        return fail("not enough memory for this model and data (try a smaller --hidden, --layers or --batch-size)", 2)
    except TrainingDiverged as error:
        return fail(str(error), 3)
    except OutputWriteError as error:
        return fail(
            f"{error}. Mend the cause, then run again with --resume to continue from the last checkpoint written", 4
        )
    except TrainingInterrupted as error:
        print(f"meprop: {error}", file=sys.stderr)
        return 130
    from .distributed import current_world

    if current_world().rank != 0:  # rank 0 writes and reports the run
        return 0
    plotted = plot_summary(summary, args.out / "curves.png")
    brief = {key: summary[key] for key in ("metric", "best_dev", "best_epoch", "test_at_best_dev", "time")}
    print(json.dumps(brief, indent=2))
    print(
        f"wrote {args.out}/summary.json, metrics.jsonl, best_model.npz"
        + (", curves.png" if plotted else " (install matplotlib for curves.png)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
