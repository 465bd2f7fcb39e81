"""Forward of one linear layer: the library's kernel against NumPy's BLAS GEMM.

    python benchmarks/bench_forward.py [--threads 1] [--quick]

For each batch size, y = x W^T + b on a 784 -> 500 layer (the paper's first
MNIST layer), float32, with rotating inputs; BLAS and the kernel get the same
number of threads. The Python layer uses the kernel from the batch size
``meprop_native.nn.linear.NATIVE_FORWARD_MIN_BATCH`` on; this is the
measurement that picks it (``--n-in``/``--n-out`` for other layers).

Limit: the layer is 392k multiply-adds per example on 1.5 MB of weights. At
B = 1 both are bound by reading W; from a few examples on by the FMA units.
One core here does about 117 G float32 multiply-adds a second (two 512-bit
FMA pipes, measured with independent FMA chains), ~3.4 us per example: at
B = 10 the kernel's 68 us is about half of that peak.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np
from _timing import FULL, QUICK, format_ns, idle_pause, import_meprop, machine_info, measure, write_json_atomic

meprop = import_meprop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1,4,10,16,32,64,128")
    parser.add_argument("--n-in", type=int, default=784)
    parser.add_argument("--n-out", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/forward.json")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    cfg = QUICK if args.quick else FULL
    rng = np.random.default_rng(0)
    W = rng.standard_normal((args.n_out, args.n_in)).astype(np.float32)
    b = rng.standard_normal(args.n_out).astype(np.float32)
    meprop.set_num_threads(args.threads)
    rows = []
    print(f"linear forward {args.n_in} -> {args.n_out}, float32, {args.threads} thread(s)")
    print(f"{'B':>5} {'BLAS':>10} {'kernel':>10} {'BLAS/kernel':>12}")
    with threadpool_limits(args.threads):
        for batch in (int(v) for v in args.batches.split(",")):
            xs = [rng.random((batch, args.n_in), dtype=np.float32) for _ in range(8)]
            blas = measure([lambda x=x: np.add(x @ W.T, b) for x in xs], cfg)
            idle_pause()
            kernel = measure([lambda x=x: meprop._core.linear_forward(x, W, b) for x in xs], cfg)
            idle_pause()
            ratio = blas.median_ns / kernel.median_ns
            rows.append({"batch": batch, "blas": blas.as_dict(), "kernel": kernel.as_dict(), "ratio": ratio})
            print(f"{batch:>5} {format_ns(blas.median_ns):>10} {format_ns(kernel.median_ns):>10} {ratio:>11.2f}x")
    write_json_atomic(args.out, {"machine": machine_info(None, meprop, args.threads), "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
