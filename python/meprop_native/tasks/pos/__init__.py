"""POS tagging (the paper's first task): an LSTM tagger on UD English EWT XPOS tags.

Modules, one idea each: ``features`` (word, shape and affix ids and the
unknown-word rule), ``model`` (embeddings, LSTM and output layer), ``task``
(the command line and training).
"""

from .task import HELP, add_arguments, run, train_tagger

__all__ = ["HELP", "add_arguments", "run", "train_tagger"]
