"""What every task does once its data and model are built: the optimizer, the
trainer's configuration, the thread limits, fitting and saving the best model.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .. import set_num_threads, thread_limits
from ..nn import Parameter
from ..optim import OPTIMIZERS, Adam, Optimizer
from ..train import TrainConfig, Trainer
from ..train.atomic import write_arrays


def learning_rate(args: argparse.Namespace, defaults: dict[str, float]) -> float:
    """--lr as given, else the task's default for the optimizer."""
    return args.lr if args.lr is not None else defaults[args.optimizer]


def build_optimizer(args: argparse.Namespace, parameters: list[Parameter], lr: float) -> Optimizer:
    """The optimizer the options name; Adam lazy where the task offers --lazy and it is given."""
    if args.optimizer == "adam":
        return Adam(parameters, lr=lr, clip=args.clip, lazy=getattr(args, "lazy", False))
    return OPTIMIZERS[args.optimizer](parameters, lr=lr, clip=args.clip)


def train_config(args: argparse.Namespace, **task_settings: Any) -> TrainConfig:
    """The trainer's configuration from the options every task shares, and the task's own."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        steps_per_epoch=args.steps_per_epoch,
        evals_per_epoch=args.evals_per_epoch,
        **task_settings,
    )


def fit_and_save(trainer: Trainer, args: argparse.Namespace) -> dict[str, Any]:
    """Trains (or resumes) with the thread options; writes the best-dev weights; the summary."""
    world = trainer.world
    if args.threads is not None:
        set_num_threads(args.threads)
    elif world.distributed:
        # The host's cores shared among the ranks on it: one pool per core.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        set_num_threads(max(1, cores // world.local_size))
    # One busy pool: the kernels own the cores, BLAS (the dense products) runs on one.
    with thread_limits(blas=1):
        summary = trainer.fit(resume=args.resume)
    # The trainer leaves the best-dev weights in the model.
    if trainer.writes:
        write_arrays(args.out / "best_model.npz", trainer.model.state_dict())
    return summary
