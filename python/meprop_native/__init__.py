"""meprop-native: meProp (minimal effort back-propagation) on CPUs.

The forward pass of a linear layer stays dense; its backward keeps only the k
largest-magnitude entries of the output gradient, so only k rows of W get a
gradient and only k rows of W are read (Sun et al., ICML 2017).
"""

from ._backward import CompactGradients, linear_backward_compact
from ._cmake import cmake_dir
from ._core import (
    __version__,
    adagrad_update,
    adam_update,
    isa_target,
    linear_backward,
    linear_backward_into,
    linear_forward,
    linear_forward_uses_avx512,
    select_method_for,
    sgd_update,
    topk,
    topk_rows,
    topk_unified,
)
from ._threads import get_num_threads, set_num_threads, thread_limits

__all__ = [
    "CompactGradients",
    "__version__",
    "adagrad_update",
    "adam_update",
    "cmake_dir",
    "get_num_threads",
    "isa_target",
    "linear_backward",
    "linear_backward_compact",
    "linear_backward_into",
    "linear_forward",
    "linear_forward_uses_avx512",
    "select_method_for",
    "set_num_threads",
    "sgd_update",
    "thread_limits",
    "topk",
    "topk_rows",
    "topk_unified",
]
