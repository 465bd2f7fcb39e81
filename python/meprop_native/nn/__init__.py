"""Layers with a NumPy forward and a native meProp backward."""

from .activations import ReLU, Sigmoid, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .loss import softmax_cross_entropy
from .lstm import LSTM, BiLSTM, offsets_from_lengths
from .module import Module
from .parameter import Parameter
from .selection import Selection
from .sequential import Sequential, mlp

__all__ = [
    "LSTM",
    "BiLSTM",
    "Dropout",
    "Embedding",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Selection",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "mlp",
    "offsets_from_lengths",
    "softmax_cross_entropy",
]
