"""Training steps of the POS tagger, dense against meProp k=5, in one process.

Usage::

    python benchmarks/bench_pos_step.py --data-dir ../data
    python benchmarks/bench_pos_step.py --data-dir ../data --optimizer adam --json benchmarks/results/pos_step.json

The reproduction (``reproduce_pos.py``) times whole runs one after another,
so on a shared machine the load can differ between the dense and the meProp
run. This script times both on the same sentences in alternating rounds: each
round runs ``--sentences`` training steps (one sentence each: forward, loss,
backward, optimizer step) with the dense tagger, then with the meProp one.
Both start from the same weights. Reported: the median over rounds of each
part of a round (forward, linear backprop, overall backprop, optimizer,
total) and the dense/meProp ratios. One thread for the kernels and BLAS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from _timing import STEP_PARTS, idle_pause, import_meprop, machine_info, training_step_times, write_json_atomic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--sentences", type=int, default=300, help="training steps per round (default 300)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--optimizer", choices=["adagrad", "adam"], default="adagrad")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    mp = import_meprop()
    from meprop_native.data.ud import load_ud_ewt
    from meprop_native.nn import softmax_cross_entropy
    from meprop_native.optim import OPTIMIZERS
    from meprop_native.tasks.pos.features import FeatureEncoder
    from meprop_native.tasks.pos.model import TaggedSentences, Tagger
    from meprop_native.tasks.pos.task import DEFAULT_LR

    ud = load_ud_ewt(args.data_dir)
    encoder = FeatureEncoder((s.forms for s in ud.train), (t for split in ud for s in split for t in s.xpos))
    data = TaggedSentences([encoder.encode(s.forms, s.xpos) for s in ud.train[: args.sentences]])
    batches = [data.batch(np.array([i])) for i in range(len(data))]
    tokens = sum(len(y) for _, y in batches)

    models = {}
    for name, k in (("dense", None), ("meprop", args.k)):
        model = Tagger(encoder.sizes(), len(encoder.tags), k=k, seed=0)
        opt = OPTIMIZERS[args.optimizer](model.parameters(), lr=DEFAULT_LR[args.optimizer], clip=5.0)
        models[name] = (model, opt)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in models}
    with mp.thread_limits(blas=1):
        mp.set_num_threads(args.threads)
        for _ in range(args.rounds):
            for name, (model, opt) in models.items():
                idle_pause()
                t = dict.fromkeys(STEP_PARTS, 0.0)
                for inputs, y in batches:
                    for part, seconds in training_step_times(model, opt, inputs, y, softmax_cross_entropy).items():
                        t[part] += seconds
                rounds[name].append(t)
    med = {name: {p: statistics.median(r[p] for r in rs) for p in STEP_PARTS} for name, rs in rounds.items()}
    print(
        f"POS tagger training steps, {args.optimizer}, {len(batches)} sentences ({tokens} tokens) per round, "
        f"{args.rounds} rounds, medians in seconds per round, {args.threads} thread(s)"
    )
    print(f"{'':8}" + "".join(f"{p:>18}" for p in STEP_PARTS))
    for name in med:
        print(f"{name:8}" + "".join(f"{med[name][p]:18.3f}" for p in STEP_PARTS))
    print(f"{'speed-up':8}" + "".join(f"{med['dense'][p] / med['meprop'][p]:17.2f}x" for p in STEP_PARTS))
    if args.json:
        write_json_atomic(
            args.json,
            {
                "config": {**vars(args), "data_dir": str(args.data_dir)},
                "tokens": tokens,
                "machine": machine_info(None, mp, args.threads),
                "median_s": med,
                "rounds": rounds,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
