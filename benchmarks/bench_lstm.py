"""Backward of the LSTM's linear parts: meProp (top-k of each step's 4h gate
gradient) against dense backprop through the same kernels.

Usage::

    python benchmarks/bench_lstm.py                  # h=500, input 190, T=20, batch 1, k=5
    python benchmarks/bench_lstm.py --quick --json benchmarks/results/lstm.json

The paper's POS tagger: input 190 (word 50 + 7 features x 20), h = 500, one
sentence per batch; EWT sentences average 16 words, T = 20 is a typical
long one. For each k (dense = k None = 4h) one native backward call does the
whole backward through time: element-wise gate gradients (dense), top-k per
step, the recurrent product dh_{t-1} = W_hh^T mask(dz_t), and afterwards the
weight gradients of W_hh and W_ih and the input gradient dx from the kept
(step, row) pairs.

Reported per k, medians over repeats that rotate over a pool of different
random inputs (see ``_timing.py``):
  * ``backward``: the whole native call;
  * ``linear``: the call minus the element-wise gate math the kernel times
    itself (the paper's "backprop time": the linear transformations only);
and the dense/meProp ratios of both. A NumPy dense backward through time
(BLAS products, a Python loop over steps) is timed as a second baseline, so
the dense path of the native kernels is not a straw man, and the meProp
backward with its loop over steps in Python is timed to show what the native
recurrence saves. The forward (identical for both) is shown
for scale. Threads default to 1 (batch 1 runs one sequence, sequential in
time); BLAS gets 1 thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from _timing import FULL, QUICK, format_ns, idle_pause, import_meprop, machine_info, measure, write_json_atomic


def make_pool(rng, pool, T, n_in, h, dtype):
    """Random sentences: (x, forward cache, dh) each."""
    from meprop_native import _core

    W_ih = (rng.uniform(-1, 1, (4 * h, n_in)) / np.sqrt(h)).astype(dtype)
    W_hh = (rng.uniform(-1, 1, (4 * h, h)) / np.sqrt(h)).astype(dtype)
    b = (rng.uniform(-1, 1, 4 * h) / np.sqrt(h)).astype(dtype)
    offsets = np.array([0, T], dtype=np.int64)
    items = []
    for _ in range(pool):
        x = (0.3 * rng.standard_normal((T, n_in))).astype(dtype)
        cache = _core.lstm_forward(x @ W_ih.T + b, W_hh, offsets)
        dh = (0.05 * rng.standard_normal((T, h))).astype(dtype)
        items.append((x, cache, dh))
    return W_ih, W_hh, b, offsets, items


def gate_gradient(gates, cells, tanhs, dh_t, dc_next, t, dz_t):
    """Step t of the element-wise backward (one sequence from row 0): writes dz_t, returns dc_{t-1}."""
    h = dh_t.shape[0]
    i, f, g, o = gates[t, :h], gates[t, h : 2 * h], gates[t, 2 * h : 3 * h], gates[t, 3 * h :]
    tc = tanhs[t]
    dc = dc_next + dh_t * o * (1 - tc * tc)
    dz_t[:h] = dc * g * i * (1 - i)
    dz_t[h : 2 * h] = dc * cells[t - 1] * f * (1 - f) if t else 0
    dz_t[2 * h : 3 * h] = dc * i * (1 - g * g)
    dz_t[3 * h :] = dh_t * tc * o * (1 - o)
    return dc * f


def numpy_dense_backward(x, W_ih, W_hh, cache, dh):
    """Dense backward through time in NumPy (BLAS for every product): a second baseline."""
    gates, cells, tanhs, hidden = cache
    T, h = dh.shape
    dz = np.empty_like(gates)
    dh_next = np.zeros(h, dh.dtype)
    dc_next = np.zeros(h, dh.dtype)
    for t in range(T - 1, -1, -1):
        dc_next = gate_gradient(gates, cells, tanhs, dh[t] + dh_next, dc_next, t, dz[t])
        dh_next = dz[t] @ W_hh
    h_prev = np.zeros_like(hidden)
    h_prev[1:] = hidden[:-1]
    return dz @ W_ih, dz.T @ x, dz.T @ h_prev, dz.sum(0)


def python_loop_meprop_backward(x, W_ih, W_hh, cache, dh, k, topk):
    """meProp backward with the loop over steps in Python (NumPy element-wise
    math, the library's top-k, k-row products): what the native kernel replaces."""
    gates, cells, tanhs, hidden = cache
    T, h = dh.shape
    dz = np.empty_like(gates)
    kept = np.empty((T, k), dtype=np.int64)
    dh_next = np.zeros(h, dh.dtype)
    dc_next = np.zeros(h, dh.dtype)
    for t in range(T - 1, -1, -1):
        dc_next = gate_gradient(gates, cells, tanhs, dh[t] + dh_next, dc_next, t, dz[t])
        kept[t] = topk(dz[t], k)
        dh_next = dz[t, kept[t]] @ W_hh[kept[t]]
    values = np.take_along_axis(dz, kept, axis=1)
    dx = np.einsum("tk,tki->ti", values, W_ih[kept])
    h_prev = np.zeros_like(hidden)
    h_prev[1:] = hidden[:-1]
    rows, inverse = np.unique(kept, return_inverse=True)
    dW_ih = np.zeros((rows.size, x.shape[1]), x.dtype)
    dW_hh = np.zeros((rows.size, h), x.dtype)
    np.add.at(dW_ih, inverse.reshape(-1), (values[:, :, None] * x[:, None, :]).reshape(-1, x.shape[1]))
    np.add.at(dW_hh, inverse.reshape(-1), (values[:, :, None] * h_prev[:, None, :]).reshape(-1, h))
    return dx, rows, dW_ih, dW_hh, dz.sum(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=500)
    parser.add_argument("--input", type=int, default=190)
    parser.add_argument("--steps", type=int, default=20, help="sentence length T")
    parser.add_argument("--k", type=int, nargs="+", default=[5])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=60, help="timed calls for the linear-part medians")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    mp = import_meprop()
    from meprop_native import _core

    cfg = QUICK if args.quick else FULL
    dtype = np.dtype(args.dtype).type
    rng = np.random.default_rng(0)
    W_ih, W_hh, b, offsets, items = make_pool(rng, args.pool, args.steps, args.input, args.hidden, dtype)
    results = {"config": vars(args), "machine": machine_info(None, mp, args.threads), "cases": {}}
    with mp.thread_limits(blas=1):
        mp.set_num_threads(args.threads)
        fwd = measure([lambda x=x: _core.lstm_forward(x @ W_ih.T + b, W_hh, offsets) for x, _, _ in items], cfg)
        results["forward_ns"] = fwd.median_ns
        idle_pause()
        numpy_dense = measure(
            [lambda item=item: numpy_dense_backward(item[0], W_ih, W_hh, item[1], item[2]) for item in items], cfg
        )
        results["numpy_dense_backward_ns"] = numpy_dense.median_ns
        idle_pause()
        python_loop = measure(
            [
                lambda item=item: python_loop_meprop_backward(item[0], W_ih, W_hh, item[1], item[2], args.k[0], mp.topk)
                for item in items
            ],
            cfg,
        )
        results["python_loop_meprop_backward_ns"] = python_loop.median_ns
        for k in [None] + args.k:

            def call(item, k=k):
                x, (gates, cells, tanhs, hidden), dh = item
                return _core.lstm_backward(x, W_ih, W_hh, offsets, gates, cells, tanhs, hidden, dh, k)

            idle_pause()
            whole = measure([lambda item=item: call(item) for item in items], cfg)
            linear = []
            for r in range(args.repeats):
                t0 = time.perf_counter_ns()
                gate_seconds = call(items[r % len(items)])[-1]
                linear.append(time.perf_counter_ns() - t0 - gate_seconds * 1e9)
            name = "dense" if k is None else f"k={k}"
            results["cases"][name] = {
                "backward_ns": whole.median_ns,
                "backward_q1_ns": whole.q1_ns,
                "backward_q3_ns": whole.q3_ns,
                "linear_ns": statistics.median(linear),
            }
    dense = results["cases"]["dense"]
    print(
        f"LSTM h={args.hidden}, input {args.input}, T={args.steps}, batch 1, {args.dtype}, "
        f"{args.threads} thread(s); forward {format_ns(results['forward_ns'])}"
    )
    print(f"{'case':>7} {'backward':>10} {'linear parts':>13} {'speed-up backward':>18} {'speed-up linear':>16}")
    for name, c in results["cases"].items():
        print(
            f"{name:>7} {format_ns(c['backward_ns']):>10} {format_ns(c['linear_ns']):>13} "
            f"{dense['backward_ns'] / c['backward_ns']:17.1f}x {dense['linear_ns'] / c['linear_ns']:15.1f}x"
        )
    print(
        f"NumPy dense backward through time (BLAS products, Python loop over steps): "
        f"{format_ns(results['numpy_dense_backward_ns'])}; k={args.k[0]} is "
        f"{results['numpy_dense_backward_ns'] / results['cases'][f'k={args.k[0]}']['backward_ns']:.1f}x faster"
    )
    print(
        f"k={args.k[0]} with the loop over steps in Python instead of the native kernel: "
        f"{format_ns(results['python_loop_meprop_backward_ns'])} "
        f"({results['python_loop_meprop_backward_ns'] / results['cases'][f'k={args.k[0]}']['backward_ns']:.1f}x slower)"
    )
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
