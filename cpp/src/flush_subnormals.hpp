// Treats subnormal floats as zero while a kernel runs, then restores the
// caller's floating-point mode.
//
// Adam's moments decay geometrically; in a meProp run many of them (rows
// rarely selected, input pixels that are nearly always zero) pass through the
// subnormal range, below 1.2e-38 in float. On x86 every operation that reads or
// produces a subnormal takes a slow microcode path: a sweep of Adam's update
// over 392k floats took 121 us with subnormal moments against 54 us with
// normal ones (this machine, AVX-512), so the optimizer of a meProp MNIST step
// ran at half speed. Flushing changes results only below the normal range,
// where an update is far under half a unit in the last place of any weight.
//
// The mode is per thread: construct the guard inside each OpenMP thread's
// part of a parallel region. Elsewhere than x86 it does nothing.
#pragma once

#if defined(__SSE2__) || defined(_M_X64)
#include <xmmintrin.h>
#define MEPROP_HAS_MXCSR 1
#endif

namespace meprop::detail {

class FlushSubnormals {
public:
#ifdef MEPROP_HAS_MXCSR
    // FTZ (bit 15): subnormal results become zero; DAZ (bit 6): subnormal
    // inputs read as zero.
    static constexpr unsigned flush_bits = 0x8040;
    FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | flush_bits); }
    ~FlushSubnormals() { _mm_setcsr(saved_); }
#else
    FlushSubnormals() = default;
#endif
    FlushSubnormals(const FlushSubnormals&) = delete;
    FlushSubnormals& operator=(const FlushSubnormals&) = delete;

private:
#ifdef MEPROP_HAS_MXCSR
    unsigned saved_;
#endif
};

}  // namespace meprop::detail
