"""Layers with a NumPy forward and a native meProp backward."""

from .activations import ReLU, Sigmoid, Tanh
from .dropout import Dropout
from .linear import Linear
from .loss import softmax_cross_entropy
from .module import Module
from .parameter import Parameter
from .sequential import Sequential, mlp

__all__ = [
    "Dropout",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "mlp",
    "softmax_cross_entropy",
]
