"""One process of tests/test_torch_ddp.py: the torch drop-in under
DistributedDataParallel (gloo, CPU). Usage: python tests/ddp_worker.py RANK
WORLD_SIZE PORT OUT; writes OUT/grads-RANK.pt after one step."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import meprop_native.torch as mt


def model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(mt.Linear(20, 32, k=4), torch.nn.ReLU(), mt.Linear(32, 5, k=2))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(12, 20, generator=generator), torch.randint(0, 5, (12,), generator=generator)


def main(rank: int, size: int, port: int, out: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        net = torch.nn.parallel.DistributedDataParallel(model())
        x, y = batch()
        lo, hi = rank * len(x) // size, (rank + 1) * len(x) // size
        loss = torch.nn.functional.cross_entropy(net(x[lo:hi]), y[lo:hi])
        loss.backward()  # DDP averages the gradients over the ranks here
        torch.save({name: p.grad for name, p in net.module.named_parameters()}, out / f"grads-{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
