"""Dependency parsing (the paper's second task): a Chen & Manning (2014) parser.

Modules, one idea each: ``arc_standard`` (the transition system, the static
oracle, the projectivity check), ``vocab`` (ids), ``features`` (the 48
features), ``examples`` (oracle transitions for training), ``model`` (embedding
+ MLP), ``decode`` (greedy batched parsing), ``scoring`` (UAS/LAS), ``data``
(datasets and the evaluator), ``task`` (the command line).
"""

from .task import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
