// Which instruction-set build of the hot loops runs on this machine.
#pragma once

namespace meprop {

// "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2 + FMA) or "baseline": the clone the
// loader picks for this processor in a portable build, or the one a build
// with MEPROP_FORCE_ISA was restricted to; "native" for MEPROP_NATIVE_ARCH
// builds and non-x86 targets, which have no clones.
const char* isa_target();

}  // namespace meprop
