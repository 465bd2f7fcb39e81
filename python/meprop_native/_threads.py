"""One thread pool at a time.

The kernels run on OpenMP; NumPy's matrix products run on its BLAS pool. When
both pools busy-wait for work on the same cores, each steals the cores the other
is computing on, and a layer step becomes 20-40x slower. The policy:

* meprop's OpenMP threads spin only briefly after a kernel, long enough for the
  next kernel of the same backward step to find them awake, then sleep
  (``GOMP_SPINCOUNT`` is set to 10000 before the kernels load, unless the user
  set it or ``OMP_WAIT_POLICY``). Fully passive threads cost a futex wake-up
  per kernel (measured: 2x slower backward steps); the default spin of libgomp
  keeps a core busy for milliseconds;
* :func:`thread_limits` gives meprop the cores and runs BLAS on one thread for
  the duration of a training loop, so BLAS never spins while meprop works.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def configure_openmp_wait_policy() -> None:
    """Makes idle OpenMP threads sleep soon; must run before the core is loaded."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"


def set_num_threads(n: int) -> None:
    """Sets how many threads meprop's kernels use (n >= 1), process-wide."""
    from . import _core

    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """How many threads meprop's kernels use."""
    from . import _core

    return int(_core.get_num_threads())


@contextlib.contextmanager
def thread_limits(n: int | None = None, blas: int = 1) -> Iterator[None]:
    """Runs meprop's kernels on ``n`` threads and BLAS on ``blas`` threads inside.

    The default gives the kernels every core they already had and BLAS one
    thread, the setting for training loops that alternate NumPy products and
    meprop kernels. Both settings are restored on exit.
    """
    from threadpoolctl import threadpool_limits

    previous = get_num_threads()
    if n is not None:
        set_num_threads(n)
    try:
        with threadpool_limits(limits=blas, user_api="blas"):
            yield
    finally:
        set_num_threads(previous)
