"""The instruction-set build of the hot loops: the one the processor supports, or the one forced."""

from __future__ import annotations

import os
import platform

import pytest

from meprop_native import _core

# x86-64-v3 and -v4 as GCC's target_clones resolver tests them (the feature
# sets of the x86-64 psABI levels), read from /proc/cpuinfo's flags.
V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
V4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_forced_build_reports_its_target():
    expected = os.environ.get("MEPROP_EXPECT_ISA")
    if not expected:
        pytest.skip("not a forced-ISA build (CI sets MEPROP_EXPECT_ISA for those)")
    assert _core.isa_target() == expected


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"),
    reason="run-time dispatch is x86-64 only; the flags come from Linux's /proc/cpuinfo",
)
def test_auto_picks_what_the_processor_supports():
    if os.environ.get("MEPROP_EXPECT_ISA"):
        pytest.skip("a forced-ISA build picks nothing")
    flags = cpu_flags()
    if "abm" not in flags and "lzcnt" in flags:
        flags.add("abm")
    expected = "x86-64-v4" if flags >= V3 | V4 else "x86-64-v3" if flags >= V3 else "baseline"
    assert _core.isa_target() == expected
    assert _core.linear_forward_uses_avx512() == (expected == "x86-64-v4")
