"""Dataset loading for the meProp experiments (NumPy, the standard library and conllu).

Nothing here imports the compiled core, so the data code can be used and
tested on its own.

    >>> from meprop_native.data import load_mnist
    >>> splits = load_mnist("path/to/data")       # doctest: +SKIP
    >>> splits.train_x.shape, splits.train_x.dtype  # doctest: +SKIP
    ((55000, 784), dtype('float32'))
"""

from .idx import IDX_TYPES, IdxFormatError, parse_idx, read_idx
from .mnist import DEV_SIZE, MIRRORS, MNIST_FILES, MnistSplits, load_mnist, locate_mnist
from .paths import (
    ENV_VAR,
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    DownloadError,
    candidate_dirs,
    default_cache_dir,
    download_file,
    file_md5,
    locate_files,
    search_roots,
)
from .ud import (
    UD_EWT_FILES,
    ConlluFormatError,
    Sentence,
    UDSplits,
    load_ud_ewt,
    locate_ud_ewt,
    read_conllu,
)

__all__ = [
    "DEV_SIZE",
    "ENV_VAR",
    "IDX_TYPES",
    "MIRRORS",
    "MNIST_FILES",
    "UD_EWT_FILES",
    "ChecksumError",
    "ConlluFormatError",
    "DataFile",
    "DatasetNotFoundError",
    "DownloadError",
    "IdxFormatError",
    "MnistSplits",
    "Sentence",
    "UDSplits",
    "candidate_dirs",
    "default_cache_dir",
    "download_file",
    "file_md5",
    "load_mnist",
    "load_ud_ewt",
    "locate_files",
    "locate_mnist",
    "locate_ud_ewt",
    "parse_idx",
    "read_conllu",
    "read_idx",
    "search_roots",
]
