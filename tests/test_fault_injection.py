"""Fault injection: real SIGKILLs at random points (inside checkpoint writes
too), and a full disk or an I/O error during checkpoint and metrics writes.

The guarantees under test: a checkpoint on disk is always whole and loads; a
run resumed after any number of kills ends bit-identical to an uninterrupted
one; a failed write raises OutputWriteError naming the file and leaves the
previous file as it was.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meprop_native.cli import main as cli_main
from meprop_native.train import CheckpointError, OutputWriteError, load_checkpoint
from meprop_native.train import atomic as atomic_module

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_trainer import assert_same_outcome, make_trainer, outcome  # noqa: E402

KILLS = 20
EPOCHS = 8  # 160 steps, a checkpoint after each: far more than 20 kills let through

# The child: the toy run of test_trainer with a checkpoint after every step,
# and np.savez slowed down so that a good share of the kills land inside a
# checkpoint write. It says "ready" once built; the parent kills it after a
# random delay.
CHILD = """
import sys, time, io
sys.path.insert(0, {tests!r})
import numpy as np
from meprop_native.train import atomic
from test_trainer import make_trainer

real_savez = np.savez
def slow_savez(handle, **arrays):
    buffer = io.BytesIO()
    real_savez(buffer, **arrays)
    data = buffer.getvalue()
    for start in range(0, len(data), 512):
        handle.write(data[start:start + 512])
        time.sleep(0.0005)
atomic.np.savez = slow_savez

trainer = make_trainer({out!r}, epochs={epochs}, checkpoint_every=1)
print("ready", flush=True)
trainer.fit(resume={resume})
print("finished", flush=True)
"""


def _start(out: Path, resume: bool) -> subprocess.Popen:
    code = CHILD.format(tests=str(HERE), out=str(out), epochs=EPOCHS, resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_sigkill_at_random_points_never_corrupts_and_resume_is_bit_identical(tmp_path):
    want = make_trainer(tmp_path / "want", epochs=EPOCHS, checkpoint_every=1)
    want_outcome = outcome(want, want.fit())

    out = tmp_path / "killed"
    rng = random.Random(20261207)
    kills, inside_writes, finished = 0, 0, False
    while kills < KILLS:
        # The with block closes the pipe and reaps the child even when an
        # assertion fails (a leaked pipe would fail a later test instead).
        with _start(out, resume=(out / "checkpoint.npz").exists()) as child:
            try:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == "ready"
                time.sleep(rng.uniform(0.0, 0.25))
                child.send_signal(signal.SIGKILL)
                rest = child.stdout.read()
                child.wait(timeout=60)
            finally:
                if child.poll() is None:
                    child.kill()
        if "finished" in rest:  # the run ended before the kill: nothing left to kill
            finished = True
            break
        assert child.returncode == -signal.SIGKILL
        kills += 1
        inside_writes += bool(_temporaries(out))
        if (out / "checkpoint.npz").exists():
            load_checkpoint(out / "checkpoint.npz")  # whole: raises CheckpointError otherwise
        if (out / "metrics.jsonl").exists():
            for line in (out / "metrics.jsonl").read_text().splitlines():
                json.loads(line)
    assert kills == KILLS and not finished, "the run ended before it was killed 20 times"
    # Kills inside a write are what this test is for; with the slowed writes
    # nearly all land there (one in five is far below any run seen).
    assert inside_writes >= KILLS // 5, f"only {inside_writes} of {KILLS} kills landed inside a checkpoint write"

    resumed = make_trainer(out, epochs=EPOCHS, checkpoint_every=1)
    summary = resumed.fit(resume=True)
    assert _temporaries(out) == []  # the dead writes' temporaries are gone
    assert_same_outcome(outcome(resumed, summary), want_outcome)


def _failing_fsync(monkeypatch, code: int, target: str, after: int = 0) -> list[str]:
    """os.fsync in the atomic writer fails with ``code`` when it syncs a
    temporary file of ``target`` (its ``after``-th such sync and later)."""
    real = os.fsync
    seen: list[str] = []

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(f".{target}."):
            seen.append(name)
            if len(seen) > after:
                raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(atomic_module.os, "fsync", fsync)
    return seen


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    trainer = make_trainer(tmp_path, epochs=2, checkpoint_every=7)
    original = trainer._save_checkpoint
    before: list[bytes] = []

    def save() -> None:  # remember the file as it is before each write
        path = trainer.checkpoint_path
        before.append(path.read_bytes() if path.exists() else b"")
        original()

    trainer._save_checkpoint = save
    _failing_fsync(monkeypatch, code, "checkpoint.npz", after=1)  # the first write succeeds
    with pytest.raises(OutputWriteError, match=rf"checkpoint\.npz: {os.strerror(code)}") as caught:
        trainer.fit()
    assert caught.value.errno == code
    assert len(before) == 2 and before[1]
    assert trainer.checkpoint_path.read_bytes() == before[1]  # the previous checkpoint, untouched
    load_checkpoint(trainer.checkpoint_path)
    assert _temporaries(tmp_path) == []

    monkeypatch.undo()  # the disk mended: the run resumes from the kept checkpoint and ends as ever
    want = make_trainer(tmp_path / "want", epochs=2, checkpoint_every=7)
    resumed = make_trainer(tmp_path, epochs=2, checkpoint_every=7)
    assert_same_outcome(outcome(resumed, resumed.fit(resume=True)), outcome(want, want.fit()))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_failed_metrics_write_keeps_metrics_and_checkpoint(tmp_path, monkeypatch, code):
    trainer = make_trainer(tmp_path, epochs=3, checkpoint_every=7)
    _failing_fsync(monkeypatch, code, "metrics.jsonl", after=1)  # epoch 1's metrics are written
    with pytest.raises(OutputWriteError, match=r"metrics\.jsonl"):
        trainer.fit()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]
    _, meta = load_checkpoint(trainer.checkpoint_path)
    assert meta["position"]["epoch"] == 1  # the end-of-epoch checkpoint comes after the metrics
    assert _temporaries(tmp_path) == []


def test_failed_write_before_any_checkpoint_leaves_nothing_to_resume(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, epochs=1, checkpoint_every=7)
    _failing_fsync(monkeypatch, errno.ENOSPC, "checkpoint.npz")
    with pytest.raises(OutputWriteError):
        trainer.fit()
    assert not trainer.checkpoint_path.exists() and _temporaries(tmp_path) == []
    with pytest.raises(CheckpointError, match="no checkpoint"):
        make_trainer(tmp_path, epochs=1).fit(resume=True)


def test_cli_reports_a_full_disk_with_exit_4(tmp_path, monkeypatch, capsys):
    from test_cli import write_generated_mnist

    data = tmp_path / "data"
    write_generated_mnist(data)
    _failing_fsync(monkeypatch, errno.ENOSPC, "checkpoint.npz")
    argv = ["train", "mnist", "--data-dir", str(data), "--no-verify", "--hidden", "16", "--epochs", "1"]
    code = cli_main([*argv, "--out", str(tmp_path / "run"), "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 4
    assert "checkpoint.npz: No space left on device" in err and "--resume" in err
    assert "Traceback" not in err


def test_remove_stale_temporaries_only_removes_temporaries(tmp_path):
    keep = ["checkpoint.npz", ".hidden", "notes.tmp", ".checkpoint.npz.TOOLONGX1.tmp"]
    stale = [".checkpoint.npz.ab3_x9qz.tmp", ".metrics.jsonl.0123abcd.tmp"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(atomic_module.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert atomic_module.remove_stale_temporaries(tmp_path / "missing") == []


def test_output_write_error_is_an_os_error_naming_the_file(tmp_path):
    error = OutputWriteError(tmp_path / "x.json", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert str(error).startswith(f"could not write {tmp_path / 'x.json'}: No space left on device;")
