"""MNIST, split as in the meProp paper: 55,000 train / 5,000 dev / 10,000 test.

The dev set is the FIRST 5,000 images of the official training file and the
training set the remaining 55,000; the test set is the official 10,000-image
test file. Images are returned as float32 in [0, 1], flattened row-major to
784 features; labels as int64 class indices 0..9.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from .idx import IdxFormatError, read_idx
from .paths import DEFAULT_TIMEOUT, DataFile, locate_files

__all__ = [
    "DEV_SIZE",
    "MIRRORS",
    "MNIST_FILES",
    "MnistSplits",
    "load_mnist",
    "locate_mnist",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Number of leading training images held out as the dev set (the paper's split).
DEV_SIZE = 5000
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

#: Mirrors of the original files, tried in order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The four published files with their canonical md5s (gzipped, and of the
#: gunzipped content for users who decompressed them).
MNIST_FILES: dict[str, DataFile] = {
    "train_images": DataFile(
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train_labels": DataFile(
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "test_images": DataFile(
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "test_labels": DataFile(
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}


class MnistSplits(NamedTuple):
    """The three MNIST splits.

    ``*_x``: float32, shape (N, 784), values in [0, 1] (pixel / 255).
    ``*_y``: int64, shape (N,), values in 0..9.
    N is 55,000 for train, 5,000 for dev and 10,000 for test on the real data.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    dev_x: np.ndarray
    dev_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def locate_mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Path]:
    """Paths of the four MNIST files, downloading missing ones.

    Returns:
        ``{"train_images": path, "train_labels": ..., "test_images": ...,
        "test_labels": ...}``.

    Raises:
        DatasetNotFoundError: files missing and not downloadable.
        ChecksumError: a local file has the wrong md5 (``verify=True``).

    See :func:`meprop_native.data.paths.locate_files` for the search order.
    """
    by_name = locate_files(
        list(MNIST_FILES.values()),
        data_dir,
        subdir="mnist",
        mirrors=MIRRORS,
        download=download,
        verify=verify,
        timeout=timeout,
        dataset="MNIST",
    )
    return {key: by_name[spec.name] for key, spec in MNIST_FILES.items()}


def _read_images(path: Path) -> np.ndarray:
    """(N, 28, 28) uint8 images -> (N, 784) float32 in [0, 1]."""
    images = read_idx(path, expect_dtype=np.uint8, expect_ndim=3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise IdxFormatError(f"{os.fspath(path)}: expected 28x28 images, got {images.shape[1]}x{images.shape[2]}")
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x /= np.float32(255)  # in place: no second float32 copy of 188 MB
    return x


def _read_labels(path: Path) -> np.ndarray:
    """(N,) uint8 labels -> (N,) int64, checked to lie in 0..9."""
    labels = read_idx(path, expect_dtype=np.uint8, expect_ndim=1)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise IdxFormatError(
            f"{os.fspath(path)}: labels must be in 0..{NUM_CLASSES - 1}, found "
            f"{int(labels[i])} at index {i} ({bad.size} bad labels in all)"
        )
    return labels.astype(np.int64)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split, checked to have the same count."""
    x = _read_images(images_path)
    y = _read_labels(labels_path)
    if x.shape[0] != y.shape[0]:
        raise IdxFormatError(
            f"{os.fspath(images_path)} has {x.shape[0]} images but {os.fspath(labels_path)} has {y.shape[0]} labels"
        )
    return x, y


def load_mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> MnistSplits:
    """Loads MNIST with the paper's train / dev / test split.

    Args:
        data_dir: directory holding the four files, or its parent holding
            ``mnist/`` (the ``--data-dir`` flag). Searched before
            ``$MEPROP_DATA`` and the user cache directory.
        download: download missing files from the public mirrors into
            ``<data_dir>/mnist`` (or the cache directory if ``data_dir`` is
            None). False never touches the network.
        verify: check the md5 of local files against the canonical values.
            Pass False for a custom dataset in the MNIST format.
        timeout: seconds for each network connect / read.

    Returns:
        :class:`MnistSplits`: train = training images 5000.., dev = training
        images 0..4999, test = the t10k files. x: float32 (N, 784) in [0, 1];
        y: int64 (N,) in 0..9.

    Raises:
        DatasetNotFoundError: files missing and not downloadable.
        ChecksumError: a local file has the wrong md5.
        IdxFormatError: a file is malformed, images and labels counts differ,
            labels fall outside 0..9, images are not 28x28, or the training
            file has no more than 5,000 images.
    """
    paths = locate_mnist(data_dir, download, verify=verify, timeout=timeout)
    full_x, full_y = _read_pair(paths["train_images"], paths["train_labels"])
    test_x, test_y = _read_pair(paths["test_images"], paths["test_labels"])
    if full_x.shape[0] <= DEV_SIZE:
        raise IdxFormatError(
            f"{os.fspath(paths['train_images'])}: {full_x.shape[0]} training images, need more "
            f"than {DEV_SIZE} to hold out the first {DEV_SIZE} as the dev set"
        )
    # Slices of C-contiguous arrays along axis 0 stay contiguous: no copies.
    return MnistSplits(
        train_x=full_x[DEV_SIZE:],
        train_y=full_y[DEV_SIZE:],
        dev_x=full_x[:DEV_SIZE],
        dev_y=full_y[:DEV_SIZE],
        test_x=test_x,
        test_y=test_y,
    )
