"""Trains a small MLP on synthetic data; run alone or under mpiexec by
tests/test_distributed.py, which compares the weights the runs write.

Usage: python tests/mpi_worker.py OUT_DIR OPTIONS_JSON
OPTIONS_JSON holds mlp() options (k, mode, dropout, selection), the
optimizer's name, the epochs and the batch size; rank 0 writes the run's
files into OUT_DIR (checkpoint.npz holds the last weights and every state).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from meprop_native.distributed import run_or_abort
from meprop_native.nn import mlp
from meprop_native.optim import OPTIMIZERS
from meprop_native.train import ArrayDataset, Splits, TrainConfig, Trainer


def main(out: Path, options: dict) -> int:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((240, 30)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) > 0).astype(np.int64) + 2 * (x[:, 4] > 0)
    data = Splits(ArrayDataset(x[:200], y[:200]), ArrayDataset(x[200:220], y[200:220]), ArrayDataset(x[220:], y[220:]))
    model = mlp(
        [30, 40, 40, 4],
        k=options.get("k"),
        mode=options.get("mode", "per_example"),
        dropout=options.get("dropout", 0.0),
        seed=3,
        selection=options.get("selection"),
    )
    optimizer = OPTIMIZERS[options.get("optimizer", "adam")](model.parameters(), lr=options.get("lr", 0.01))
    config = TrainConfig(epochs=options.get("epochs", 2), batch_size=options.get("batch", 10), progress=False)
    trainer = Trainer(model, optimizer, data, config, out)
    if trainer.world.rank == options.get("fail_rank"):
        step = optimizer.step
        calls = [0]

        def failing_step() -> None:
            calls[0] += 1
            if calls[0] == options["fail_step"]:
                raise RuntimeError(f"injected failure at step {calls[0]}")
            step()

        optimizer.step = failing_step  # type: ignore[method-assign]
    trainer.fit(resume=options.get("resume", False))
    return 0


if __name__ == "__main__":
    sys.exit(run_or_abort(lambda: main(Path(sys.argv[1]), json.loads(sys.argv[2]))))
