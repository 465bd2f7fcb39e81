"""Command-line options every ``meprop train`` task shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from .._threads import MAX_THREADS
from ..nn.init import INITS
from ..optim import OPTIMIZERS
from ..train.simplify import SimplifyConfig


def fraction(low_open: bool) -> Callable[[str], float]:
    """An argparse type: a number in [0, 1] ((0, 1] when low_open)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not ((value > 0.0 if low_open else value >= 0.0) and value <= 1.0):
            raise argparse.ArgumentTypeError(f"must be in {'(0' if low_open else '[0'}, 1], got {text}")
        return value

    return parse


def count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum (and <= maximum), checked before anything runs."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be in [{minimum}, {maximum}], got {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_clip_argument(group: argparse._ArgumentGroup) -> None:
    """--clip: element-wise gradient clipping, on by default as in the paper's code."""
    group.add_argument(
        "--clip",
        type=float,
        default=5.0,
        help="clip each gradient element to [-clip, clip]; 0 disables (default 5, as the paper's code)",
    )


def add_init_argument(group: argparse._ArgumentGroup, default: str) -> None:
    """--init: the weight initialisation of the linear products (meprop_native.nn.init)."""
    group.add_argument(
        "--init",
        choices=INITS,
        default=default,
        help=f"weight initialisation (default {default}). paper: weights normal with sd "
        "sqrt(6 / (fan_in + fan_out)), biases 0, as the paper authors' code; pytorch: "
        "uniform in +-1/sqrt(fan_in), as torch.nn.Linear",
    )


def add_mode_argument(group: argparse._ArgumentGroup) -> None:
    """--mode of the MLP tasks: how the Linear layers back-propagate."""
    group.add_argument(
        "--mode",
        choices=["per_example", "unified", "dense"],
        default="per_example",
        help="per_example: meProp (default); unified: one top-k set per mini-batch; "
        "dense: ordinary backprop through the same kernels (the baseline)",
    )


def add_optimisation_arguments(
    parser: argparse.ArgumentParser,
    default_optimizer: str,
    default_lr: dict[str, float],
    batch: tuple[int, str],
    epochs: tuple[int, str],
    lazy: bool = True,
    lazy_default: bool = False,
) -> argparse._ArgumentGroup:
    """The "optimisation" group every task shares: optimizer, learning rate, clipping,
    (lazy Adam, on by default where ``lazy_default``), mini-batch size, epochs and
    seed. ``batch`` and ``epochs`` are each a default and the help text that says
    what it is."""
    group = parser.add_argument_group("optimisation")
    group.add_argument(
        "--optimizer", choices=sorted(OPTIMIZERS), default=default_optimizer, help=f"default {default_optimizer}"
    )
    rates = ", ".join(f"{name} {rate:g}" for name, rate in sorted(default_lr.items()))
    group.add_argument("--lr", type=float, default=None, help=f"learning rate (default: {rates})")
    add_clip_argument(group)
    if lazy:
        add_lazy_argument(group, lazy_default)
    group.add_argument("--batch-size", type=count(1), default=batch[0], help=batch[1])
    group.add_argument("--epochs", type=count(1), default=epochs[0], help=epochs[1])
    group.add_argument(
        "--seed", type=int, default=0, help="seeds initialisation, shuffling and any dropout (default 0)"
    )
    return group


def add_lazy_argument(group: argparse._ArgumentGroup, default: bool = False) -> None:
    """--lazy / --no-lazy: whether Adam moves only the rows that received gradient."""
    group.add_argument(
        "--lazy",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="Adam: update only rows that received gradient; --no-lazy: every row, as the paper's code "
        + ("(default: lazy, see docs/results.md)" if default else "(the default)"),
    )


def add_run_arguments(parser: argparse.ArgumentParser, task: str, files: str, examples: str) -> argparse._ArgumentGroup:
    """The "run" group: threads, data, output, resume, progress and smoke-run limits.

    ``files`` says what the data directory holds and ``examples`` what one
    training example is (for --train-limit). Returns the group, for the
    task's own run options.
    """
    run = parser.add_argument_group("run")
    run.add_argument(
        "--threads",
        type=count(1, MAX_THREADS),
        default=None,
        help=f"threads for the native kernels, 1..{MAX_THREADS} (default: all cores); BLAS gets one while training",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"directory with {files}; default: $MEPROP_DATA, then the user cache dir, downloading there if absent",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("runs") / task,
        help=f"output directory for checkpoint, metrics, summary and plot (default runs/{task})",
    )
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that holds an earlier run (default: refuse, naming --resume)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    run.add_argument(
        "--train-limit", type=count(1), default=None, help=f"use only the first N training {examples} (smoke runs)"
    )
    run.add_argument("--steps-per-epoch", type=count(1), default=None, help="cap steps per epoch (smoke runs)")
    run.add_argument(
        "--evals-per-epoch",
        type=count(1),
        default=1,
        help="evaluations of dev and test per epoch, evenly spaced, the last at its end; the best "
        "dev score over all of them picks the model (default 1; the paper authors' MNIST "
        "code used 11)",
    )
    return run


# Error feedback's decay by default, per optimizer, from the accuracy study
# (docs/results.md). Under Adam 0.8, the value beside the memorized sparse
# back-propagation paper's MNIST row (arXiv 1905.10194): over 20 MNIST epochs
# (5 seeds) it beat 1.0 and, with k=25, matched dense. Under AdaGrad the
# paper's plain meProp already beats dense and error feedback lost accuracy
# (MNIST, 3 seeds), so it is off; under SGD the paper's method. A task whose
# study says otherwise passes its own table (MNIST turns it on under SGD, the
# parser off under Adam).
DEFAULT_MEMORY_DECAY = {"adam": 0.8, "adagrad": 0.0, "sgd": 0.0}


def default_memory_decay(args: argparse.Namespace) -> float:
    """--memory-decay as given, else the task's default for the optimizer."""
    if args.memory_decay is not None:
        return args.memory_decay
    return getattr(args, "memory_decay_defaults", DEFAULT_MEMORY_DECAY)[args.optimizer]


def add_memory_decay_argument(
    group: argparse._ArgumentGroup, defaults: dict[str, float] = DEFAULT_MEMORY_DECAY
) -> None:
    """--memory-decay: error feedback's decay (meprop_native.nn.Selection, nn.LSTM),
    by default ``defaults[optimizer]``."""
    shown = ", ".join(f"{name} {decay:g}" for name, decay in defaults.items())
    group.add_argument(
        "--memory-decay",
        type=fraction(low_open=False),
        default=None,
        help="error feedback: what top-k drops is remembered per unit and added back before the "
        f"next selection, times this decay in [0, 1] (default by optimizer: {shown}); "
        "0 turns it off: the paper's plain meProp",
    )
    group.set_defaults(memory_decay_defaults=dict(defaults))


def add_selection_arguments(
    parser: argparse.ArgumentParser, memory_decay_defaults: dict[str, float] = DEFAULT_MEMORY_DECAY
) -> argparse._ArgumentGroup:
    """The "meProp selection" group: error feedback, adaptive k, warm-up, random selection.

    Each option maps onto one of meprop_native.nn.Selection; selection_options()
    turns the parsed namespace into its keyword arguments.
    """
    group = parser.add_argument_group("meProp selection")
    add_memory_decay_argument(group, memory_decay_defaults)
    group.add_argument(
        "--select",
        choices=["topk", "random"],
        default="topk",
        help="topk: the largest |dy| (default); random: k of n uniformly (the paper's Figure 4 ablation)",
    )
    group.add_argument(
        "--k-rule",
        choices=["fixed", "tinyprop", "mass"],
        default="fixed",
        help="fixed: --k every step (default); tinyprop: TinyProp's ratio from sum |dy| against "
        "its running maximum; mass: the smallest k keeping --k-mass of each example's "
        "sum |dy|; both within --k-min .. --k-max",
    )
    group.add_argument("--k-min", type=count(1), default=None, help="smallest k of an adaptive rule (default 1)")
    group.add_argument(
        "--k-max", type=count(1), default=None, help="largest k of an adaptive rule (default: the layer size)"
    )
    group.add_argument(
        "--k-mass",
        type=fraction(low_open=True),
        default=0.9,
        help="the share of sum |dy| the mass rule keeps (default 0.9)",
    )
    group.add_argument(
        "--tinyprop-zeta",
        type=fraction(low_open=True),
        default=1.0,
        help="TinyProp's damping per layer from the output, in (0, 1] (default 1: none)",
    )
    add_warmup_arguments(group)
    return group


def add_warmup_arguments(group: argparse._ArgumentGroup) -> None:
    """--warmup-steps and --warmup: dense steps, or a ramp of k, before meProp's k applies."""
    group.add_argument(
        "--warmup-steps", type=count(0), default=0, help="steps of warm-up before meProp's k applies (default 0)"
    )
    group.add_argument(
        "--warmup",
        choices=["ramp", "dense"],
        default="ramp",
        help="ramp: k falls geometrically from n to k over the warm-up (default); dense: dense steps",
    )


def selection_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of meprop_native.nn.Selection that the options give."""
    return {
        "memory_decay": default_memory_decay(args),
        "select": args.select,
        "k_rule": args.k_rule,
        "k_min": args.k_min,
        "k_max": args.k_max,
        "k_mass": args.k_mass,
        "tinyprop_zeta": args.tinyprop_zeta,
        "warmup_steps": args.warmup_steps,
        "warmup": args.warmup,
    }


def add_simplify_arguments(parser: argparse.ArgumentParser, k: int) -> argparse._ArgumentGroup:
    """The "meSimp" group: --simplify and its schedule (meprop_native.train.simplify);
    ``k`` is the task's k under --simplify when --k is not given."""
    group = parser.add_argument_group("meSimp (model simplification)")
    group.add_argument(
        "--simplify",
        action="store_true",
        help="remove the hidden units that meProp seldom selects while training (meSimp, arXiv 1711.06528), "
        f"so that the forward pass shrinks too; k defaults to {k} and error feedback to off, as in meSimp",
    )
    group.add_argument(
        "--simplify-fraction",
        type=float,
        default=0.1,
        help="remove a unit that fewer than this fraction of the examples since the last simplification "
        "selected (default 0.1, meSimp's)",
    )
    group.add_argument(
        "--simplify-per-epoch", type=count(1), default=8, help="simplifications per epoch (default 8, meSimp's)"
    )
    group.add_argument(
        "--simplify-cycle",
        type=count(0),
        default=5,
        help="epochs per cycle: simplify in even cycles, train at the size reached in odd ones "
        "(default 5, meSimp's; 0: simplify in every epoch)",
    )
    group.add_argument(
        "--simplify-reset",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart the optimizer at the start of each cycle, as meSimp does (default: on)",
    )
    return group


def simplify_config(args: argparse.Namespace) -> SimplifyConfig | None:
    """meSimp's settings from the options, or None without --simplify."""
    if not getattr(args, "simplify", False):
        return None
    return SimplifyConfig(args.simplify_fraction, args.simplify_per_epoch, args.simplify_cycle, args.simplify_reset)


def apply_simplify_defaults(args: argparse.Namespace, k: int) -> None:
    """Under --simplify, meSimp's own setting where an option was left out: k, and no error feedback."""
    if getattr(args, "simplify", False):
        if args.k is None:
            args.k = k
        if args.memory_decay is None:
            args.memory_decay = 0.0
