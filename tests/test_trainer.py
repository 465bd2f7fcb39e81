"""Tests of meprop_native.train: the Trainer, its outputs, checkpoints, resume,
signals, divergence, and atomic writes.

A tiny generated 3-class problem (200 train / 50 dev / 50 test examples, 20
features) keeps every run well under a second. A hard kill is simulated by an
exception raised from a wrapped ``_train_step``: the process state is thrown
away and only what is on disk survives, as after ``kill -9``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

from meprop_native.nn import mlp
from meprop_native.optim import SGD, Adam
from meprop_native.train import (
    ArrayDataset,
    CheckpointError,
    Splits,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    load_checkpoint,
    save_checkpoint,
)
from meprop_native.train.atomic import atomic_open, write_json, write_with

N_FEATURES, N_CLASSES = 20, 3
STEPS_PER_EPOCH = 20  # 200 examples, batch 10
RUN_INFO = {"task": "toy", "sizes": [N_FEATURES, 16, N_CLASSES], "k": 4}
TIME_KEYS = {"forward", "backprop", "overall_backprop", "optimizer", "total"}
RECORD_KEYS = {"epoch", "step", "train_loss", "train_accuracy", "dev", "test", "time", "eval_seconds", "kept_fraction"}
RECORD_KEYS |= {"exchange"}  # data parallelism: ranks and bytes per step
SUMMARY_KEYS = {
    "run",
    "epochs",
    "metric",
    "best_dev",
    "best_epoch",
    "best_step",
    "test_at_best_dev",
    "best_dev_metrics",
    "test_metrics_at_best_dev",
    "time",
    "history",
    "interim_evaluations",
    "peak_rss_mb",
    "kept_fraction",
    "world_size",
    "exchange_bytes_per_step",
}


def toy_splits(n_train=200, n_dev=50, n_test=50, seed=1234) -> Splits:
    """Three Gaussian blobs in 20-D: separable enough to learn in a few epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((N_CLASSES, N_FEATURES))

    def draw(n):
        y = rng.integers(0, N_CLASSES, n)
        x = (centers[y] + 0.8 * rng.standard_normal((n, N_FEATURES))).astype(np.float32)
        return ArrayDataset(x, y.astype(np.int64))

    return Splits(draw(n_train), draw(n_dev), draw(n_test))


SPLITS = toy_splits()


def make_trainer(
    out: Path,
    *,
    epochs=3,
    batch_size=10,
    seed=0,
    checkpoint_every=7,
    steps_per_epoch=None,
    dropout=0.2,
    lr=0.01,
    optimizer="adam",
    run_info=None,
    splits=SPLITS,
    progress=False,
    evals_per_epoch=1,
) -> Trainer:
    model = mlp([N_FEATURES, 16, N_CLASSES], k=4, dropout=dropout, seed=seed)
    if optimizer == "adam":
        opt = Adam(model.parameters(), lr=lr, clip=5.0)
    else:
        opt = SGD(model.parameters(), lr=lr)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        checkpoint_every=checkpoint_every,
        progress=progress,
        steps_per_epoch=steps_per_epoch,
        evals_per_epoch=evals_per_epoch,
    )
    return Trainer(model, opt, splits, config, out, dict(RUN_INFO if run_info is None else run_info))


class HardKill(BaseException):
    """Stands for kill -9: nothing in the process survives, only the files."""


def kill_after(trainer: Trainer, steps: int) -> None:
    """Make ``trainer`` die just before its (steps + 1)-th training step."""
    original = trainer._train_step
    done = [0]

    def step(x, y):
        if done[0] == steps:
            raise HardKill(f"killed after {steps} steps")
        done[0] += 1
        original(x, y)

    trainer._train_step = step


def strip_times(history):
    return [{k: v for k, v in r.items() if k not in ("time", "eval_seconds")} for r in history]


def outcome(trainer: Trainer, summary) -> dict:
    """Everything that must be identical between equivalent runs."""
    arrays, meta = load_checkpoint(trainer.checkpoint_path)
    position = dict(meta["position"])
    position.pop("times")
    return {
        "model": trainer.model.state_dict(),  # the best-dev weights, after fit
        "checkpoint": arrays,  # final weights, best weights, optimizer state
        "position": position,
        "best": meta["best"],
        "rng": meta["rng"],
        "history": strip_times(summary["history"]),
        "interim": strip_times(summary["interim_evaluations"]),
        "best_fields": {
            k: summary[k]
            for k in ("best_dev", "best_epoch", "test_at_best_dev", "best_dev_metrics", "test_metrics_at_best_dev")
        },
    }


def assert_same_outcome(got: dict, want: dict) -> None:
    assert sorted(got["model"]) == sorted(want["model"])
    for name in want["model"]:
        assert np.array_equal(got["model"][name], want["model"][name]), name
    assert sorted(got["checkpoint"]) == sorted(want["checkpoint"])
    for name, array in want["checkpoint"].items():
        assert got["checkpoint"][name].dtype == array.dtype
        assert np.array_equal(got["checkpoint"][name], array), name
    for key in ("position", "best", "rng", "history", "interim", "best_fields"):
        assert got[key] == want[key], key


def collect_leaked_files() -> list:
    """Runs the garbage collector; returns the ResourceWarnings it triggered."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [w for w in caught if issubclass(w.category, ResourceWarning)]


def no_temp_files(directory: Path) -> bool:
    return not [p.name for p in directory.iterdir() if p.name.startswith(".") or p.name.endswith((".tmp", ".part"))]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """Run A: 3 epochs uninterrupted, dropout 0.2, a checkpoint every 7 steps."""
    out = tmp_path_factory.mktemp("baseline")
    trainer = make_trainer(out)
    saves = []
    original_save = trainer._save_checkpoint

    def save():
        saves.append((trainer.pos.epoch, trainer.pos.step_in_epoch))
        original_save()

    trainer._save_checkpoint = save
    initial_dev = trainer.evaluate(SPLITS.dev)["accuracy"]
    summary = trainer.fit()
    return {
        "out": out,
        "trainer": trainer,
        "summary": summary,
        "saves": saves,
        "initial_dev": initial_dev,
        "outcome": outcome(trainer, summary),
    }


# ---- fitting, outputs, protocol -------------------------------------------------------


def test_fit_learns_the_toy_problem(baseline):
    summary = baseline["summary"]
    history = summary["history"]
    assert baseline["initial_dev"] < 0.7
    assert summary["metric"] == "accuracy"
    assert summary["best_dev"] >= 0.9
    assert summary["best_dev"] > baseline["initial_dev"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["train_accuracy"] >= 0.85


def test_checkpoint_cadence(baseline):
    # every 7 steps inside an epoch (never at its end: that is the epoch checkpoint)
    expected = []
    for epoch in range(3):
        expected += [(epoch, 7), (epoch, 14), (epoch + 1, 0)]
    assert baseline["saves"] == expected
    _, meta = load_checkpoint(baseline["trainer"].checkpoint_path)
    assert meta["position"]["epoch"] == 3 and meta["position"]["step_in_epoch"] == 0
    assert meta["position"]["global_step"] == 3 * STEPS_PER_EPOCH
    assert meta["config"] == {
        "batch_size": 10,
        "seed": 0,
        "steps_per_epoch": None,
        "metric": "accuracy",
        "evals_per_epoch": 1,
    }
    assert meta["run"] == RUN_INFO


def test_metrics_jsonl_has_one_line_per_epoch(baseline):
    lines = (baseline["out"] / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert records == baseline["summary"]["history"]
    for epoch, record in enumerate(records, start=1):
        assert set(record) == RECORD_KEYS
        assert record["epoch"] == epoch
        assert record["step"] == epoch * STEPS_PER_EPOCH
        assert set(record["dev"]) == set(record["test"]) == {"accuracy"}
        assert 0.0 <= record["dev"]["accuracy"] <= 1.0 and 0.0 <= record["test"]["accuracy"] <= 1.0
        assert 0.0 <= record["train_accuracy"] <= 1.0 and record["train_loss"] > 0
        assert set(record["time"]) == TIME_KEYS
        assert all(v >= 0 for v in record["time"].values())
        assert record["eval_seconds"] >= 0


def test_summary_json(baseline):
    out, summary = baseline["out"], baseline["summary"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert set(summary) == SUMMARY_KEYS
    assert summary["run"] == RUN_INFO
    assert summary["epochs"] == 3 == len(summary["history"])
    assert set(summary["time"]) == TIME_KEYS
    for key in TIME_KEYS:  # the totals are the sums over epochs
        assert summary["time"][key] == pytest.approx(sum(r["time"][key] for r in summary["history"]))
    t = summary["time"]
    assert 0 < t["backprop"] <= t["overall_backprop"] <= t["total"]
    assert t["forward"] + t["overall_backprop"] + t["optimizer"] == pytest.approx(t["total"], rel=1e-6)
    assert summary["peak_rss_mb"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.jsonl", "summary.json"]


def test_reported_test_accuracy_is_the_one_at_the_best_dev_epoch(baseline):
    summary, trainer = baseline["summary"], baseline["trainer"]
    devs = [r["dev"]["accuracy"] for r in summary["history"]]
    best = int(np.argmax(devs))  # the first epoch with the best dev score
    assert summary["best_epoch"] == best + 1
    assert summary["best_dev"] == devs[best]
    assert summary["test_at_best_dev"] == summary["history"][best]["test"]["accuracy"]
    assert summary["test_metrics_at_best_dev"] == summary["history"][best]["test"]
    # the model is left with the best-dev weights
    assert trainer.evaluate(SPLITS.dev) == {"accuracy": summary["best_dev"]}
    assert trainer.evaluate(SPLITS.test) == {"accuracy": summary["test_at_best_dev"]}


def test_best_dev_protocol_with_scripted_scores(tmp_path):
    # dev / test scores per epoch; epoch 2 is best (epoch 4 only ties it)
    scripted = iter([0.5, 0.1, 0.9, 0.2, 0.7, 0.3, 0.9, 0.4])
    trainer = make_trainer(tmp_path, epochs=4)
    trainer.evaluate = lambda data: {"accuracy": next(scripted)}
    weights_at_epoch_end = []
    original_end = trainer._end_epoch

    def end_epoch():
        weights_at_epoch_end.append(trainer.model.state_dict())
        original_end()

    trainer._end_epoch = end_epoch
    summary = trainer.fit()
    assert [r["dev"]["accuracy"] for r in summary["history"]] == [0.5, 0.9, 0.7, 0.9]
    assert summary["best_epoch"] == 2
    assert summary["best_dev"] == 0.9
    assert summary["test_at_best_dev"] == 0.2
    final = trainer.model.state_dict()
    for name, value in weights_at_epoch_end[1].items():
        assert np.array_equal(final[name], value), name
    assert not all(np.array_equal(final[n], v) for n, v in weights_at_epoch_end[3].items())


def test_steps_per_epoch_cap_and_partial_last_batch(tmp_path):
    capped = make_trainer(tmp_path / "capped", epochs=2, steps_per_epoch=5)
    assert capped.steps_per_epoch() == 5
    summary = capped.fit()
    assert [r["step"] for r in summary["history"]] == [5, 10]
    splits = toy_splits(n_train=205)  # 21 batches, the last of 5 examples
    partial = make_trainer(tmp_path / "partial", epochs=1, splits=splits)
    assert partial.steps_per_epoch() == 21
    seen = []
    original = partial._train_step
    partial._train_step = lambda x, y: (seen.append(len(y)), original(x, y))
    assert partial.fit()["history"][0]["step"] == 21
    assert seen == [10] * 20 + [5]


def test_progress_output(tmp_path, capsys):
    make_trainer(tmp_path, epochs=1, progress=True).fit()
    out = capsys.readouterr().out
    assert "epoch   1" in out and "dev" in out and "backprop" in out


def test_same_seed_same_run(tmp_path, baseline):
    trainer = make_trainer(tmp_path)
    assert_same_outcome(outcome(trainer, trainer.fit()), baseline["outcome"])


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"batch_size": 0}])
def test_bad_config(tmp_path, kwargs):
    with pytest.raises(ValueError, match=">= 1"):
        make_trainer(tmp_path, **kwargs)


# ---- resume -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kills",
    [
        (13,),  # mid epoch 1: the last checkpoint is at step 7
        (20,),  # right after epoch 1's checkpoint
        (33,),  # mid epoch 2 (step 13 of it), checkpoint at its step 7
        (33, 14),  # killed again 14 steps after resuming: exactly at a checkpoint (global 47)
        (59,),  # the last step of the last epoch
    ],
    ids=lambda kills: "kill@" + "+".join(map(str, kills)),
)
def test_resume_after_hard_kill_is_bit_identical(tmp_path, baseline, kills):
    for i, steps in enumerate(kills):
        trainer = make_trainer(tmp_path)
        kill_after(trainer, steps)
        with pytest.raises(HardKill):
            trainer.fit(resume=i > 0)
        assert trainer.checkpoint_path.exists()
        assert no_temp_files(tmp_path)
    _, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    if kills == (33,):
        assert (meta["position"]["epoch"], meta["position"]["step_in_epoch"]) == (1, 7)
    resumed = make_trainer(tmp_path)  # a fresh process: fresh model, optimizer, generators
    summary = resumed.fit(resume=True)
    assert_same_outcome(outcome(resumed, summary), baseline["outcome"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert strip_times([json.loads(line) for line in lines]) == baseline["outcome"]["history"]


def test_evaluations_inside_epochs_are_evenly_spaced_and_pick_the_best(tmp_path):
    # 20 steps an epoch, 4 evaluations: after steps 5, 10 and 15, and at the end
    trainer = make_trainer(tmp_path, evals_per_epoch=4)
    assert trainer.interim_eval_steps() == {5, 10, 15}
    summary = trainer.fit()
    interim = summary["interim_evaluations"]
    assert [r["step"] for r in interim] == [e * 20 + s for e in range(3) for s in (5, 10, 15)]
    assert [r["epoch"] for r in interim] == [e for e in (1, 2, 3) for _ in range(3)]
    every = sorted(interim + summary["history"], key=lambda r: r["step"])
    scores = [r["dev"]["accuracy"] for r in every]
    first_best = every[scores.index(max(scores))]  # ties keep the earliest
    assert summary["best_dev"] == max(scores)
    assert (summary["best_step"], summary["best_epoch"]) == (first_best["step"], first_best["epoch"])
    assert summary["test_at_best_dev"] == first_best["test"]["accuracy"]
    assert len(summary["history"]) == 3  # metrics.jsonl stays one line an epoch


def test_resume_with_evaluations_inside_epochs_is_bit_identical(tmp_path):
    want_dir, got_dir = tmp_path / "want", tmp_path / "got"
    want = make_trainer(want_dir, evals_per_epoch=3)
    want_outcome = outcome(want, want.fit())
    # killed after 33 steps: checkpoint at epoch 2 step 7, then the evaluation after step 13 is lost
    trainer = make_trainer(got_dir, evals_per_epoch=3)
    kill_after(trainer, 33)
    with pytest.raises(HardKill):
        trainer.fit()
    resumed = make_trainer(got_dir, evals_per_epoch=3)
    assert_same_outcome(outcome(resumed, resumed.fit(resume=True)), want_outcome)
    # and a run with another number of evaluations is not resumed by it
    with pytest.raises(CheckpointError, match="other settings"):
        make_trainer(got_dir, evals_per_epoch=2).fit(resume=True)


@pytest.mark.parametrize("evals", [0, -1, True, 2.0])
def test_evals_per_epoch_must_be_a_positive_integer(tmp_path, evals):
    with pytest.raises(ValueError, match="evals_per_epoch"):
        make_trainer(tmp_path, evals_per_epoch=evals)


def test_resume_of_a_finished_run_changes_nothing(tmp_path, baseline):
    shutil.copy(baseline["trainer"].checkpoint_path, tmp_path / "checkpoint.npz")
    trainer = make_trainer(tmp_path)
    assert_same_outcome(outcome(trainer, trainer.fit(resume=True)), baseline["outcome"])


def test_resume_with_more_epochs_extends_the_run(tmp_path, baseline):
    shutil.copy(baseline["trainer"].checkpoint_path, tmp_path / "checkpoint.npz")
    extended = make_trainer(tmp_path, epochs=4)
    summary = extended.fit(resume=True)
    assert len(summary["history"]) == 4
    assert strip_times(summary["history"][:3]) == baseline["outcome"]["history"]
    straight = make_trainer(tmp_path / "straight", epochs=4)
    assert_same_outcome(outcome(extended, summary), outcome(straight, straight.fit()))


def test_kill_before_the_first_checkpoint_leaves_nothing_to_resume(tmp_path):
    trainer = make_trainer(tmp_path)
    kill_after(trainer, 5)
    with pytest.raises(HardKill):
        trainer.fit()
    assert not (tmp_path / "checkpoint.npz").exists()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        make_trainer(tmp_path).fit(resume=True)


@pytest.mark.parametrize(
    "change",
    [{"batch_size": 20}, {"seed": 1}, {"steps_per_epoch": 5}, {"run_info": dict(RUN_INFO, k=8)}],
    ids=["batch_size", "seed", "steps_per_epoch", "run_info"],
)
def test_resume_with_other_settings_is_refused(tmp_path, baseline, change):
    shutil.copy(baseline["trainer"].checkpoint_path, tmp_path / "checkpoint.npz")
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(CheckpointError, match="other settings") as info:
        make_trainer(tmp_path, **change).fit(resume=True)
    assert str(tmp_path / "checkpoint.npz") in str(info.value)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    # The message names the setting that differs, not every setting.
    name = "k" if "run_info" in change else next(iter(change))
    assert f"{name}: checkpoint" in str(info.value)
    assert str(info.value).count(": checkpoint") == 1


def test_resume_with_tuple_in_run_info(tmp_path):
    # LIBRARY BUG (reported): run_info goes through JSON in the checkpoint, so a
    # tuple comes back as a list and `meta["run"] != self.run_info` refuses to
    # resume a run with exactly the same settings.
    info = {"task": "toy", "sizes": (N_FEATURES, 16, N_CLASSES)}
    make_trainer(tmp_path, epochs=1, run_info=info).fit()
    summary = make_trainer(tmp_path, epochs=2, run_info=info).fit(resume=True)
    assert summary["epochs"] == 2


# ---- corrupt checkpoints ----------------------------------------------------------------


def _npz_bytes(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _corrupt(kind: str, good: bytes) -> bytes | None:
    if kind == "garbage":
        return b"this is not a checkpoint" * 10
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "bitflip":
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0xFF  # inside an array: the zip CRC catches it
        return bytes(flipped)
    if kind == "no-metadata":
        return _npz_bytes(**{"model/0.weight": np.zeros((16, N_FEATURES), np.float32)})
    if kind == "pickled":
        return _npz_bytes(__meta__=np.array([{"a": 1}], dtype=object))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "bitflip", "no-metadata", "pickled"])
def test_corrupt_checkpoint_raises_checkpoint_error_naming_the_file(tmp_path, baseline, kind):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(_corrupt(kind, baseline["trainer"].checkpoint_path.read_bytes()))
    # A truncated file leaks a handle (see the next test); keep that out of here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(CheckpointError) as info:
            make_trainer(tmp_path).fit(resume=True)
        message = str(info.value)
        del info
        with pytest.raises(CheckpointError, match=str(path)):
            load_checkpoint(path)
        gc.collect()
    assert str(path) in message


def test_truncated_checkpoint_does_not_leak_a_file_handle(tmp_path, baseline):
    # LIBRARY BUG (reported, minor): load_checkpoint passes the path to
    # np.load, which opens the file and does not close it when zipfile rejects
    # a truncated archive (BadZipFile); the handle leaks (ResourceWarning).
    # Opening the file in load_checkpoint (`with open(path, "rb") as f:
    # np.load(f, ...)`) would close it.
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(_corrupt("truncated", baseline["trainer"].checkpoint_path.read_bytes()))
    collect_leaked_files()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(CheckpointError):
            load_checkpoint(path)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_checkpoint_with_unparsable_metadata_raises_checkpoint_error(tmp_path):
    # LIBRARY BUG (reported): load_checkpoint decodes the metadata JSON outside
    # its try block, so a checkpoint whose __meta__ is not UTF-8 JSON raises a
    # bare JSONDecodeError / UnicodeDecodeError (the CLI then shows a traceback
    # instead of "meprop: error: ...", exit code 2).
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(_npz_bytes(__meta__=np.frombuffer(b"{not json", dtype=np.uint8)))
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint") as info:
        make_trainer(tmp_path).fit(resume=True)
    assert str(tmp_path / "checkpoint.npz") in str(info.value)


# ---- signals ------------------------------------------------------------------------------


def _send_signal_after(trainer: Trainer, steps: int, signum: int) -> None:
    original = trainer._train_step
    done = [0]

    def step(x, y):
        original(x, y)
        done[0] += 1
        if done[0] == steps:
            os.kill(os.getpid(), signum)
            for _ in range(10**6):  # let the Python-level handler run
                if trainer._stop_signal is not None:
                    break

    trainer._train_step = step


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_and_resume_is_bit_identical(tmp_path, baseline, signum):
    received = []

    def ours(signum_, frame):
        received.append(signum_)

    previous = signal.signal(signum, ours)
    try:
        trainer = make_trainer(tmp_path)
        _send_signal_after(trainer, 25, signum)
        with pytest.raises(TrainingInterrupted) as info:
            trainer.fit()
        assert signal.getsignal(signum) is ours  # the trainer put our handler back
    finally:
        signal.signal(signum, previous)
    assert received == []  # the trainer's handler took the signal, not ours
    message = str(info.value)
    assert str(tmp_path / "checkpoint.npz") in message and "--resume" in message
    _, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["position"]["global_step"] == 25  # saved right after the step it stopped at
    assert (meta["position"]["epoch"], meta["position"]["step_in_epoch"]) == (1, 5)
    resumed = make_trainer(tmp_path)
    assert_same_outcome(outcome(resumed, resumed.fit(resume=True)), baseline["outcome"])


def test_signal_handlers_are_restored(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    make_trainer(tmp_path, epochs=1).fit()
    assert {s: signal.getsignal(s) for s in before} == before


def test_same_trainer_can_resume_after_an_interrupt(tmp_path, baseline):
    # LIBRARY BUG (reported): Trainer._stop_signal is never cleared, so after a
    # TrainingInterrupted the same Trainer object (e.g. in a notebook) stops
    # again after one step on every later fit(), resume or not.
    trainer = make_trainer(tmp_path)
    _send_signal_after(trainer, 25, signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    summary = trainer.fit(resume=True)
    assert_same_outcome(outcome(trainer, summary), baseline["outcome"])


# ---- divergence ------------------------------------------------------------------------------


def test_nan_loss_raises_diverged_and_keeps_the_last_checkpoint(tmp_path, baseline):
    trainer = make_trainer(tmp_path)
    ckpt = tmp_path / "checkpoint.npz"
    original = trainer._train_step
    done = [0]
    before = {}

    def step(x, y):
        done[0] += 1
        if done[0] == 11:  # the last checkpoint was written after step 7
            before["bytes"] = ckpt.read_bytes()
            before["weights"] = trainer.model.state_dict()
            x = x.copy()
            x[0, 0] = np.nan
        original(x, y)

    trainer._train_step = step
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingDiverged, match="nan") as info:
        trainer.fit()
    assert str(ckpt) in str(info.value)
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert ckpt.read_bytes() == before["bytes"]
    assert no_temp_files(tmp_path)
    # the diverging step updated nothing
    for name, value in trainer.model.state_dict().items():
        assert np.array_equal(value, before["weights"][name]), name
    _, meta = load_checkpoint(ckpt)
    assert meta["position"]["global_step"] == 7
    resumed = make_trainer(tmp_path)  # with clean data the run completes as if never broken
    assert_same_outcome(outcome(resumed, resumed.fit(resume=True)), baseline["outcome"])


def test_huge_learning_rate_diverges(tmp_path):
    trainer = make_trainer(tmp_path, optimizer="sgd", lr=1e30, checkpoint_every=1, dropout=0.0, epochs=5)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged):
        trainer.fit()
    _arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")  # still loadable
    assert meta["position"]["global_step"] >= 1
    assert no_temp_files(tmp_path)


def test_divergence_before_any_checkpoint_does_not_point_at_a_missing_file(tmp_path):
    # LIBRARY BUG (reported, minor): the TrainingDiverged message always says
    # "The last good checkpoint is <out>/checkpoint.npz", even when no
    # checkpoint was ever written; `--resume` then fails with "no checkpoint".
    trainer = make_trainer(tmp_path, optimizer="sgd", lr=1e30, checkpoint_every=1000, dropout=0.0)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged) as info:
        trainer.fit()
    ckpt = tmp_path / "checkpoint.npz"
    assert not ckpt.exists()
    assert str(ckpt) not in str(info.value)


# ---- checkpoint files and atomic writes -----------------------------------------------------


def test_save_and_load_checkpoint_round_trip(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b/c": np.array([1, 2], np.int64)}
    meta = {"x": [1, 2.5, "s"], "nested": {"k": None}}
    path = tmp_path / "sub" / "ck.npz"
    save_checkpoint(path, arrays, meta)
    got, got_meta = load_checkpoint(path)
    assert got_meta == meta
    assert sorted(got) == sorted(arrays)
    for name, array in arrays.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, {"__meta__": np.zeros(1)}, {})


def test_atomic_open_replaces_the_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with atomic_open(path, "w") as handle:
        handle.write("new")
        assert path.read_text() == "old"  # nothing visible until the end
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_open_failure_keeps_the_old_file_and_no_temp_files(tmp_path, error):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old content")
    with pytest.raises(error), atomic_open(path, "wb") as handle:
        handle.write(b"half of the new")
        raise error("boom")
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_with_failure_keeps_the_old_checkpoint(tmp_path, baseline):
    path = tmp_path / "checkpoint.npz"
    shutil.copy(baseline["trainer"].checkpoint_path, path)
    before = path.read_bytes()

    def writer(handle):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with(path, writer)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]
    load_checkpoint(path)


def test_failed_checkpoint_save_during_training_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path)
    kill_after(trainer, 10)
    with pytest.raises(HardKill):
        trainer.fit()
    ckpt = tmp_path / "checkpoint.npz"
    before = ckpt.read_bytes()
    trainer = make_trainer(tmp_path)

    def failing_savez(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="no space"):
        trainer.fit(resume=True)
    monkeypatch.undo()
    assert ckpt.read_bytes() == before
    assert no_temp_files(tmp_path)


def test_write_json(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [1, 2], "b": 1}


# ---- datasets and evaluators of other tasks ----------------------------------------------


class ListDataset:
    """Examples that are not rows of an array: lists of feature vectors, labels per item."""

    def __init__(self, split: ArrayDataset) -> None:
        self.items = [(split.x[i : i + 5], split.y[i : i + 5]) for i in range(0, len(split), 5)]

    def __len__(self):
        return len(self.items)

    def batch(self, indices):
        xs, ys = zip(*(self.items[i] for i in indices))
        return list(xs), np.concatenate(ys)


class StackingModel:
    """Wraps an MLP so that its input is a list of arrays, as a sequence model's would be."""

    def __init__(self, inner):
        self.inner = inner

    def forward(self, inputs):
        return self.inner.forward(np.concatenate(inputs))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_trainer_runs_any_dataset_with_a_custom_evaluator_and_metric(tmp_path):
    splits = Splits(*(ListDataset(s) for s in SPLITS))
    model = StackingModel(mlp([N_FEATURES, 16, N_CLASSES], k=4, seed=0))
    calls = []

    def evaluate(m, data):
        assert m is model and data in (splits.dev, splits.test)
        assert not model.inner.training  # evaluation mode
        calls.append(data)
        inputs, labels = data.batch(np.arange(len(data)))
        wrong = np.count_nonzero(m.forward(inputs).argmax(axis=1) != labels)
        return {"neg_errors": -float(wrong), "n": len(labels)}

    config = TrainConfig(epochs=2, batch_size=2, progress=False, metric="neg_errors")
    trainer = Trainer(model, Adam(model.parameters(), lr=0.01), splits, config, tmp_path, evaluate=evaluate)
    summary = trainer.fit()
    assert model.inner.training  # back in training mode
    assert len(calls) == 4 and trainer.steps_per_epoch() == len(splits.train) // 2
    assert summary["metric"] == "neg_errors"
    devs = [r["dev"]["neg_errors"] for r in summary["history"]]
    assert summary["best_dev"] == max(devs) and summary["best_epoch"] == devs.index(max(devs)) + 1
    assert summary["test_metrics_at_best_dev"]["n"] == len(SPLITS.test.y)
    # the examples seen are counted by labels (rows of logits), not by dataset items
    assert summary["history"][0]["train_accuracy"] > 0.5


def test_evaluator_without_the_metric_is_an_error(tmp_path):
    config = TrainConfig(epochs=1, progress=False, metric="uas")
    model = mlp([N_FEATURES, 16, N_CLASSES], k=4, seed=0)
    trainer = Trainer(model, Adam(model.parameters()), SPLITS, config, tmp_path)
    with pytest.raises(ValueError, match=r"not the metric 'uas'"):
        trainer.fit()


@pytest.mark.parametrize("bad", ["arrays", "empty"])
def test_splits_must_be_datasets(tmp_path, bad):
    model = mlp([N_FEATURES, 16, N_CLASSES], k=4, seed=0)
    if bad == "arrays":
        splits = Splits(SPLITS.train.x, SPLITS.dev, SPLITS.test)
        error, match = TypeError, r"splits\.train must be a Dataset"
    else:
        splits = Splits(ArrayDataset(SPLITS.train.x[:0], SPLITS.train.y[:0]), SPLITS.dev, SPLITS.test)
        error, match = ValueError, "training set is empty"
    with pytest.raises(error, match=match):
        Trainer(model, Adam(model.parameters()), splits, TrainConfig(progress=False), tmp_path)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((3, 2)), np.zeros(4, dtype=np.int64), "one row per label"),
        (np.zeros((3, 2)), np.zeros(3), "labels must be integers"),
    ],
)
def test_array_dataset_checks_its_arrays(x, y, match):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(x, y)


def test_resume_into_a_model_with_other_random_generators_is_refused(tmp_path, baseline):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    other = make_trainer(out, epochs=2)
    other.model.random_generators = list
    with pytest.raises(CheckpointError, match="holds 1 random generators, the model has 0"):
        other.fit(resume=True)


def test_resume_into_another_architecture_is_a_checkpoint_error(tmp_path, baseline):
    out = tmp_path / "run"
    make_trainer(out, epochs=1).fit()
    other = make_trainer(out, epochs=2, dropout=0.0)  # no dropout layer: other parameter names
    with pytest.raises(CheckpointError, match="does not fit the model"):
        other.fit(resume=True)


def test_checkpoint_of_another_format_is_refused(tmp_path):
    out = tmp_path / "run"
    trainer = make_trainer(out, epochs=1)
    trainer.fit()
    arrays, meta = load_checkpoint(trainer.checkpoint_path)
    meta["format"] = 1
    save_checkpoint(trainer.checkpoint_path, arrays, meta)
    with pytest.raises(CheckpointError, match="checkpoint format 1"):
        make_trainer(out, epochs=2).fit(resume=True)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_open(tmp_path / "b.bin") as handle:
            handle.write(b"data")
    finally:
        os.umask(previous)
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
