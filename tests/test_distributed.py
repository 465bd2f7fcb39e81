"""Data-parallel training on MPI (meprop_native.distributed).

The unit tests run everywhere. The runs under ``mpiexec -n 2`` and ``-n 3
--oversubscribe`` need mpi4py and an mpiexec beside the Python that runs the
tests (``pip install ".[mpi]"``) and skip, saying so, without them. They
check the contract: the state after training (weights, optimizer, error
feedback memory) is bitwise the same for 1, 2 and 3 ranks and equal to the
run without MPI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from meprop_native.distributed import (
    LocalWorld,
    current_world,
    find_mpiexec,
    launch_environment,
    launched_by_mpi,
    shard_bounds,
)
from meprop_native.nn import mlp, softmax_cross_entropy

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "mpi_worker.py"
REAL_DATA = ROOT.parent / "shared" / "data"


_mpiexec = find_mpiexec


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install '.[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec beside this Python or on PATH (pip install '.[mpi]' brings Open MPI's)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def _environment() -> dict[str, str]:
    return launch_environment(threads=1)


def _launch(ranks: int | None, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = [] if ranks is None else [str(_mpiexec()), "--oversubscribe", "-n", str(ranks)]
    return subprocess.run(prefix + command, env=_environment(), capture_output=True, text=True, timeout=300, **kwargs)


def _state(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "checkpoint.npz") as archive:
        return {k: archive[k] for k in archive.files if not k.startswith("__")}  # not the metadata (timings)


def _assert_bitwise_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key], equal_nan=True), key


# ---- without MPI ----------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 10, 33])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shards_cover_the_batch_in_rank_order(rows: int, size: int) -> None:
    bounds = [shard_bounds(rows, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_without_mpiexec_the_world_is_this_process_and_mpi_is_not_imported() -> None:
    assert not launched_by_mpi()
    world = current_world()
    assert isinstance(world, LocalWorld) and world.size == 1 and not world.distributed
    x = np.arange(6.0).reshape(3, 2)
    assert world.gather_rows(x, 3) is x and world.allreduce_sum(x) is x
    code = "import meprop_native.cli, meprop_native.distributed, sys; print('mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=_environment(), capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_loss_gradient_of_a_shard_divides_by_the_global_batch() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((10, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 10)
    _, whole = softmax_cross_entropy(logits, labels)
    parts = [softmax_cross_entropy(logits[lo:hi], labels[lo:hi], 10)[1] for lo, hi in ((0, 3), (3, 6), (6, 10))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_which_layers_gather_their_factors() -> None:
    model = mlp([784, 500, 500, 10], k=25)
    hidden, output = model.linear_layers()[0], model.linear_layers()[-1]
    assert hidden.exchanges_factors()  # meProp: always
    assert output.exchanges_factors()  # dense but narrow: its backward is cheap to repeat
    dense = mlp([784, 500, 10], k=None).linear_layers()[0]
    assert not dense.exchanges_factors()  # wide and dense: Allreduce of its gradient


def test_a_model_without_use_world_is_refused_under_data_parallelism() -> None:
    from meprop_native.optim import SGD
    from meprop_native.train import ArrayDataset, Splits, TrainConfig, Trainer

    class TwoRanks(LocalWorld):
        size = 2

    class Opaque:
        def state_dict(self) -> dict:
            return {}

    data = ArrayDataset(np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="use_world"):
        Trainer(Opaque(), SGD([], lr=0.1), Splits(data, data, data), TrainConfig(), Path("unused"), world=TwoRanks())  # type: ignore[arg-type]


# ---- under mpiexec --------------------------------------------------------

SETTINGS = {
    "meProp, error feedback, Adam": {"k": 5, "selection": {"memory_decay": 0.8}},
    "unified top-k, AdaGrad": {"k": 5, "mode": "unified", "optimizer": "adagrad"},
    "random selection, dropout, SGD": {"k": 5, "selection": {"select": "random"}, "dropout": 0.2, "optimizer": "sgd"},
    "adaptive k, warm-up": {
        "k": 5,
        "selection": {"k_rule": "mass", "k_mass": 0.5, "k_min": 2, "k_max": 12, "warmup_steps": 8, "warmup": "ramp"},
    },
    "uneven shards (batch 7)": {"k": 5, "batch": 7},
}


@needs_mpi
@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_rank_count_trains_bitwise_like_one_process(tmp_path: Path, name: str) -> None:
    options = json.dumps(SETTINGS[name])
    states = {}
    for ranks in (None, 2, 3):
        out = tmp_path / f"ranks-{ranks}"
        result = _launch(ranks, [sys.executable, str(WORKER), str(out), options])
        assert result.returncode == 0, result.stderr[-3000:]
        states[ranks] = _state(out)
    _assert_bitwise_equal(states[None], states[2])
    _assert_bitwise_equal(states[None], states[3])


@needs_mpi
def test_dense_layers_sum_their_gradients_over_the_ranks(tmp_path: Path) -> None:
    """Wide dense layers use Allreduce: the same result up to rounding, not bitwise."""
    options = json.dumps({"k": None, "optimizer": "sgd", "lr": 0.05, "epochs": 1})
    states = {}
    for ranks in (None, 2):
        out = tmp_path / f"ranks-{ranks}"
        result = _launch(ranks, [sys.executable, str(WORKER), str(out), options])
        assert result.returncode == 0, result.stderr[-3000:]
        states[ranks] = _state(out)
    for key, value in states[None].items():
        if key.startswith("model/"):
            np.testing.assert_allclose(states[2][key], value, rtol=1e-4, atol=1e-5, err_msg=key)


@needs_mpi
def test_an_error_on_one_rank_ends_the_job_naming_the_rank(tmp_path: Path) -> None:
    """Rank 1 fails in its 5th update while rank 0 waits in an exchange: no hang."""
    options = json.dumps({"k": 5, "fail_rank": 1, "fail_step": 5})
    start = time.monotonic()
    result = _launch(2, [sys.executable, str(WORKER), str(tmp_path / "out"), options])
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    assert "error on rank 1 of 2: RuntimeError: injected failure at step 5" in result.stderr, result.stderr[-2000:]


def _running(pid: int) -> bool:
    """Whether the process lives (a zombie waiting for its parent to reap it does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status and "\nState:\tX" not in status


needs_mnist = pytest.mark.skipif(
    not (REAL_DATA / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"real MNIST not found in {REAL_DATA}/mnist (the shared data copy next to the repository)",
)
CLI = [sys.executable, "-m", "meprop_native.cli"]


def _mnist(out: Path, *extra: str) -> list[str]:
    common = ["train", "mnist", "--epochs", "1", "--seed", "1", "--data-dir", str(REAL_DATA), "--no-progress"]
    return [*CLI, *common, "--out", str(out), *(extra or ("--steps-per-epoch", "300"))]


@needs_mpi
@needs_mnist
def test_meprop_train_mnist_under_mpiexec_writes_the_same_best_model(tmp_path: Path) -> None:
    models = {}
    for ranks in (None, 2, 3):
        out = tmp_path / f"ranks-{ranks}"
        result = _launch(ranks, _mnist(out))
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(out / "best_model.npz") as archive:
            models[ranks] = {k: archive[k] for k in archive.files}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["world_size"] == (ranks or 1)
        assert (summary["exchange_bytes_per_step"] > 0) == (ranks is not None)
    _assert_bitwise_equal(models[None], models[2])
    _assert_bitwise_equal(models[None], models[3])


@needs_mpi
@needs_mnist
def test_killing_a_rank_ends_the_job_and_resume_is_bit_exact(tmp_path: Path) -> None:
    reference = tmp_path / "uninterrupted"
    assert _launch(None, _mnist(reference, "--steps-per-epoch", "3000")).returncode == 0
    out = tmp_path / "killed"
    # Each rank notes its process id before training.
    code = (
        "import os, sys; from pathlib import Path; "
        "Path(sys.argv[1], 'pid-' + os.environ['OMPI_COMM_WORLD_RANK']).write_text(str(os.getpid())); "
        "from meprop_native.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    out.mkdir()
    argv = _mnist(out, "--steps-per-epoch", "3000")[3:]  # after "python -m meprop_native.cli"
    job = subprocess.Popen(
        [str(_mpiexec()), "--oversubscribe", "-n", "2", sys.executable, "-c", code, str(out), *argv],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    assert (out / "checkpoint.npz").exists(), "no checkpoint was written"
    os.kill(int((out / "pid-1").read_text()), signal.SIGKILL)
    killed_at = time.monotonic()
    _, stderr = job.communicate(timeout=30)
    assert time.monotonic() - killed_at < 10, "the job outlived its killed rank by 10 s"
    assert job.returncode != 0
    assert "rank 1" in stderr, stderr[-2000:]
    assert not _running(int((out / "pid-0").read_text())), "rank 0 outlived the job"
    resumed = _launch(2, [*_mnist(out, "--steps-per-epoch", "3000"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    with np.load(reference / "best_model.npz") as a, np.load(out / "best_model.npz") as b:
        _assert_bitwise_equal({k: a[k] for k in a.files}, {k: b[k] for k in b.files})
