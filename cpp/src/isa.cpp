#include "meprop/isa.hpp"

#include "multiversion.hpp"

namespace meprop {

const char* isa_target() {
#if defined(MEPROP_DISPATCH) && defined(MEPROP_FORCE_ISA)
    return MEPROP_FORCE_ISA == 4 ? "x86-64-v4" : MEPROP_FORCE_ISA == 3 ? "x86-64-v3" : "baseline";
#elif defined(MEPROP_DISPATCH)
#if defined(__clang__)
    // clang 14 knows no level names in __builtin_cpu_supports: test the
    // features that tell the levels apart.
    if (detail::cpu_has_avx512()) return "x86-64-v4";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return "x86-64-v3";
#else
    // The same tests GCC's target_clones resolver makes for these clones.
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
#endif
    return "baseline";
#else
    return "native";
#endif
}

}  // namespace meprop
