"""Training: the Trainer, its time breakdown and safe checkpoints."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .timing import TimeBreakdown
from .trainer import Splits, TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "CheckpointError",
    "Splits",
    "TimeBreakdown",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "load_checkpoint",
    "save_checkpoint",
]
