"""The torch drop-in under torch.nn.parallel.DistributedDataParallel (gloo,
CPU, two processes): its gradients are ordinary dense tensors, so DDP's
averaging gives every rank the gradient of the whole batch."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ddp_with_two_processes_gives_the_whole_batch_gradient(tmp_path: Path) -> None:
    sys.path.insert(0, str(WORKER.parent))
    try:
        import ddp_worker
    finally:
        sys.path.pop(0)
    port = _free_port()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(rank), "2", str(port), str(tmp_path)], stderr=subprocess.PIPE
        )
        for rank in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-3000:]
    # The same model on the whole batch in this process. The two shards are
    # equal (6 and 6 rows), so the average of the shards' mean losses is the
    # whole batch's mean and per-example top-k selects the same entries.
    net = ddp_worker.model()
    x, y = ddp_worker.batch()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    for rank in range(2):
        grads = torch.load(tmp_path / f"grads-{rank}.pt")
        for name, p in net.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)
