"""``python -m meprop_native --cmake-dir``: where C++ projects find the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._cmake import cmake_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Prints what the options ask for; returns 1 when the wheel has no CMake package."""
    parser = argparse.ArgumentParser(
        prog="python -m meprop_native",
        description="Locations of the installed C++ library of meprop-native.",
    )
    parser.add_argument("--cmake-dir", action="store_true", help="print the directory to pass as -Dmeprop_DIR to CMake")
    parser.add_argument("--version", action="store_true", help="print the package version")
    args = parser.parse_args(argv)
    if not (args.cmake_dir or args.version):
        parser.print_help()
        return 0
    if args.version:
        from . import __version__

        print(__version__)
    if args.cmake_dir:
        try:
            print(cmake_dir())
        except FileNotFoundError as error:
            print(f"meprop_native: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
