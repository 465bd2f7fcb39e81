"""Tests of meprop_native.data: the IDX reader, the MNIST loader, data paths.

Every file is generated in tmp_path by the small IDX writer below; the network
is never touched (urlopen is replaced by a fake in every test). The only test
that reads real MNIST uses the shared copy next to the repository and is
skipped when it is absent.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from meprop_native.data import (
    DEV_SIZE,
    ENV_VAR,
    MIRRORS,
    MNIST_FILES,
    ChecksumError,
    DataFile,
    DatasetNotFoundError,
    DownloadError,
    IdxFormatError,
    MnistSplits,
    candidate_dirs,
    default_cache_dir,
    download_file,
    file_md5,
    load_mnist,
    locate_files,
    locate_mnist,
    parse_idx,
    read_idx,
    search_roots,
)
from meprop_native.data import paths as paths_mod

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"

TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}

NAMES = {key: spec.name for key, spec in MNIST_FILES.items()}


# ---- helpers -----------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr``: magic, big-endian dims, big-endian data."""
    arr = np.asarray(arr)
    header = bytes([0, 0, TYPE_CODES[arr.dtype], arr.ndim])
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_file(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    return write_file(path, idx_bytes(arr), gz)


def make_mnist(
    directory: Path,
    rng: np.random.Generator,
    n_train: int = DEV_SIZE + 10,
    n_test: int = 20,
    gz: bool = True,
) -> dict[str, np.ndarray]:
    """Writes a small random dataset in MNIST's format; returns its arrays."""
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, arr in arrays.items():
        name = NAMES[key] if gz else NAMES[key][: -len(".gz")]
        write_idx(directory / name, arr, gz=gz)
    return arrays


class FakeUrlopen:
    """Stands in for urllib.request.urlopen: serves bytes by URL, or fails.

    ``served[url]`` is bytes (returned), or an exception (raised). Unknown
    URLs fail like a machine without network. ``calls`` records (url, timeout).
    """

    def __init__(self, served: dict[str, object] | None = None) -> None:
        self.served = dict(served or {})
        self.calls: list[tuple[str, float | None]] = []

    def __call__(self, url: str, timeout: float | None = None) -> io.BytesIO:
        self.calls.append((url, timeout))
        got = self.served.get(url)
        if got is None:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        if isinstance(got, BaseException):
            raise got
        assert isinstance(got, bytes)
        return io.BytesIO(got)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> FakeUrlopen:
    """No test sees the real cache, $MEPROP_DATA, or the network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    fake = FakeUrlopen()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return fake


def leftovers(directory: Path) -> list[str]:
    """Names in ``directory`` that look like temporary download files."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ---- IDX reader: round trips -------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(TYPE_CODES), ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (1, 2, 1, 3)])
def test_idx_round_trip(tmp_path, rng, gz, dtype, shape):
    if dtype.kind == "f":
        arr = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    path = write_idx(tmp_path / "a.idx", arr, gz=gz)
    got = read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative
    assert got.shape == shape
    assert got.flags.writeable and got.flags.c_contiguous
    np.testing.assert_array_equal(got, arr)


def test_idx_empty_dimension(tmp_path):
    got = read_idx(write_idx(tmp_path / "e.idx", np.zeros((0, 28, 28), np.uint8)))
    assert got.shape == (0, 28, 28)


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_raw = write_idx(tmp_path / "gzipped-without-suffix", arr, gz=True)
    raw_named_gz = write_idx(tmp_path / "raw-with-suffix.gz", arr, gz=False)
    np.testing.assert_array_equal(read_idx(gz_named_raw), arr)
    np.testing.assert_array_equal(read_idx(raw_named_gz), arr)


def test_idx_big_endian_on_disk(tmp_path):
    # 0x0102 stored big-endian must read back as 258 whatever the host order.
    data = bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 1) + b"\x01\x02"
    got = read_idx(write_file(tmp_path / "be.idx", data))
    assert got.tolist() == [258]


def test_parse_idx_bytes():
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    np.testing.assert_array_equal(parse_idx(idx_bytes(arr)), arr)
    with pytest.raises(IdxFormatError, match=r"^<bytes>: empty file"):
        parse_idx(b"")


def test_expected_dtype_and_ndim(tmp_path):
    path = write_idx(tmp_path / "labels.idx", np.zeros(5, np.uint8))
    assert read_idx(path, expect_dtype=np.uint8, expect_ndim=1).shape == (5,)
    with pytest.raises(IdxFormatError) as e:
        read_idx(path, expect_ndim=3)
    assert str(path) in str(e.value)
    assert "unexpected magic number 0x00000801: expected a 3-D IDX file, this one is 1-D uint8" in (str(e.value))
    with pytest.raises(IdxFormatError, match="expected a 1-D float32 IDX file"):
        read_idx(path, expect_dtype=np.float32, expect_ndim=1)


# ---- IDX reader: corrupt files -----------------------------------------------

GOOD = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))  # 16-byte header


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty file"),
        (
            b"\x00\x00\x08",
            "too short for an IDX header: the magic number needs 4 bytes, file has 3",
        ),
        (b"\x12\x34" + GOOD[2:], "bad magic number 0x12340803: the first two bytes must be zero"),
        (b"\x00\x01" + GOOD[2:], "bad magic number 0x00010803"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "bad magic number 0x00000703: unknown type code 0x07"),
        (GOOD[:2] + b"\x10" + GOOD[3:], "unknown type code 0x10 (known: 0x08 (uint8)"),
        (GOOD[:3] + b"\x00" + GOOD[4:], "declares 0 dimensions"),
        (
            GOOD[:10],
            "header truncated: magic 0x00000803 declares 3 dimension(s), a 16-byte header, file has 10 bytes",
        ),
        (
            GOOD[:-1],
            "truncated: header says 3x4x5 uint8 = 60 bytes, file has 59 after the 16-byte header",
        ),
        (GOOD[:16], "truncated: header says 3x4x5 uint8 = 60 bytes, file has 0"),
        (
            GOOD + b"\x00\x00",
            "2 unexpected trailing bytes: header says 3x4x5 uint8 = 60 bytes, file has 62",
        ),
    ],
    ids=[
        "empty",
        "short-magic",
        "bad-magic",
        "nonzero-byte-1",
        "type-code-07",
        "type-code-10",
        "ndim-0",
        "short-header",
        "truncated-payload",
        "no-payload",
        "trailing-bytes",
    ],
)
def test_corrupt_idx_names_file_and_problem(tmp_path, gz, data, problem):
    path = write_file(tmp_path / "train-images-idx3-ubyte.gz", data, gz=gz)
    with pytest.raises(IdxFormatError) as e:
        read_idx(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    assert problem in msg
    assert isinstance(e.value, ValueError)


def test_wide_types_truncated_message(tmp_path):
    arr = np.zeros((2, 3), np.float64)
    path = write_file(tmp_path / "f.idx", idx_bytes(arr)[:-8])
    with pytest.raises(IdxFormatError, match=r"header says 2x3 float64 = 48 bytes, file has 40"):
        read_idx(path)


@pytest.mark.parametrize(
    "damage",
    ["cut-stream", "flipped-deflate", "bad-crc", "trailing-garbage", "gzip-magic-only"],
)
def test_corrupt_gzip_names_file(tmp_path, damage):
    good = gzip.compress(GOOD, mtime=0)
    if damage == "cut-stream":
        data = good[: len(good) // 2]
    elif damage == "flipped-deflate":
        data = bytearray(good)
        data[12] ^= 0xFF  # first bytes of the deflate stream
        data = bytes(data)
    elif damage == "bad-crc":
        data = bytearray(good)
        data[-8] ^= 0xFF  # CRC32 in the gzip trailer
        data = bytes(data)
    elif damage == "trailing-garbage":
        data = good + b"garbage!"
    else:
        data = b"\x1f\x8b"
    path = write_file(tmp_path / "t10k-labels-idx1-ubyte.gz", data)
    with pytest.raises(IdxFormatError) as e:
        read_idx(path)
    assert str(e.value).startswith(f"{path}: corrupt gzip stream: ")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


# ---- MNIST loader on generated data ------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw-names"])
def test_load_mnist_splits(tmp_path, rng, gz):
    arrays = make_mnist(tmp_path / "d", rng, gz=gz)
    splits = load_mnist(tmp_path / "d", download=False, verify=False)
    assert isinstance(splits, MnistSplits)
    assert splits._fields == ("train_x", "train_y", "dev_x", "dev_y", "test_x", "test_y")
    for x in (splits.train_x, splits.dev_x, splits.test_x):
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 784
        assert x.flags.c_contiguous
    for y in (splits.train_y, splits.dev_y, splits.test_y):
        assert y.dtype == np.int64 and y.ndim == 1
    assert splits.train_x.shape == (10, 784) and splits.train_y.shape == (10,)
    assert splits.dev_x.shape == (DEV_SIZE, 784) and splits.dev_y.shape == (DEV_SIZE,)
    assert splits.test_x.shape == (20, 784)
    full = arrays["train_images"].reshape(-1, 784).astype(np.float32) / np.float32(255)
    # dev = the FIRST 5,000 training images, train = the rest
    np.testing.assert_array_equal(splits.dev_x, full[:DEV_SIZE])
    np.testing.assert_array_equal(splits.train_x, full[DEV_SIZE:])
    np.testing.assert_array_equal(splits.dev_y, arrays["train_labels"][:DEV_SIZE])
    np.testing.assert_array_equal(splits.train_y, arrays["train_labels"][DEV_SIZE:])
    np.testing.assert_array_equal(splits.test_x, arrays["test_images"].reshape(-1, 784) / np.float32(255))
    np.testing.assert_array_equal(splits.test_y, arrays["test_labels"])


def test_pixel_scaling_exact_endpoints(tmp_path, rng):
    make_mnist(tmp_path, rng, n_train=DEV_SIZE + 2)
    images = np.zeros((DEV_SIZE + 2, 28, 28), np.uint8)
    images[-1] = 255
    write_idx(tmp_path / NAMES["train_images"], images, gz=True)
    s = load_mnist(tmp_path, download=False, verify=False)
    assert s.train_x[0].max() == 0.0 and s.train_x[1].min() == 1.0


def test_count_mismatch_names_both_files(tmp_path, rng):
    make_mnist(tmp_path, rng)
    write_idx(tmp_path / NAMES["test_labels"], np.zeros(19, np.uint8), gz=True)
    with pytest.raises(IdxFormatError) as e:
        load_mnist(tmp_path, download=False, verify=False)
    msg = str(e.value)
    assert f"{tmp_path / NAMES['test_images']} has 20 images" in msg
    assert f"{tmp_path / NAMES['test_labels']} has 19 labels" in msg


def test_label_out_of_range(tmp_path, rng):
    make_mnist(tmp_path, rng)
    labels = np.zeros(20, np.uint8)
    labels[7] = 10
    write_idx(tmp_path / NAMES["test_labels"], labels, gz=True)
    with pytest.raises(IdxFormatError) as e:
        load_mnist(tmp_path, download=False, verify=False)
    assert str(e.value).startswith(str(tmp_path / NAMES["test_labels"]))
    assert "labels must be in 0..9, found 10 at index 7" in str(e.value)


def test_wrong_image_size(tmp_path, rng):
    make_mnist(tmp_path, rng)
    write_idx(tmp_path / NAMES["test_images"], np.zeros((20, 28, 27), np.uint8), gz=True)
    with pytest.raises(IdxFormatError, match="expected 28x28 images, got 28x27"):
        load_mnist(tmp_path, download=False, verify=False)


def test_images_and_labels_swapped(tmp_path, rng):
    arrays = make_mnist(tmp_path, rng)
    write_idx(tmp_path / NAMES["test_images"], arrays["test_labels"], gz=True)
    with pytest.raises(IdxFormatError) as e:
        load_mnist(tmp_path, download=False, verify=False)
    assert NAMES["test_images"] in str(e.value)
    assert "expected a 3-D uint8 IDX file, this one is 1-D uint8" in str(e.value)


def test_too_few_training_images_for_dev_split(tmp_path, rng):
    make_mnist(tmp_path, rng, n_train=DEV_SIZE)
    with pytest.raises(IdxFormatError, match="5000 training images, need more than 5000"):
        load_mnist(tmp_path, download=False, verify=False)


def test_verify_rejects_local_file_without_touching_it(tmp_path, rng):
    make_mnist(tmp_path, rng)
    path = tmp_path / NAMES["train_images"]  # the first file checked
    before = path.read_bytes()
    with pytest.raises(ChecksumError) as e:
        load_mnist(tmp_path, download=False)  # verify=True is the default
    msg = str(e.value)
    assert msg.startswith(f"{path}: md5 mismatch")
    assert MNIST_FILES["train_images"].md5 in msg and MNIST_FILES["train_images"].raw_md5 in msg
    assert hashlib.md5(before).hexdigest() in msg
    assert "verify=False" in msg
    assert path.read_bytes() == before  # the user's file is left alone


def test_verify_accepts_gunzipped_file_by_raw_md5(tmp_path):
    content = b"some raw content"
    gz = gzip.compress(content, mtime=0)
    spec = DataFile("f.gz", hashlib.md5(gz).hexdigest(), hashlib.md5(content).hexdigest())
    write_file(tmp_path / "f", content)  # gunzipped, without the suffix
    found = locate_files([spec], tmp_path, subdir="x", mirrors=(), download=False)
    assert found == {"f.gz": tmp_path / "f"}


def test_canonical_files_and_mirrors():
    # The table the loader verifies against, byte for byte (an md5 typo would
    # reject every user's good files).
    assert {k: (v.name, v.md5) for k, v in MNIST_FILES.items()} == {
        "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    }
    assert MIRRORS == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )


# ---- data directory resolution -----------------------------------------------


def test_default_cache_dir(tmp_path, monkeypatch):
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "meprop-native"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "meprop-native"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, per the XDG spec
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "meprop-native"


def test_search_roots_order(tmp_path, monkeypatch):
    cache = tmp_path / "home" / ".cache" / "meprop-native"
    assert search_roots() == [cache]
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert search_roots() == [tmp_path / "env", cache]
    assert search_roots(tmp_path / "flag") == [tmp_path / "flag", tmp_path / "env", cache]
    assert candidate_dirs(str(tmp_path / "flag")) == [
        tmp_path / "flag",
        tmp_path / "flag" / "mnist",
        tmp_path / "env",
        tmp_path / "env" / "mnist",
        cache,
        cache / "mnist",
    ]
    monkeypatch.setenv(ENV_VAR, "")  # empty means unset
    assert search_roots() == [cache]


def test_candidate_dirs_deduplicated(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "same"))
    dirs = candidate_dirs(tmp_path / "same")
    assert dirs[:2] == [tmp_path / "same", tmp_path / "same" / "mnist"]
    assert len(dirs) == len(set(dirs)) == 4


def test_flag_beats_env_beats_cache(tmp_path, rng, monkeypatch):
    flag, env = tmp_path / "flag", tmp_path / "env"
    cache = tmp_path / "xdg" / "meprop-native"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(ENV_VAR, str(env))
    # Each root in a different layout: files directly in it, or in mnist/.
    for d in (flag, env / "mnist", cache / "mnist"):
        make_mnist(d, rng, n_train=DEV_SIZE + 1, n_test=1)

    def where() -> set[Path]:
        return {p.parent for p in locate_mnist(flag, download=False, verify=False).values()}

    assert where() == {flag}
    for p in flag.iterdir():
        p.unlink()
    assert where() == {env / "mnist"}
    monkeypatch.delenv(ENV_VAR)
    assert where() == {cache / "mnist"}


def test_dir_itself_before_its_mnist_subdir(tmp_path, rng):
    make_mnist(tmp_path / "mnist", rng, n_train=DEV_SIZE + 1, n_test=1)
    assert {p.parent for p in locate_mnist(tmp_path, False, verify=False).values()} == {tmp_path / "mnist"}
    make_mnist(tmp_path, rng, n_train=DEV_SIZE + 1, n_test=1)
    assert {p.parent for p in locate_mnist(tmp_path, False, verify=False).values()} == {tmp_path}


def test_gz_name_preferred_over_raw_name(tmp_path, rng):
    make_mnist(tmp_path, rng, n_train=DEV_SIZE + 1, n_test=1, gz=False)
    make_mnist(tmp_path, rng, n_train=DEV_SIZE + 1, n_test=1, gz=True)
    assert {p.name for p in locate_mnist(tmp_path, False, verify=False).values()} == set(NAMES.values())


def test_env_var_with_tilde(tmp_path, rng, monkeypatch):
    make_mnist(tmp_path / "home" / "data" / "mnist", rng, n_train=DEV_SIZE + 1, n_test=1)
    monkeypatch.setenv(ENV_VAR, "~/data")
    splits = load_mnist(download=False, verify=False)
    assert splits.train_x.shape == (1, 784)


# ---- missing files and downloads ---------------------------------------------


def check_not_found_message(msg: str, searched: list[Path], target: Path) -> None:
    for spec in MNIST_FILES.values():
        assert spec.name in msg and spec.md5 in msg
    for d in searched:
        assert f"\n  {d}\n" in msg
    assert f"into {target}, " in msg
    assert "--data-dir DIR" in msg and f"{ENV_VAR}=DIR" in msg


def test_download_disabled(tmp_path, isolated, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(tmp_path / "flag", download=False)
    assert isinstance(e.value, FileNotFoundError)
    msg = str(e.value)
    check_not_found_message(msg, candidate_dirs(tmp_path / "flag"), tmp_path / "flag" / "mnist")
    assert "download=False" in msg
    assert isolated.calls == []


def test_no_network_fails_fast_and_clearly(tmp_path, isolated):
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(timeout=2.5)
    msg = str(e.value)
    cache = tmp_path / "home" / ".cache" / "meprop-native"
    check_not_found_message(msg, [cache, cache / "mnist"], cache / "mnist")
    for base in MIRRORS:
        assert f"{base}train-images-idx3-ubyte.gz: URLError: " in msg
    # One attempt per mirror for the first file only, then give up: the other
    # files would fail the same way.
    assert isolated.calls == [(m + "train-images-idx3-ubyte.gz", 2.5) for m in MIRRORS]
    assert not (cache / "mnist").exists()  # nothing left behind


def test_download_installs_atomically(tmp_path, isolated, monkeypatch):
    payload = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    spec = DataFile("blob.gz", hashlib.md5(payload).hexdigest())
    isolated.served = {
        "https://a.example/d/blob.gz": urllib.error.HTTPError(
            "https://a.example/d/blob.gz", 503, "Service Unavailable", {}, None
        ),
        "https://b.example/blob.gz": payload,
    }
    dest = tmp_path / "new" / "dir"
    replaced = []
    real_replace = os.replace

    def spy_replace(src, dst):
        # At rename time: complete content in a hidden temp file in the same
        # directory, and no partially written destination.
        src, dst = Path(src), Path(dst)
        assert src.parent == dst.parent == dest
        assert src.name.startswith(".blob.gz.") and src.name.endswith(".part")
        assert src.read_bytes() == payload
        assert not dst.exists()
        replaced.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(paths_mod.os, "replace", spy_replace)
    got = download_file(spec, dest, ["https://a.example/d", "https://b.example/"], timeout=3.0)
    assert got == dest / "blob.gz" and replaced == [got]
    assert got.read_bytes() == payload
    assert file_md5(got) == spec.md5
    assert leftovers(dest) == []
    assert [c[0] for c in isolated.calls] == [
        "https://a.example/d/blob.gz",
        "https://b.example/blob.gz",
    ]


def test_download_wrong_md5_rejected(tmp_path, isolated):
    spec = DataFile("blob.gz", hashlib.md5(b"the real thing").hexdigest())
    isolated.served = {"https://a.example/blob.gz": b"an impostor"}
    with pytest.raises(DownloadError) as e:
        download_file(spec, tmp_path, ["https://a.example/"])
    assert len(e.value.reasons) == 1
    assert (f"md5 mismatch: expected {spec.md5}, got {hashlib.md5(b'an impostor').hexdigest()}") in e.value.reasons[0]
    assert not (tmp_path / "blob.gz").exists()
    assert leftovers(tmp_path) == []


def test_download_wrong_md5_then_next_mirror(tmp_path, isolated):
    spec = DataFile("blob.gz", hashlib.md5(b"good").hexdigest())
    isolated.served = {"https://a.example/blob.gz": b"bad", "https://b.example/blob.gz": b"good"}
    got = download_file(spec, tmp_path, ["https://a.example/", "https://b.example/"])
    assert got.read_bytes() == b"good"
    assert leftovers(tmp_path) == []


class BrokenStream(io.BytesIO):
    """A response whose connection drops after the first read."""

    def read(self, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise ConnectionResetError("connection reset by peer")
        return super().read(4)


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    spec = DataFile("blob.gz", hashlib.md5(b"0123456789").hexdigest())
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: BrokenStream(b"0123456789"))
    with pytest.raises(DownloadError) as e:
        download_file(spec, tmp_path, ["https://a.example/"])
    assert "ConnectionResetError" in e.value.reasons[0]
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination_is_a_download_failure(tmp_path, isolated):
    isolated.served = {"https://a.example/blob.gz": b"x"}
    blocker = write_file(tmp_path / "file", b"")  # a file where a directory should be
    with pytest.raises(DownloadError, match="every mirror failed") as e:
        download_file(DataFile("blob.gz", "0" * 32), blocker / "sub", ["https://a.example/"])
    assert "FileExistsError" in e.value.reasons[0] or "NotADirectoryError" in e.value.reasons[0]


def test_load_mnist_downloads_missing_files(tmp_path, rng, isolated, monkeypatch):
    """End to end: only the missing files are fetched, into <flag>/mnist."""
    src = tmp_path / "src"
    make_mnist(src, rng)
    for key, spec in MNIST_FILES.items():
        # Pretend the generated files are the canonical ones.
        md5 = file_md5(src / spec.name)
        monkeypatch.setitem(MNIST_FILES, key, DataFile(spec.name, md5))
    flag = tmp_path / "flag"
    write_file(flag / NAMES["test_labels"], (src / NAMES["test_labels"]).read_bytes())
    isolated.served = {
        MIRRORS[1] + name: (src / name).read_bytes() for key, name in NAMES.items() if key != "test_labels"
    }
    splits = load_mnist(flag)  # verify=True: the patched md5s must match
    assert splits.train_x.shape == (10, 784) and splits.test_y.shape == (20,)
    for key, name in NAMES.items():
        where = flag if key == "test_labels" else flag / "mnist"
        assert (where / name).read_bytes() == (src / name).read_bytes()
    assert NAMES["test_labels"] not in {Path(url).name for url, _ in isolated.calls}
    assert leftovers(flag / "mnist") == []
    # A second load finds everything locally.
    isolated.calls.clear()
    load_mnist(flag)
    assert isolated.calls == []


def test_data_package_needs_only_numpy_conllu_and_stdlib():
    # The data code must work without the compiled core: no imports from the
    # parent package, and nothing outside numpy, conllu (the treebank reader)
    # and the standard library.
    import meprop_native.data as data_pkg

    allowed = {"__future__", "numpy", "collections", "contextlib", "dataclasses", "gzip"}
    allowed |= {"hashlib", "http", "os", "pathlib", "struct", "tempfile", "typing", "urllib"}
    allowed |= {"zlib", "conllu"}

    for path in Path(data_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}: imports from the parent package"
                top = (node.module or "").split(".")[0]
                mods = [top] if node.level == 0 else []
            elif isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            else:
                continue
            for m in mods:
                assert m in allowed, f"{path.name}: imports {m}"


# ---- the real data -----------------------------------------------------------


@pytest.mark.skipif(
    not all((SHARED_MNIST / spec.name).is_file() for spec in MNIST_FILES.values()),
    reason=f"real MNIST not found in {SHARED_MNIST} (the four *-ubyte.gz files)",
)
def test_real_mnist(isolated):
    splits = load_mnist(SHARED_MNIST.parent, download=False)  # md5-verified
    assert splits.train_x.shape == (55000, 784) and splits.train_y.shape == (55000,)
    assert splits.dev_x.shape == (5000, 784) and splits.dev_y.shape == (5000,)
    assert splits.test_x.shape == (10000, 784) and splits.test_y.shape == (10000,)
    assert np.bincount(splits.test_y, minlength=10).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    # The split adds back up to the official training class counts.
    counts = [np.bincount(y, minlength=10) for y in (splits.train_y, splits.dev_y)]
    assert (counts[0] + counts[1]).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    for x in (splits.train_x, splits.dev_x, splits.test_x):
        assert x.dtype == np.float32
        assert x.min() == 0.0 and x.max() == 1.0
    # The first training image of MNIST is a 5, the first test image a 7.
    assert splits.dev_y[0] == 5 and splits.test_y[0] == 7
    assert isolated.calls == []
