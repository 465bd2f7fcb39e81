"""The processes of a run: one (no MPI) or the ranks that mpiexec started.

A world splits every global mini-batch into contiguous shards, one per rank
(rank r takes rows ``r*B//N`` to ``(r+1)*B//N``), gathers row blocks back in
rank order, sums, and counts the bytes each exchange carries. The shards do
not depend on anything but B and N, so every rank knows every shard's size
without asking.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Set by Open MPI (OMPI_*), MPICH and Intel MPI (PMI_*) and PMIx launchers in
# every process they start.
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")


def launched_by_mpi() -> bool:
    """True in a process that mpiexec (or an MPI launcher like it) started."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def shard_bounds(rows: int, size: int, rank: int) -> tuple[int, int]:
    """Rows [lo, hi) of a batch of ``rows`` that ``rank`` of ``size`` computes."""
    return rank * rows // size, (rank + 1) * rows // size


class World:
    """The interface the trainer and layers use; :class:`LocalWorld` is one process."""

    rank = 0
    size = 1
    local_size = 1  # ranks on this host

    def __init__(self) -> None:
        self.bytes_exchanged = 0  # payload of every exchange so far, as gathered or reduced
        self.seconds = 0.0  # wall time inside exchanges
        # Rows of the global mini-batch being trained on; the trainer sets it
        # before each step, the layers read it to gather and to shard.
        self.batch_rows = 0

    def shard(self, rows: int) -> tuple[int, int]:
        """This rank's rows of a global batch of ``rows``."""
        return shard_bounds(rows, self.size, self.rank)

    def gather_rows(self, local: np.ndarray, rows: int) -> np.ndarray:
        """Every rank's shard of a (rows, ...) array, in rank order; ``local`` is this rank's."""
        return local

    def sum_scalars(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks, in rank order."""
        return values

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``array`` over the ranks."""
        return array

    def abort(self, message: str) -> None:
        """Ends the whole job after ``message`` (on stderr)."""
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(1)

    @property
    def distributed(self) -> bool:
        return self.size > 1


class LocalWorld(World):
    """A run of one process: every exchange is the identity and costs nothing."""


class MPIWorld(World):
    """The ranks of ``MPI.COMM_WORLD``, through mpi4py."""

    def __init__(self, comm: Any) -> None:
        super().__init__()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        host = comm.Split_type(_split_type_shared(), key=self.rank)
        self.local_size = host.Get_size()
        host.Free()

    def gather_rows(self, local: np.ndarray, rows: int) -> np.ndarray:
        local = np.ascontiguousarray(local)
        width = int(np.prod(local.shape[1:], dtype=np.int64))
        bounds = [shard_bounds(rows, self.size, r) for r in range(self.size)]
        lo, hi = bounds[self.rank]
        if local.shape[0] != hi - lo:
            raise ValueError(f"rank {self.rank} holds {local.shape[0]} rows of a shard of {hi - lo}")
        counts = [(b - a) * width for a, b in bounds]
        full = np.empty((rows, *local.shape[1:]), dtype=local.dtype)
        start = time.perf_counter()
        self.comm.Allgatherv(local, [full, counts])
        self.seconds += time.perf_counter() - start
        self.bytes_exchanged += full.nbytes
        return full

    def sum_scalars(self, values: list[float]) -> list[float]:
        local = np.asarray(values, dtype=np.float64)
        every = np.empty((self.size, local.size), dtype=np.float64)
        start = time.perf_counter()
        self.comm.Allgather(local, every)
        self.seconds += time.perf_counter() - start
        totals = np.zeros(local.size)
        for contribution in every:  # in rank order: the same sums on every rank
            totals += contribution
        return [float(t) for t in totals]

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        from mpi4py import MPI

        array = np.ascontiguousarray(array)
        total = np.empty_like(array)
        start = time.perf_counter()
        self.comm.Allreduce(array, total, op=MPI.SUM)
        self.seconds += time.perf_counter() - start
        self.bytes_exchanged += total.nbytes
        return total

    def abort(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        self.comm.Abort(1)


def _split_type_shared() -> int:
    from mpi4py import MPI

    return int(MPI.COMM_TYPE_SHARED)


_WORLD: World | None = None


def current_world() -> World:
    """The world of this process, made once: MPI's when mpiexec started it.

    Raises RuntimeError, naming the install command, when mpiexec started
    this process but mpi4py is missing: training alone in each of N
    processes would silently run the job N times.
    """
    global _WORLD
    if _WORLD is None:
        if not launched_by_mpi():
            _WORLD = LocalWorld()
        else:
            try:
                from mpi4py import MPI
            except ImportError as error:
                raise RuntimeError(
                    "this process was started by mpiexec but mpi4py is not installed: "
                    "pip install 'meprop-native[mpi]' (mpi4py and Open MPI)"
                ) from error
            _WORLD = MPIWorld(MPI.COMM_WORLD) if MPI.COMM_WORLD.Get_size() > 1 else LocalWorld()
    return _WORLD


def run_or_abort(run: Callable[[], int]) -> int:
    """``run()``; under mpiexec an exception on this rank ends the whole job.

    The other ranks would otherwise wait for this one in their next exchange
    forever. The message names the rank and the error; Open MPI then stops
    every process of the job.
    """
    if not launched_by_mpi():
        return run()
    try:
        return run()
    except Exception as error:  # any error: no rank may wait forever
        abort_job(f"{type(error).__name__}: {error}")
        raise


def abort_job(message: str) -> None:
    """Ends a data-parallel job with ``message``, naming this rank; returns alone."""
    world = current_world()
    if world.distributed:
        world.abort(f"meprop: error on rank {world.rank} of {world.size}: {message}")
