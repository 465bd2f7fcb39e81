"""Tests of the ``meprop`` command line: help, smoke runs, exit codes.

The network is never touched (urlopen is replaced by a failing fake in every
test, and the cache and $MEPROP_DATA point into tmp_path). One smoke run uses
the real MNIST copy next to the repository and is skipped without it; the
others use a tiny generated dataset in MNIST's IDX format.

The CLI always verifies the md5 of MNIST files and has no option to skip that,
so a generated dataset is refused by the real command (tested below); the
generated-data runs replace the CLI's loader by ``load_mnist(verify=False)``.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from meprop_native import cli
from meprop_native.cli import main
from meprop_native.data import DEV_SIZE, MNIST_FILES, load_mnist
from meprop_native.tasks import mnist as mnist_task
from meprop_native.train import Trainer

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

MNIST_OPTIONS = [
    "--k",
    "--k-out",
    "--mode",
    "--hidden",
    "--layers",
    "--dropout",
    "--init",
    "--optimizer",
    "--lr",
    "--clip",
    "--lazy",
    "--batch-size",
    "--epochs",
    "--seed",
    "--threads",
    "--data-dir",
    "--out",
    "--resume",
    "--no-progress",
    "--train-limit",
    "--steps-per-epoch",
    "--evals-per-epoch",
]
FILE_NAMES = [spec.name for spec in MNIST_FILES.values()]


# ---- helpers ---------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic (type 0x08), big-endian dims, data."""
    assert arr.dtype == np.uint8
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_generated_mnist(directory: Path, n_train: int = DEV_SIZE + 300, n_test: int = 50, seed: int = 0) -> None:
    """The four gzipped IDX files of a tiny learnable MNIST look-alike:
    class c lights up image rows 2c and 2c+1."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)

    def images(labels):
        x = np.zeros((len(labels), 28, 28), np.uint8)
        for i, c in enumerate(labels):
            x[i, 2 * c : 2 * c + 2, :] = 200
        return x

    train_y = rng.integers(0, 10, n_train).astype(np.uint8)
    test_y = rng.integers(0, 10, n_test).astype(np.uint8)
    arrays = {
        "train_images": images(train_y),
        "train_labels": train_y,
        "test_images": images(test_y),
        "test_labels": test_y,
    }
    for key, arr in arrays.items():
        (directory / MNIST_FILES[key].name).write_bytes(gzip.compress(idx_bytes(arr), mtime=0))


class FailingUrlopen:
    """A machine without network: every URL fails. ``calls`` records the URLs."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch) -> FailingUrlopen:
    """No test sees the real cache, $MEPROP_DATA, or the network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("MEPROP_DATA", str(tmp_path / "meprop-data"))
    fake = FailingUrlopen()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return fake


@pytest.fixture(scope="module")
def generated_data(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("generated") / "mnist"
    write_generated_mnist(directory)
    return directory


@pytest.fixture
def unverified_loader(monkeypatch):
    """The CLI's loader without the md5 check, so that generated data loads."""
    monkeypatch.setattr(mnist_task, "load_mnist", lambda data_dir, verify=True: load_mnist(data_dir, verify=False))


def run_cli(args, capsys):
    """main(args) -> (exit code, stdout, stderr); argparse exits become codes."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def brief_of(stdout: str) -> dict:
    """The JSON summary the CLI prints before its 'wrote ...' line."""
    head, _, tail = stdout.partition("\nwrote ")
    assert tail, stdout
    return json.loads(head)


SMALL = ["--hidden", "16", "--k", "4", "--no-progress", "--steps-per-epoch", "5", "--train-limit", "200"]


# ---- help -----------------------------------------------------------------------------


def test_top_level_help(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "usage: meprop" in out and "train" in out and "meProp" in out


def test_train_help(capsys):
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0
    assert "mnist" in out


def test_train_mnist_help_mentions_every_option(capsys):
    code, out, _ = run_cli(["train", "mnist", "--help"], capsys)
    assert code == 0
    for option in MNIST_OPTIONS:
        assert option in out, option
    # and every option the parser actually has
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices["train"]._subparsers._group_actions[0].choices["mnist"]
    for action in sub._actions:
        for flag in action.option_strings:
            assert flag in out, flag
    for choice in ("per_example", "unified", "dense", "adam", "adagrad", "sgd"):
        assert choice in out


def test_module_entry_point_runs_in_a_subprocess():
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "meprop_native.cli", "train", "mnist", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--steps-per-epoch" in result.stdout


def test_console_script_is_declared():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("meprop") == "meprop_native.cli:main"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["train"],
        ["train", "cifar"],
        ["train", "mnist", "--mode", "bogus"],
        ["train", "mnist", "--optimizer", "rmsprop"],
        ["train", "mnist", "--k", "two"],
    ],
    ids=["nothing", "no-task", "unknown-task", "bad-mode", "bad-optimizer", "non-integer-k"],
)
def test_usage_errors_exit_2(capsys, args):
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert "usage:" in err and "error:" in err


@pytest.mark.parametrize("task", ["mnist", "pos", "parse"])
@pytest.mark.parametrize("threads", ["100000", "99999999999", "0", "many"])
def test_thread_counts_are_checked_before_anything_runs(capsys, task, threads):
    code, _, err = run_cli(["train", task, "--threads", threads, "--data-dir", "/nonexistent"], capsys)
    assert code == 2
    assert "--threads" in err and ("[1, 1024]" in err or "integer" in err)


@pytest.mark.parametrize(
    "option", [["--memory-decay", "1.5"], ["--select", "best"], ["--k-rule", "auto"], ["--warmup", "cosine"]]
)
def test_bad_selection_options_are_usage_errors_or_named(capsys, option, tmp_path):
    code, _, err = run_cli(
        ["train", "mnist", *option, "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2
    assert option[0].lstrip("-").split("-")[0] in err


# ---- smoke runs ----------------------------------------------------------------------


@pytest.mark.skipif(
    not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST not found in {REAL_DATA}/mnist (the shared data copy next to the repository)",
)
def test_smoke_run_on_real_mnist(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "mnist",
        "--data-dir",
        REAL_DATA,
        "--out",
        out,
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--steps-per-epoch",
        "5",
        "--no-progress",
    ]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    brief = brief_of(stdout)
    assert set(brief) == {"metric", "best_dev", "best_epoch", "test_at_best_dev", "time"}
    assert brief["metric"] == "accuracy"
    assert brief["best_epoch"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["train_size"] == 200
    assert summary["run"]["sizes"] == [784, 500, 500, 10]
    # The defaults the accuracy study chose (docs/results.md): meProp k=25 with error feedback 0.8, Adam.
    assert (summary["run"]["k"], summary["run"]["mode"], summary["run"]["optimizer"]) == (25, "per_example", "adam")
    assert summary["run"]["selection"]["memory_decay"] == 0.8
    assert summary["kept_fraction"]["layers"] == [0.05, 0.05]
    assert summary["history"][0]["step"] == 5
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    with np.load(out / "best_model.npz") as best:
        assert best["0.weight"].shape == (500, 784) and best["4.weight"].shape == (10, 500)
    # continue the same run for one more epoch
    args[args.index("--epochs") + 1] = "2"
    code, _, stderr = run_cli(args + ["--resume"], capsys)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and [r["step"] for r in summary["history"]] == [5, 10]


def test_generated_data_is_refused_by_the_md5_check(tmp_path, generated_data, capsys):
    # The CLI has no option to skip md5 verification for custom MNIST-format data.
    code, _, err = run_cli(["train", "mnist", "--data-dir", generated_data, "--out", tmp_path / "run", *SMALL], capsys)
    assert code == 2
    assert err.startswith("meprop: error:")
    assert "md5 mismatch" in err and str(generated_data) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, run_fields",
    [
        ([], {"k": 4, "mode": "per_example", "optimizer": "adam", "lazy": True, "init": "pytorch"}),
        (
            ["--mode", "unified", "--optimizer", "adagrad", "--layers", "1"],
            {"k": 4, "mode": "unified", "optimizer": "adagrad"},
        ),
        (
            ["--mode", "dense", "--optimizer", "sgd", "--lr", "0.05", "--init", "paper"],
            {"k": None, "mode": "dense", "optimizer": "sgd", "lr": 0.05, "init": "paper"},
        ),
        (
            ["--no-lazy", "--dropout", "0.3", "--k-out", "5", "--clip", "0"],
            {"lazy": False, "dropout": 0.3, "k_out": 5, "clip": 0.0},
        ),
    ],
    ids=["default", "unified-adagrad", "dense-sgd", "every-row-adam-dropout"],
)
def test_smoke_run_on_generated_data(tmp_path, generated_data, unverified_loader, capsys, extra, run_fields):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        ["train", "mnist", "--data-dir", generated_data, "--out", out, "--epochs", "2", *SMALL, *extra], capsys
    )
    assert code == 0, err
    assert brief_of(stdout)["best_epoch"] in (1, 2)
    summary = json.loads((out / "summary.json").read_text())
    for key, value in run_fields.items():
        assert summary["run"][key] == value, key
    assert summary["run"]["train_size"] == 200
    assert [r["step"] for r in summary["history"]] == [5, 10]
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.npz", "metrics.jsonl", "summary.json", "best_model.npz"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary files left


def test_generated_run_learns(tmp_path, generated_data, unverified_loader, capsys):
    args = [
        "train",
        "mnist",
        "--data-dir",
        generated_data,
        "--out",
        tmp_path,
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--steps-per-epoch",
        "40",
        "--no-progress",
        "--lr",
        "0.01",
    ]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert brief_of(stdout)["best_dev"] >= 0.8  # rows 2c, 2c+1 lit: easy


def test_progress_output(tmp_path, generated_data, unverified_loader, capsys):
    args = [
        "train",
        "mnist",
        "--data-dir",
        generated_data,
        "--out",
        tmp_path,
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--steps-per-epoch",
        "3",
        "--train-limit",
        "100",
    ]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "epoch   1" in stdout


def test_resume_without_checkpoint_exits_2(tmp_path, generated_data, unverified_loader, capsys):
    out = tmp_path / "empty-run"
    code, _, err = run_cli(["train", "mnist", "--data-dir", generated_data, "--out", out, "--resume", *SMALL], capsys)
    assert code == 2
    assert err.startswith("meprop: error:") and "no checkpoint" in err
    assert str(out / "checkpoint.npz") in err


def test_resume_with_other_options_exits_2(tmp_path, generated_data, unverified_loader, capsys):
    base = ["train", "mnist", "--data-dir", generated_data, "--out", tmp_path, "--epochs", "1", *SMALL]
    assert run_cli(base, capsys)[0] == 0
    code, _, err = run_cli(base + ["--resume", "--k", "5"], capsys)
    assert code == 2 and "other settings" in err


def test_interrupt_exits_130_and_resume_completes(tmp_path, generated_data, unverified_loader, monkeypatch, capsys):
    args = ["train", "mnist", "--data-dir", generated_data, "--out", tmp_path, "--epochs", "2", *SMALL]
    assert run_cli([*args[:5], tmp_path / "straight", *args[6:]], capsys)[0] == 0
    original = Trainer._train_step
    done = [0]

    def step(self, x, y):
        original(self, x, y)
        done[0] += 1
        if done[0] == 7:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):
                if self._stop_signal is not None:
                    break

    monkeypatch.setattr(Trainer, "_train_step", step)
    code, _, err = run_cli(args, capsys)
    assert code == 130
    assert "--resume" in err and str(tmp_path / "checkpoint.npz") in err
    monkeypatch.setattr(Trainer, "_train_step", original)
    code, _, err = run_cli(args + ["--resume"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "best_model.npz") as resumed, np.load(tmp_path / "straight" / "best_model.npz") as straight:
        assert sorted(resumed.files) == sorted(straight.files)
        for name in straight.files:
            assert np.array_equal(resumed[name], straight[name]), name


def test_divergence_exits_3(tmp_path, generated_data, unverified_loader, capsys):
    args = [
        "train",
        "mnist",
        "--data-dir",
        generated_data,
        "--out",
        tmp_path,
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--clip",
        "0",
        *SMALL,
    ]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        code, _, err = run_cli(args, capsys)
    assert code == 3
    assert err.startswith("meprop: error: loss became")


def test_missing_data_without_network_exits_2_naming_the_files(tmp_path, offline, capsys):
    data_dir = tmp_path / "no-data-here"
    out = tmp_path / "run"
    code, stdout, err = run_cli(["train", "mnist", "--data-dir", data_dir, "--out", out, "--no-progress"], capsys)
    assert code == 2
    assert stdout == ""
    assert err.startswith("meprop: error: MNIST data not found")
    for name in FILE_NAMES:
        assert name in err, name
    assert "--data-dir" in err and "MEPROP_DATA" in err
    assert str(data_dir / "mnist") in err  # where it tried to download to
    assert offline.calls  # it did try the mirrors, and they all failed
    assert not out.exists()
    assert not (data_dir / "mnist").exists()  # nothing half-downloaded left behind


def test_missing_data_default_location_exits_2(tmp_path, offline, capsys):
    code, _, err = run_cli(["train", "mnist", "--out", tmp_path / "run", "--no-progress"], capsys)
    assert code == 2
    for name in FILE_NAMES:
        assert name in err, name
    assert str(tmp_path / "xdg-cache" / "meprop-native" / "mnist") in err
    assert str(tmp_path / "meprop-data") in err


def test_bad_numeric_options_are_reported_not_raised(tmp_path, generated_data, unverified_loader, capsys):
    # LIBRARY BUG (reported): out-of-range numeric options reach the library's
    # constructors, whose ValueError is not caught by cli.main, so the user
    # gets a Python traceback instead of "meprop: error: ..." and exit code 2
    # (argparse-style). --dropout -0.5 is even accepted silently (see
    # test_nn_layers.py::test_mlp_negative_dropout_is_rejected).
    cases = [
        ["--k", "0"],
        ["--epochs", "0"],
        ["--lr", "-1"],
        ["--dropout", "1.5"],
        ["--batch-size", "0"],
        ["--hidden", "0"],
    ]
    not_reported = []
    for i, bad in enumerate(cases):
        args = ["train", "mnist", "--data-dir", generated_data, "--out", tmp_path / str(i), *SMALL, *bad]
        try:
            code, _, err = run_cli(args, capsys)
        except ValueError as error:
            not_reported.append(f"{' '.join(bad)}: uncaught ValueError({error})")
            continue
        if code != 2 or "error" not in err:
            not_reported.append(f"{' '.join(bad)}: exit code {code}")
    assert not_reported == []


def test_an_earlier_run_is_not_replaced_without_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"an interrupted run")
    code, _, err = run_cli(
        ["train", "mnist", "--hidden", "16", "--epochs", "1", "--out", str(out), "--data-dir", str(tmp_path)], capsys
    )
    assert code == 2 and "--resume" in err and "--overwrite" in err
    assert (out / "checkpoint.npz").read_bytes() == b"an interrupted run"
    code, _, err = run_cli(["train", "mnist", "--resume", "--overwrite", "--out", str(out)], capsys)
    assert code == 2 and "contradict" in err


def test_overwrite_starts_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"an interrupted run")
    code, _, err = run_cli(
        ["train", "mnist", "--overwrite", "--out", str(out), "--data-dir", str(tmp_path / "none")], capsys
    )
    assert code == 2 and "MNIST data not found" in err  # got past the output check to the data


def test_an_output_path_that_cannot_be_a_directory_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(["train", "mnist", "--out", str(blocker / "run"), "--data-dir", str(tmp_path)], capsys)
    assert code == 2 and "not a directory" in err


@pytest.mark.parametrize(
    "option",
    [
        ["--train-limit", "-5"],
        ["--layers", "-1"],
        ["--hidden", "0"],
        ["--k", "0"],
        ["--batch-size", "0"],
        ["--epochs", "0"],
        ["--steps-per-epoch", "-1"],
        ["--evals-per-epoch", "0"],
    ],
)
def test_nonsense_sizes_are_usage_errors(capsys, option):
    code, _, err = run_cli(["train", "mnist", *option], capsys)
    assert code == 2 and option[0] in err


def test_bad_dropout_is_named_before_loading_data(tmp_path, capsys):
    code, _, err = run_cli(
        ["train", "mnist", "--dropout", "1.0", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2 and "--dropout" in err


def test_no_verify_uses_files_whose_md5_differs(tmp_path, generated_data, capsys):
    code, _out, err = run_cli(
        [
            "train",
            "mnist",
            "--no-verify",
            "--data-dir",
            str(generated_data),
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--train-limit",
            "200",
            "--no-progress",
            "--out",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert code == 0, err


def test_md5_message_names_the_command_line_option(tmp_path, generated_data, capsys):
    code, _, err = run_cli(["train", "mnist", "--data-dir", str(generated_data), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "--no-verify" in err


def test_a_model_too_large_for_memory_is_a_clear_error(tmp_path, generated_data, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(mnist_task, "mlp", no_memory)
    code, _, err = run_cli(
        ["train", "mnist", "--no-verify", "--data-dir", str(generated_data), "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "not enough memory" in err and "Traceback" not in err


@pytest.mark.skipif(
    not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST not found in {REAL_DATA}/mnist (the shared data copy next to the repository)",
)
@pytest.mark.parametrize("optimizer, k, decay", [("adam", 25, 0.8), ("adagrad", 10, 0.0), ("sgd", 25, 0.8)])
def test_defaults_follow_the_optimizer(tmp_path, capsys, optimizer, k, decay):
    """The accuracy study's defaults (docs/results.md): error feedback under Adam, the paper's meProp under AdaGrad."""
    out = tmp_path / "run"
    code, _, err = run_cli(
        [
            "train",
            "mnist",
            "--optimizer",
            optimizer,
            "--data-dir",
            REAL_DATA,
            "--out",
            out,
            "--epochs",
            "1",
            "--train-limit",
            "100",
            "--steps-per-epoch",
            "2",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    run = json.loads((out / "summary.json").read_text())["run"]
    assert (run["k"], run["selection"]["memory_decay"]) == (k, decay)


@pytest.mark.parametrize("optimizer, decay", [("adagrad", 0.0), ("adam", 0.8)])
def test_pos_memory_decay_follows_the_optimizer(optimizer, decay):
    import argparse

    from meprop_native.tasks.arguments import default_memory_decay

    args = argparse.Namespace(optimizer=optimizer, memory_decay=None)
    assert default_memory_decay(args) == decay
    assert default_memory_decay(argparse.Namespace(optimizer=optimizer, memory_decay=0.5)) == 0.5


@pytest.mark.parametrize(
    "task, optimizer, decay",
    [
        ("mnist", "adam", 0.8),
        ("mnist", "adagrad", 0.0),
        ("mnist", "sgd", 0.8),
        ("parse", "adam", 0.0),
        ("parse", "adagrad", 0.0),
        ("pos", "sgd", 0.0),
    ],
)
def test_each_task_has_its_own_memory_decay_defaults(task, optimizer, decay):
    """The study's evidence differs by task: error feedback helps MNIST under Adam and hurts the parser."""
    from meprop_native.cli import build_parser
    from meprop_native.tasks.arguments import default_memory_decay

    args = build_parser().parse_args(["train", task, "--optimizer", optimizer])
    assert default_memory_decay(args) == decay
    args = build_parser().parse_args(["train", task, "--optimizer", optimizer, "--memory-decay", "0.3"])
    assert default_memory_decay(args) == 0.3
    shown = build_parser().parse_args(["train", task]).memory_decay_defaults
    assert shown[optimizer] == decay


# ---- meSimp --------------------------------------------------------------------------


def test_simplify_run_shrinks_and_resumes(tmp_path, generated_data, unverified_loader, capsys):
    out = tmp_path / "run"
    args = ["train", "mnist", "--data-dir", generated_data, "--out", out, "--epochs", "1", "--simplify"]
    args += ["--hidden", "200", "--no-progress", "--steps-per-epoch", "20", "--train-limit", "200"]
    args += ["--simplify-per-epoch", "4", "--simplify-fraction", "0.5"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    # the setting the study chose where no option says otherwise: k=100, no error feedback
    assert summary["run"]["k"] == 100 and summary["run"]["selection"]["memory_decay"] == 0.0
    assert summary["run"]["simplify"] == {"fraction": 0.5, "per_epoch": 4, "cycle": 5, "reset_optimizer": True}
    simplified = summary["simplify"]
    assert simplified["initial_sizes"] == [200, 200]
    assert all(size < 200 for size in simplified["final_sizes"])
    assert {f["batch"] for f in simplified["forward"]} == {10, 1000}
    with np.load(out / "best_model.npz") as best:
        assert best["0.weight"].shape == (simplified["sizes_at_best"][0], 784)
    args[args.index("--epochs") + 1] = "2"
    code, _, err = run_cli(args + ["--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    "extra, message",
    [(["--mode", "dense"], "needs a meProp --mode"), (["--simplify-fraction", "1.5"], "fraction")],
)
def test_bad_simplify_options_are_named(tmp_path, generated_data, unverified_loader, capsys, extra, message):
    args = ["train", "mnist", "--data-dir", generated_data, "--out", tmp_path / "o", "--simplify", *SMALL, *extra]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
