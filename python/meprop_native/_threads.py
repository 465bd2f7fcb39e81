"""One thread pool at a time.

The kernels run on OpenMP; NumPy's matrix products run on its BLAS pool. Both
pools keep their threads spinning for a while after each call so that the next
call starts at once. When both spin on the same cores, each steals the cores the
other is computing on, and a layer step becomes 20-40x slower.

The policy: meprop's OpenMP pool keeps libgomp's default spinning, because on
virtual machines a sleeping worker can take up to a millisecond to wake (a
fully passive pool measured 10-20x slower backward steps here). Instead, while
meprop kernels and NumPy products alternate (a training loop), BLAS runs on one
thread, so it has no worker threads to spin: :func:`thread_limits` does that
and restores both settings on exit. Outside such loops nothing is changed.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

from . import _core

# The library's limit (meprop::max_threads() in C++): far above one thread a
# core, far below where OpenMP fails to create threads.
MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Sets how many threads meprop's kernels use (1 <= n <= 1024), process-wide.

    ValueError names the limit for any other count (a count that is not an
    integer is a TypeError).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"thread count must be an integer, got {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"thread count must be in [1, {MAX_THREADS}], got {n}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """How many threads meprop's kernels use (default: OMP_NUM_THREADS or the cores)."""
    return int(_core.get_num_threads())


@contextlib.contextmanager
def thread_limits(n: int | None = None, blas: int = 1) -> Iterator[None]:
    """Runs meprop's kernels on ``n`` threads and BLAS on ``blas`` threads inside.

    ``n=None`` keeps meprop's current count. The default gives BLAS one thread,
    the setting for loops that alternate NumPy products and meprop kernels.
    Both settings are restored on exit.
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
