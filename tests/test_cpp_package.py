"""The installed package carries a usable C++ library.

A wheel installs the headers, ``libmeprop.a`` and a CMake package inside
``meprop_native/`` and registers it under the ``cmake.root`` entry point. This
builds ``examples/cpp`` (a separate CMake project that trains a layer with the
library and checks it against a dense reference) against that installed copy
and runs it. It needs CMake and a C++ compiler, and skips without them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import meprop_native

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "cpp"
PACKAGE_DIR = Path(meprop_native.__file__).resolve().parent


def _cmake_root_entry_points() -> dict[str, str]:
    if sys.version_info >= (3, 10):
        found = entry_points(group="cmake.root")
    else:  # pragma: no cover - Python 3.9's entry_points() is a dict
        found = entry_points().get("cmake.root", [])
    return {ep.name: ep.value for ep in found}


def _compiler() -> str | None:
    return os.environ.get("CXX") or next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)


def _skip_unless_installed_copy() -> None:
    if REPO / "python" in PACKAGE_DIR.parents:
        pytest.skip("meprop_native is imported from the source tree, not an installed wheel")


def test_cmake_root_entry_point_names_the_package():
    _skip_unless_installed_copy()
    roots = _cmake_root_entry_points()
    assert roots.get("meprop") == "meprop_native", roots
    module = importlib.import_module(roots["meprop"])
    assert Path(module.__file__).resolve().parent == PACKAGE_DIR


def test_cmake_dir_holds_the_package_files():
    _skip_unless_installed_copy()
    cmake_dir = Path(meprop_native.cmake_dir())
    assert cmake_dir == PACKAGE_DIR / "lib" / "cmake" / "meprop"
    for name in ("mepropConfig.cmake", "mepropConfigVersion.cmake", "mepropTargets.cmake"):
        assert (cmake_dir / name).is_file(), name
    assert (PACKAGE_DIR / "lib" / "libmeprop.a").is_file()
    headers = {p.name for p in (PACKAGE_DIR / "include" / "meprop").glob("*.hpp")}
    assert headers == {p.name for p in (REPO / "cpp" / "include" / "meprop").glob("*.hpp")}
    out = subprocess.run(
        [sys.executable, "-m", "meprop_native", "--cmake-dir"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(cmake_dir)


def test_example_builds_and_runs_against_the_installed_package(tmp_path):
    _skip_unless_installed_copy()
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not on PATH")
    if _compiler() is None:
        pytest.skip("no C++ compiler found (set CXX, or install c++/g++/clang++)")
    if not (EXAMPLE / "CMakeLists.txt").is_file():
        pytest.skip("examples/cpp is not beside the tests (not a source checkout)")
    build = tmp_path / "build"
    # meprop_ROOT is what scikit-build-core sets from the cmake.root entry
    # point; a plain CMake user would pass -Dmeprop_DIR=$(... --cmake-dir).
    configure = subprocess.run(
        [
            "cmake",
            "-S",
            str(EXAMPLE),
            "-B",
            str(build),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-Dmeprop_ROOT={PACKAGE_DIR}",
            f"-DCMAKE_CXX_COMPILER={_compiler()}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    # The CMake package's version is the Python package's, found where the wheel put it.
    expected = f"meprop {meprop_native.__version__} from {PACKAGE_DIR / 'lib' / 'cmake' / 'meprop'}"
    assert expected in configure.stdout, configure.stdout
    compile_ = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=300)
    assert compile_.returncode == 0, compile_.stdout + compile_.stderr
    run = subprocess.run([str(build / "train_layer")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: 200 steps matched the dense reference" in run.stdout, run.stdout
