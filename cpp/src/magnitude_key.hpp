// Magnitudes as unsigned integers, so that selection compares integers.
//
// For IEEE-754 numbers with the sign bit cleared, the bit pattern read as an
// unsigned integer is ordered exactly like the magnitude, and every NaN pattern
// lies above +inf. Canonicalising all NaNs to inf + 1 makes NaNs tie with each
// other, so ties among them also go to the lower index.
#pragma once

#include <cstdint>
#include <cstring>

namespace meprop::detail {

template <class T>
struct MagnitudeKey;

template <>
struct MagnitudeKey<float> {
    using type = std::uint32_t;
    static constexpr int bits = 31;  // the sign bit is always clear
    static constexpr type inf = 0x7f800000u;

    static type of(float v) {
        type u;
        std::memcpy(&u, &v, sizeof u);
        u &= 0x7fffffffu;
        return u < inf + 1 ? u : inf + 1;  // a min: vectorises
    }
};

template <>
struct MagnitudeKey<double> {
    using type = std::uint64_t;
    static constexpr int bits = 63;
    static constexpr type inf = 0x7ff0000000000000ull;

    static type of(double v) {
        type u;
        std::memcpy(&u, &v, sizeof u);
        u &= 0x7fffffffffffffffull;
        return u < inf + 1 ? u : inf + 1;
    }
};

}  // namespace meprop::detail
