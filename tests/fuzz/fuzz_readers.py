"""Fuzz harness: the readers of untrusted files -- IDX (MNIST), CoNLL-U (UD)
and checkpoints. Each either returns what it promises or raises its own named
error (IdxFormatError, ConlluFormatError, CheckpointError); anything else is a
finding. The inputs are valid files, damaged by the fuzzer's bytes (flipped
bytes, truncation, appended garbage), so that the fuzzer starts deep inside
each format rather than at its first magic number.

    python tests/fuzz/fuzz_readers.py -max_total_time=60
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fuzz._bytes import Bytes, fuzz_main
from meprop_native.data.idx import IdxFormatError, parse_idx
from meprop_native.data.ud import ConlluFormatError, Sentence, read_conllu
from meprop_native.train import CheckpointError, load_checkpoint, save_checkpoint


def _idx_file() -> bytes:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    return bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()


CONLLU = (
    b"# sent_id = 1\n"
    b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n"
    b"2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n"
    b"3\tbarks\tbark\tVERB\tVBZ\t_\t0\troot\t_\t_\n"
    b"4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\n\n"
)


def _checkpoint_file() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "checkpoint.npz"
        save_checkpoint(path, {"model/w": np.ones((2, 3), np.float32)}, {"format": 4, "position": {"epoch": 1}})
        return path.read_bytes()


VALID = {"idx": _idx_file(), "conllu": CONLLU, "checkpoint": _checkpoint_file()}


def damage(original: bytes, source: Bytes) -> bytes:
    data = bytearray(original)
    for _ in range(source.int_in(0, 4)):  # flip bytes
        if data:
            data[source.int_in(0, len(data) - 1)] = source.int_in(0, 255)
    cut = source.int_in(0, 2)
    if cut == 1:  # truncate
        data = data[: source.int_in(0, len(data))]
    elif cut == 2:  # append
        data += source.rest()[:64]
    return bytes(data)


def check(data: bytes) -> None:
    source = Bytes(data)
    kind = source.choice(tuple(VALID))
    payload = damage(VALID[kind], source)
    if kind == "idx":
        try:
            array = parse_idx(payload)
        except IdxFormatError:
            return
        assert isinstance(array, np.ndarray)
        return
    fd, name = tempfile.mkstemp(suffix="." + kind)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        if kind == "conllu":
            try:
                sentences = read_conllu(name)
            except ConlluFormatError:
                return
            assert sentences and all(isinstance(s, Sentence) for s in sentences)
            for s in sentences:  # what the reader promises: a tree over the words
                assert len(s.heads) == len(s.forms) and sum(h == 0 for h in s.heads) == 1
                assert all(0 <= h <= len(s.heads) and h != i + 1 for i, h in enumerate(s.heads))
        else:
            try:
                arrays, meta = load_checkpoint(Path(name))
            except CheckpointError:
                return
            assert isinstance(arrays, dict) and isinstance(meta, dict)
            assert all(isinstance(a, np.ndarray) for a in arrays.values())
    finally:
        os.unlink(name)


if __name__ == "__main__":
    fuzz_main(check)
