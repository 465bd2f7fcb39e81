"""Training: the Trainer, its time breakdown and safe checkpoints."""

from .atomic import OutputWriteError
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .dataset import ArrayDataset, Dataset, Evaluator, Splits, accuracy_evaluator
from .model import TrainableModel
from .timing import TimeBreakdown
from .trainer import TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "ArrayDataset",
    "CheckpointError",
    "Dataset",
    "Evaluator",
    "OutputWriteError",
    "Splits",
    "TimeBreakdown",
    "TrainConfig",
    "TrainableModel",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "accuracy_evaluator",
    "load_checkpoint",
    "save_checkpoint",
]
