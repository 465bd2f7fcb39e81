"""Starting ranks from Python: where mpiexec is and the environment it needs.

For tools that launch ``mpiexec -n N meprop train ...`` themselves (the
benchmarks, the tests). Nothing here imports MPI.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the Open MPI wheel of ``.[mpi]`` puts it
    there), else the first on PATH, else None."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() else shutil.which("mpiexec")


def launch_environment(threads: int | None = None) -> dict[str, str]:
    """This process's environment for a new mpiexec: without the variables of an
    MPI job that may surround this one (a nested launch would join it), with
    Open MPI's two consents to run as root when this is root, and
    ``OMP_NUM_THREADS`` set to ``threads`` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Open MPI refuses root unless told twice
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env
