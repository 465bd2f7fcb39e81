"""Softmax cross-entropy over class scores."""

from __future__ import annotations

import numpy as np

from .. import _core


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, batch_rows: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (B, C) against int ``labels`` (B,).

    Returns the loss and its gradient with respect to the logits, (B, C), in
    the logits' dtype. ``batch_rows`` is the size of the mini-batch that the
    mean runs over when these B rows are one shard of it (data parallelism;
    default B): the gradient is divided by it, the loss stays the mean of
    these rows. One native pass (``_core.softmax_cross_entropy``): the NumPy
    form is a dozen array operations, at batch 10 longer than a meProp
    layer's backward.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim != 2 or np.shape(labels) != (logits.shape[0],):
        raise ValueError(f"expected logits (B, C) and labels (B,), got {np.shape(logits)} and {np.shape(labels)}")
    if logits.shape[0] == 0:
        raise ValueError("empty batch: the mean cross-entropy of no examples is undefined")
    return _core.softmax_cross_entropy(logits, labels, batch_rows)
