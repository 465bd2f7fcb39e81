"""Softmax cross-entropy over class scores."""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, batch_rows: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (B, C) against int ``labels`` (B,).

    Returns the loss and its gradient with respect to the logits, (B, C).
    ``batch_rows`` is the size of the mini-batch that the mean runs over when
    these B rows are one shard of it (data parallelism; default B): the
    gradient is divided by it, the loss stays the mean of these rows.
    """
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (B, C) and labels (B,), got {logits.shape} and {labels.shape}")
    if logits.shape[0] == 0:
        raise ValueError("empty batch: the mean cross-entropy of no examples is undefined")
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    batch = np.arange(logits.shape[0])
    loss = float(np.mean(np.log(total[:, 0]) - shifted[batch, labels]))
    grad = exp / total
    grad[batch, labels] -= 1
    grad /= logits.shape[0] if batch_rows is None else batch_rows
    return loss, grad.astype(logits.dtype, copy=False)
