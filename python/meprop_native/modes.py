"""How much of dy a backward keeps: the check of k and the backward modes, once
for the NumPy layers and the torch drop-ins alike.

``per_example`` keeps each example's k largest entries, ``unified`` the k
columns with the largest sum over the batch, ``dense`` everything. ``k=None``
or ``k >= n`` is dense too, through the same kernels.
"""

from __future__ import annotations

import numbers

MODES = ("per_example", "unified", "dense")


def check_k(k: object, wrong_type: type[Exception] = ValueError) -> None:
    """Raises unless k is None (dense) or an integer >= 1; a bool is not an integer here.

    ``wrong_type`` is what a k that is no integer at all raises: ValueError in
    the NumPy layers, TypeError in the torch drop-ins (as torch's own do).
    """
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise wrong_type(f"k must be >= 1 (an integer) or None (dense), got {k!r} of type {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1 (an integer) or None (dense), got {k!r}")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def resolve_mode(
    k: int | None, mode: str, out_features: int, wrong_type: type[Exception] = ValueError
) -> tuple[int | None, str]:
    """Checks (k, mode) and returns what the kernels run: ``(None, "dense")`` when k keeps everything."""
    check_mode(mode)
    check_k(k, wrong_type)
    if mode == "dense" or k is None or k >= out_features:
        return None, "dense"
    return int(k), mode
