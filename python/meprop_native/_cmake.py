"""Where the installed wheel keeps the C++ library's CMake package.

A wheel carries the C++ core next to the Python module: headers in
``meprop_native/include``, ``libmeprop.a`` and the CMake package in
``meprop_native/lib`` (see ``cmake/install.cmake``). A CMake project finds it
with ``find_package(meprop CONFIG REQUIRED)`` given ``-Dmeprop_DIR=$(python
-m meprop_native --cmake-dir)``; projects built by scikit-build-core find it
without help, through the package's ``cmake.root`` entry point.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def cmake_dir() -> str:
    """The directory holding ``mepropConfig.cmake``, for ``-Dmeprop_DIR=...``.

    Raises:
        FileNotFoundError: this copy of the package carries no CMake package
            (it is imported from a source checkout, or from an editable
            install); build the C++ library with CMake instead.
    """
    path = _PACKAGE_DIR / "lib" / "cmake" / "meprop"
    if not (path / "mepropConfig.cmake").is_file():
        raise FileNotFoundError(
            f"no CMake package at {path}: this meprop_native was not installed from a wheel "
            "(e.g. it is a source checkout or an editable install); install it with "
            "`pip install .`, or install the C++ library with `cmake --install`"
        )
    return str(path)
