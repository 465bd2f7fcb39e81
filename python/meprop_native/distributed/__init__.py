"""Data-parallel training on MPI.

``mpiexec -n N meprop train ...`` runs N processes (ranks); each computes
the forward pass of its shard of every global mini-batch, and the layers
exchange what their backward needs (``layers.py``), so every rank applies the
same update. Without mpiexec :func:`current_world` is a world of one process
and nothing here imports MPI.
"""

from __future__ import annotations

from .launch import find_mpiexec, launch_environment
from .world import (
    LocalWorld,
    MPIWorld,
    World,
    abort_job,
    current_world,
    launched_by_mpi,
    run_or_abort,
    shard_bounds,
)

__all__ = [
    "LocalWorld",
    "MPIWorld",
    "World",
    "abort_job",
    "current_world",
    "find_mpiexec",
    "launch_environment",
    "launched_by_mpi",
    "run_or_abort",
    "shard_bounds",
]
