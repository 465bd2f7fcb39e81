"""Mini-batch training with the paper's protocol, safe checkpoints and resume.

Protocol (Sun et al. 2017): shuffled mini-batches, evaluation on dev and test
after every epoch, and the reported test score is the one at the epoch with the
best dev score. The trainer knows nothing of the task: it draws batches from
:class:`Dataset` objects, and an evaluator scores the model on dev and test
(accuracy by default; a parser reports attachment scores). Each epoch's
permutation is drawn from (seed, epoch), and every other source of randomness
(dropout) is checkpointed, so a run resumed from a checkpoint ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..distributed import World, current_world
from ..nn import softmax_cross_entropy
from ..nn.selection import Selection
from ..optim import Optimizer
from .atomic import atomic_open, remove_stale_temporaries, write_json
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .dataset import Dataset, Evaluator, Splits, accuracy_evaluator
from .model import TrainableModel
from .simplify import Simplifier
from .timing import TimeBreakdown

CHECKPOINT_FORMAT = 4  # 3: Adam's deferred-decay factors, the runs' init; 4: selection state


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """Ctrl-C (SIGINT) or SIGTERM: a checkpoint was saved and training stopped."""


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 10
    seed: int = 0
    checkpoint_every: int = 2000  # steps between mid-epoch checkpoints
    eval_batch_size: int = 1000
    progress: bool = True
    steps_per_epoch: int | None = None  # cap, for smoke runs
    metric: str = "accuracy"  # the evaluator's score that picks the best dev model
    # Evaluations of dev and test per epoch, evenly spaced, the last at the
    # epoch's end; the best dev score over all of them picks the model (the
    # paper authors' MNIST code evaluated 11 times an epoch).
    evals_per_epoch: int = 1

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original."""
        return {
            "batch_size": self.batch_size,
            "seed": self.seed,
            "steps_per_epoch": self.steps_per_epoch,
            "metric": self.metric,
            "evals_per_epoch": self.evals_per_epoch,
        }


@dataclass
class _Position:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    times: TimeBreakdown = field(default_factory=TimeBreakdown)


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``splits``; writes into ``out_dir``.

    The model needs ``forward(inputs) -> logits (M, C)``, ``backward(dlogits)``,
    ``parameters()``, ``state_dict()`` / ``load_state_dict()``, ``train()`` /
    ``eval()``, ``backward_seconds`` (a property: cumulative time in the linear layers'
    backward kernels) and ``random_generators()`` (generators to checkpoint).
    The loss is softmax cross-entropy averaged over the M rows of a batch.

    ``evaluate(model, dataset) -> {name: score}`` scores dev and test after each
    epoch (default: accuracy); ``config.metric`` names the dev score that picks
    the best epoch.

    Files: ``checkpoint.npz`` (resume point), ``metrics.jsonl`` (one line per
    epoch), ``summary.json`` (at the end). All are written atomically.
    """

    def __init__(
        self,
        model: TrainableModel,
        optimizer: Optimizer,
        splits: Splits,
        config: TrainConfig,
        out_dir: Path,
        run_info: dict[str, Any] | None = None,
        evaluate: Evaluator | None = None,
        world: World | None = None,
        simplifier: Simplifier | None = None,
    ) -> None:
        if config.epochs < 1 or config.batch_size < 1 or config.checkpoint_every < 1:
            raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
        if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
            raise ValueError("steps_per_epoch must be >= 1 (or None for whole epochs)")
        if (
            isinstance(config.evals_per_epoch, bool)
            or not isinstance(config.evals_per_epoch, int)
            or config.evals_per_epoch < 1
        ):
            raise ValueError(f"evals_per_epoch must be an integer >= 1, got {config.evals_per_epoch!r}")
        for name, data in zip(Splits._fields, splits):
            if not isinstance(data, Dataset):
                raise TypeError(
                    f"splits.{name} must be a Dataset (len() and batch(indices)), got {type(data).__name__}"
                )
        if len(splits.train) == 0:
            raise ValueError("the training set is empty")
        self.world = world if world is not None else current_world()
        if self.world.distributed:
            use_world = getattr(model, "use_world", None)
            if use_world is None:
                raise ValueError(
                    f"data-parallel training ({self.world.size} ranks) needs a model that exchanges its "
                    f"gradients (use_world); {type(model).__name__} has none: run this task without mpiexec"
                )
            if config.batch_size < self.world.size:
                raise ValueError(
                    f"--batch-size {config.batch_size} is smaller than the {self.world.size} ranks: every rank "
                    "needs at least one example of each mini-batch"
                )
            use_world(self.world)
        if simplifier is not None and simplifier.optimizer is not optimizer:
            raise ValueError("the simplifier must update the trainer's optimizer")
        self.model = model
        self.optimizer = optimizer
        self.simplifier = simplifier
        self.splits = splits
        self.config = config
        self.evaluate_fn = evaluate if evaluate is not None else accuracy_evaluator(config.eval_batch_size)
        self.out_dir = Path(out_dir)
        # As JSON will give it back, so a resumed run compares equal (tuples
        # become lists).
        self.run_info = json.loads(json.dumps(run_info or {}))
        self.checkpoint_path = self.out_dir / "checkpoint.npz"
        self.history: list[dict[str, Any]] = []
        self.interim: list[dict[str, Any]] = []  # evaluations inside epochs (evals_per_epoch > 1)
        self.best: dict[str, Any] = {"dev": None, "epoch": 0, "step": 0, "dev_metrics": None, "test_metrics": None}
        self.best_state: dict[str, np.ndarray] = model.state_dict()
        self.pos = _Position()
        self._stop_signal: int | None = None
        # (bytes exchanged, step in epoch) when the current epoch's stretch began.
        self._exchange_mark = (0, 0)

    # ---- the loop ---------------------------------------------------------

    def steps_per_epoch(self) -> int:
        """ceil(len(train) / batch_size), capped by config.steps_per_epoch."""
        steps = math.ceil(len(self.splits.train) / self.config.batch_size)
        cap = self.config.steps_per_epoch
        return min(steps, cap) if cap else steps

    def interim_eval_steps(self) -> set[int]:
        """The steps within an epoch after which dev and test are evaluated besides its end."""
        steps, n = self.steps_per_epoch(), self.config.evals_per_epoch
        return {round(j * steps / n) for j in range(1, n)} - {0, steps}

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Trains to the configured number of epochs and returns the summary."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # A run killed mid-write leaves its temporary file; the file it was
        # replacing is intact, and the temporary is of no use.
        if self.writes:
            remove_stale_temporaries(self.out_dir)
        self._stop_signal = None
        if resume:
            self._restore()
        handlers = self._install_signal_handlers()
        try:
            while self.pos.epoch < self.config.epochs:
                self._run_epoch()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        simplified = self._simplify_summary()
        self._load_model(self.best_state)
        summary = self._summary()
        if simplified is not None:
            simplified["sizes_at_best"] = self._hidden_sizes_of(self.best_state)
            summary["simplify"] = simplified
        if self.writes:
            write_json(self.out_dir / "summary.json", summary)
        return summary

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: rank 0 of a data-parallel run, or the only one."""
        return self.world.rank == 0

    def _run_epoch(self) -> None:
        cfg = self.config
        epoch = self.pos.epoch
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.splits.train))
        steps = self.steps_per_epoch()
        interim_steps = self.interim_eval_steps()
        bar = self._progress_bar(epoch, steps) if self.writes else None
        self._exchange_mark = (self.world.bytes_exchanged, self.pos.step_in_epoch)
        self.model.train()
        try:
            while self.pos.step_in_epoch < steps:
                s = self.pos.step_in_epoch
                batch = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                self._train_step(*self.splits.train.batch(self._shard(batch)))
                if self.pos.step_in_epoch in interim_steps:
                    self._interim_eval()
                if self.simplifier is not None:
                    self.simplifier.after_step(epoch, self.pos.step_in_epoch, steps, self.pos.global_step)
                if bar is not None:
                    bar.update(1)
                    if s % 100 == 0:
                        self._show_progress(bar)
                if self._stop_signal is not None:
                    self._save_checkpoint()
                    raise TrainingInterrupted(
                        f"stopped by signal {self._stop_signal} at epoch {epoch + 1}, step "
                        f"{self.pos.step_in_epoch}; checkpoint saved to {self.checkpoint_path}; "
                        "run again with --resume to continue"
                    )
                if self.pos.step_in_epoch % cfg.checkpoint_every == 0 and self.pos.step_in_epoch < steps:
                    self._save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        self._end_epoch()

    def _shard(self, batch: np.ndarray) -> np.ndarray:
        """This rank's rows of a global mini-batch (all of them without data parallelism)."""
        world = self.world
        if not world.distributed:
            return batch
        world.batch_rows = len(batch)
        lo, hi = world.shard(len(batch))
        if hi == lo:
            raise ValueError(
                f"a mini-batch of {len(batch)} examples cannot be split over {world.size} ranks; "
                "choose a --batch-size whose last mini-batch has at least one example per rank"
            )
        return batch[lo:hi]

    def _train_step(self, inputs: Any, y: np.ndarray) -> None:
        times = self.pos.times
        kernels_before = self.model.backward_seconds
        t0 = time.perf_counter()
        logits = self.model.forward(inputs)
        world = self.world
        batch_rows = world.batch_rows if world.distributed else len(y)
        loss, grad = softmax_cross_entropy(logits, y, batch_rows)
        loss_sum = loss * len(y)
        correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
        if world.distributed:
            # One exchange a step: the loss, the hits and whether any rank was
            # asked to stop, so that every rank stops (or diverges) at the same step.
            stop = float(self._stop_signal or 0)
            loss_sum, correct_sum, stop = world.sum_scalars([loss_sum, correct, stop])
            correct = int(correct_sum)
            loss = loss_sum / batch_rows
            if stop and self._stop_signal is None:
                self._stop_signal = int(signal.SIGTERM)
        t1 = time.perf_counter()
        if not math.isfinite(loss):
            kept = (
                f"the last good checkpoint is {self.checkpoint_path}"
                if self.checkpoint_path.exists()
                else "no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"loss became {loss} at epoch {self.pos.epoch + 1}, step {self.pos.step_in_epoch + 1}; "
                f"training stopped and {kept} (try a smaller --lr)"
            )
        self.model.backward(grad)
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        times.forward += t1 - t0
        times.overall_backprop += t2 - t1
        times.backprop += self.model.backward_seconds - kernels_before
        times.optimizer += t3 - t2
        times.total += t3 - t0
        self.pos.loss_sum += loss_sum
        self.pos.correct += correct
        self.pos.seen += batch_rows
        self.pos.step_in_epoch += 1
        self.pos.global_step += 1

    def _evaluate_and_keep_best(self) -> tuple[dict[str, float], dict[str, float], float]:
        """Evaluates dev and test; keeps the model if its dev score is the best so far."""
        start = time.perf_counter()
        dev = self.evaluate(self.splits.dev)
        test = self.evaluate(self.splits.test)
        if self.config.metric not in dev:
            raise ValueError(f"the evaluator gives {sorted(dev)}, not the metric {self.config.metric!r}")
        score = dev[self.config.metric]
        if self.best["dev"] is None or score > self.best["dev"]:
            self.best = {
                "dev": score,
                "epoch": self.pos.epoch + 1,
                "step": self.pos.global_step,
                "dev_metrics": dev,
                "test_metrics": test,
            }
            self.best_state = self.model.state_dict()
        return dev, test, time.perf_counter() - start

    def _interim_eval(self) -> None:
        dev, test, seconds = self._evaluate_and_keep_best()
        self.interim.append(
            {
                "epoch": self.pos.epoch + 1,
                "step": self.pos.global_step,
                "dev": dev,
                "test": test,
                "eval_seconds": seconds,
            }
        )

    def _end_epoch(self) -> None:
        dev, test, eval_seconds = self._evaluate_and_keep_best()
        epoch = self.pos.epoch + 1
        record = {
            "epoch": epoch,
            "step": self.pos.global_step,
            "train_loss": self.pos.loss_sum / max(self.pos.seen, 1),
            "train_accuracy": self.pos.correct / max(self.pos.seen, 1),
            "dev": dev,
            "test": test,
            "time": self.pos.times.as_dict(),
            "eval_seconds": eval_seconds,
            "kept_fraction": self._kept_fraction(),
            "exchange": self._exchange_record(),
        }
        if self.simplifier is not None:
            self.simplifier.end_epoch(self.pos.epoch, self.pos.global_step)
            record["hidden_sizes"] = self.simplifier.sizes
        self.history.append(record)
        self.pos = _Position(epoch=epoch, global_step=self.pos.global_step)
        self._write_metrics()
        self._save_checkpoint()
        self._report_epoch(record)

    def evaluate(self, data: Dataset) -> dict[str, float]:
        """The evaluator's scores of the model in evaluation mode (dropout off)."""
        self.model.eval()
        try:
            scores = self.evaluate_fn(self.model, data)
        finally:
            self.model.train()
        return {name: float(value) for name, value in scores.items()}

    # ---- checkpoints ------------------------------------------------------

    def _exchange_record(self) -> dict[str, Any]:
        """The ranks and the bytes exchanged per training step in this epoch (0 alone)."""
        bytes0, step0 = self._exchange_mark
        steps = self.pos.step_in_epoch - step0
        per_step = (self.world.bytes_exchanged - bytes0) / steps if steps else 0.0
        return {"world_size": self.world.size, "bytes_per_step": per_step}

    def _save_checkpoint(self) -> None:
        if not self.writes:
            return
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"best/{k}": v for k, v in self.best_state.items()})
        arrays.update({f"optimizer/{k}": v for k, v in self.optimizer.state_dict().items()})
        for i, selection in enumerate(self._selections()):
            arrays.update({f"selection/{i}/{k}": v for k, v in selection.state_dict().items()})
        pos = asdict(self.pos)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "run": self.run_info,
            "config": self.config.identity(),
            "position": pos,
            "history": self.history,
            "interim": self.interim,
            "best": self.best,
            "rng": [rng.bit_generator.state for rng in self.model.random_generators()],
        }
        if self.simplifier is not None:
            meta["simplify"] = self.simplifier.state()
        save_checkpoint(self.checkpoint_path, arrays, meta)

    def _restore(self) -> None:
        arrays, meta = load_checkpoint(self.checkpoint_path)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{self.checkpoint_path} has checkpoint format {meta.get('format')}, this version reads "
                f"{CHECKPOINT_FORMAT}; start a new run in another --out"
            )
        if meta.get("config") != self.config.identity() or meta.get("run") != self.run_info:
            differences = _differences(meta.get("run"), self.run_info) + _differences(
                meta.get("config"), self.config.identity()
            )
            raise CheckpointError(
                f"{self.checkpoint_path} was written by a run with other settings: {'; '.join(differences)}; "
                "resume with the same options, start over with --overwrite, or use another --out"
            )

        def section(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        try:
            self._load_model(section("model/"))
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"{self.checkpoint_path}: {error.args[0] if error.args else error}") from error
        self.best_state = section("best/")
        try:
            self.optimizer.fit_parameters()  # a simplified model's parameters are smaller
            self.optimizer.load_state_dict(section("optimizer/"))
        except ValueError as error:
            raise CheckpointError(f"{self.checkpoint_path}: {error.args[0] if error.args else error}") from error
        for i, selection in enumerate(self._selections()):
            try:
                selection.load_state_dict(section(f"selection/{i}/"))
            except ValueError as error:
                raise CheckpointError(f"{self.checkpoint_path}: layer {i}: {error}") from error
        generators = self.model.random_generators()
        if len(generators) != len(meta["rng"]):
            raise CheckpointError(
                f"{self.checkpoint_path} holds {len(meta['rng'])} random generators, the model has {len(generators)}"
            )
        for rng, state in zip(generators, meta["rng"]):
            rng.bit_generator.state = state
        pos = dict(meta["position"])
        pos["times"] = TimeBreakdown.from_dict(pos["times"])
        self.pos = _Position(**pos)
        self.history = meta["history"]
        self.interim = meta["interim"]
        self.best = meta["best"]
        if self.simplifier is not None:
            self.simplifier.load_state(meta.get("simplify", []))

    def _load_model(self, state: dict[str, np.ndarray]) -> None:
        """Loads a model state, first taking its layer sizes where meSimp may have changed them."""
        resize = getattr(self.model, "resize_like", None)
        if self.simplifier is not None and resize is not None:
            resize(state)
        self.model.load_state_dict(state)

    def _simplify_summary(self) -> dict[str, Any] | None:
        """meSimp's report on the model as training left it (before the best one is loaded)."""
        if self.simplifier is None:
            return None
        return self.simplifier.summary(sorted({self.config.batch_size, self.config.eval_batch_size}))

    def _hidden_sizes_of(self, state: dict[str, np.ndarray]) -> list[int]:
        """The simplified layers' sizes in a model state (the best model's, say)."""
        assert self.simplifier is not None
        names = self.simplifier.weight_names(self.model)
        return [int(np.shape(state[name])[0]) for name in names if name in state]

    # ---- output -----------------------------------------------------------

    def _write_metrics(self) -> None:
        if not self.writes:
            return
        with atomic_open(self.out_dir / "metrics.jsonl", "w") as handle:
            for record in self.history:
                handle.write(json.dumps(record, sort_keys=True) + "\n")

    def _kept_fraction(self) -> dict[str, Any]:
        """The fraction of dy entries kept since the run began: per meProp layer
        (in the model's order; layers that are always dense, such as a
        10-class output layer, are not meProp layers) and over all of them
        (entries kept / entries seen)."""
        selections = [s for s in self._selections() if not s.dense]
        kept = sum(s.kept for s in selections)
        seen = sum(s.seen for s in selections)
        return {"layers": [s.kept_fraction for s in selections], "all": kept / seen if seen else None}

    def _selections(self) -> list[Selection]:
        return self.model.selections()

    def _summary(self) -> dict[str, Any]:
        total = TimeBreakdown()
        for record in self.history:
            total.add(TimeBreakdown.from_dict(record["time"]))
        return {
            "run": self.run_info,
            "epochs": len(self.history),
            "metric": self.config.metric,
            "best_dev": self.best["dev"],
            "best_epoch": self.best["epoch"],
            "best_step": self.best["step"],
            "test_at_best_dev": self.best["test_metrics"][self.config.metric] if self.best["test_metrics"] else None,
            "best_dev_metrics": self.best["dev_metrics"],
            "test_metrics_at_best_dev": self.best["test_metrics"],
            "time": total.as_dict(),
            "kept_fraction": self.history[-1]["kept_fraction"] if self.history else self._kept_fraction(),
            "world_size": self.world.size,
            "exchange_bytes_per_step": (
                self.history[-1].get("exchange", {}).get("bytes_per_step", 0.0) if self.history else 0.0
            ),
            "history": self.history,
            "interim_evaluations": self.interim,
            "peak_rss_mb": _peak_rss_mb(),
        }

    def _progress_bar(self, epoch: int, steps: int) -> Any:
        if not self.config.progress:
            return None
        from tqdm import tqdm

        self._bar_start = (time.perf_counter(), self.pos.seen)
        return tqdm(
            total=steps,
            initial=self.pos.step_in_epoch,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
        )

    def _show_progress(self, bar: Any) -> None:
        t0, seen0 = self._bar_start
        rate = (self.pos.seen - seen0) / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(
            loss=f"{self.pos.loss_sum / max(self.pos.seen, 1):.4f}",
            acc=f"{self.pos.correct / max(self.pos.seen, 1):.4f}",
            ex_s=f"{rate:.0f}",
        )

    def _report_epoch(self, record: dict[str, Any]) -> None:
        if not self.config.progress or not self.writes:
            return
        t = record["time"]
        metric = self.config.metric
        sizes = record.get("hidden_sizes")
        print(
            f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  dev {metric} {record['dev'][metric]:.4f}  "
            f"test {record['test'][metric]:.4f}  | fwd {t['forward']:.2f}s  backprop {t['backprop']:.2f}s  "
            f"overall bp {t['overall_backprop']:.2f}s  opt {t['optimizer']:.2f}s  total {t['total']:.2f}s"
            + (f"  kept {record['kept_fraction']['all']:.4f}" if record["kept_fraction"]["all"] is not None else "")
            + (f"  units {' '.join(map(str, sizes))}" if sizes else ""),
            flush=True,
        )

    def _install_signal_handlers(self) -> dict[int, Any]:
        def request_stop(signum: int, frame: Any) -> None:
            self._stop_signal = signum

        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                previous[signum] = signal.signal(signum, request_stop)
        return previous


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """The settings that differ between a checkpoint's and this run's, each named:
    "k: checkpoint 20, this run 25" (nested dicts by dotted name)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            name = f"{prefix}{key}"
            if key not in saved:
                found.append(f"{name}: not in the checkpoint, this run {current[key]!r}")
            elif key not in current:
                found.append(f"{name}: checkpoint {saved[key]!r}, not in this run")
            else:
                found += _differences(saved[key], current[key], f"{name}.")
        return found
    if saved != current:
        return [f"{prefix.rstrip('.')}: checkpoint {saved!r}, this run {current!r}"]
    return []


def _peak_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # not on POSIX
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
