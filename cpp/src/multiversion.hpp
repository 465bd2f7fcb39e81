// Run-time ISA dispatch for hot loops in portable builds.
//
// On x86-64 with GCC or clang, a function marked MEPROP_CLONES is compiled for
// the baseline ISA, AVX2+FMA (x86-64-v3) and AVX-512 (x86-64-v4); the loader
// picks the best the CPU has. With MEPROP_NATIVE_ARCH everything is already
// compiled for the build machine, so no clones are made.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(MEPROP_NATIVE_ARCH)
#define MEPROP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MEPROP_CLONES
#endif
