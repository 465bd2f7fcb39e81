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
// part of a parallel region. Elsewhere than x86-64 it does nothing, and
// flushes_subnormals says so.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>

#include <cstring>
#define MEPROP_HAS_MXCSR 1
#endif

namespace meprop::detail {

#ifdef MEPROP_HAS_MXCSR
inline constexpr bool flushes_subnormals = true;

// FTZ (bit 15): subnormal results become zero. DAZ (bit 6): subnormal inputs
// read as zero; a few early x86-64 processors lack it, and setting a bit the
// processor lacks faults, so it is taken only where FXSAVE's MXCSR_MASK lists it.
inline unsigned mxcsr_flush_bits() {
    static const unsigned bits = [] {
        alignas(16) unsigned char area[512] = {};
        asm volatile("fxsave %0" : "=m"(area));
        unsigned mask;
        std::memcpy(&mask, area + 28, sizeof mask);
        if (mask == 0) mask = 0xffbf;  // no mask saved: the architectural default, without DAZ
        return 0x8000u | (mask & 0x0040u);
    }();
    return bits;
}

class FlushSubnormals {
  public:
    FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | mxcsr_flush_bits()); }
    // The control bits go back as they were; exception flags raised meanwhile
    // (bits 0-5, sticky) stay raised for the caller to see.
    ~FlushSubnormals() { _mm_setcsr((_mm_getcsr() & 0x3fu) | (saved_ & ~0x3fu)); }
    FlushSubnormals(const FlushSubnormals&) = delete;
    FlushSubnormals& operator=(const FlushSubnormals&) = delete;

  private:
    unsigned saved_;
};
#else
inline constexpr bool flushes_subnormals = false;

class FlushSubnormals {
  public:
    FlushSubnormals() = default;
    FlushSubnormals(const FlushSubnormals&) = delete;
    FlushSubnormals& operator=(const FlushSubnormals&) = delete;
};
#endif

}  // namespace meprop::detail
