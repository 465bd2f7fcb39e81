// Run-time ISA dispatch for hot loops in portable builds.
//
// On x86-64 with GCC or clang, a function marked MEPROP_CLONES is compiled for
// the baseline ISA, AVX2+FMA (x86-64-v3) and AVX-512 (x86-64-v4); the loader
// picks the best the CPU has. With MEPROP_NATIVE_ARCH everything is already
// compiled for the build machine, so no clones are made.
//
// MEPROP_FORCE_ISA (the CMake option of that name) builds one target only,
// 1 = baseline, 3 = x86-64-v3, 4 = x86-64-v4, so that tests can run every
// clone on a machine whose loader would pick only the best one.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(MEPROP_NATIVE_ARCH)
#if defined(MEPROP_FORCE_ISA) && MEPROP_FORCE_ISA == 4
#define MEPROP_CLONES __attribute__((target("arch=x86-64-v4")))
#elif defined(MEPROP_FORCE_ISA) && MEPROP_FORCE_ISA == 3
#define MEPROP_CLONES __attribute__((target("arch=x86-64-v3")))
#elif defined(MEPROP_FORCE_ISA)
#define MEPROP_CLONES
#else
#define MEPROP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#define MEPROP_DISPATCH 1
#else
#define MEPROP_CLONES
#endif

// Kernels whose register tiles are sized for AVX-512's 32 vector registers
// come in two builds: one compiled for AVX-512 alone (MEPROP_AVX512_TARGET)
// and taken when avx512_runs(), and one with 32-byte vectors under the usual
// clones. A 64-byte generic vector compiled for AVX2 is split into register
// pairs and its tiles spill: the row-combination kernel ran 20x slower so.
#if defined(MEPROP_DISPATCH)
#define MEPROP_AVX512_TARGET __attribute__((target("arch=x86-64-v4")))
namespace meprop::detail {
inline bool cpu_has_avx512() {
    static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    return avx512;
}
#if defined(MEPROP_FORCE_ISA)
inline bool avx512_runs() {
    return MEPROP_FORCE_ISA == 4;
}
#else
inline bool avx512_runs() {
    return cpu_has_avx512();
}
#endif
}  // namespace meprop::detail
#elif defined(__AVX512F__)
#define MEPROP_AVX512_TARGET
namespace meprop::detail {
constexpr bool avx512_runs() {
    return true;
}
}  // namespace meprop::detail
#else
#define MEPROP_AVX512_TARGET
namespace meprop::detail {
constexpr bool avx512_runs() {
    return false;
}
}  // namespace meprop::detail
#endif

// The one way to declare a dispatched kernel. Clang cannot clone templates,
// so each kernel is a template `impl<T, ...>` wrapped, once per element type,
// in a plain function that carries the clone attribute; the two wrappers are
// overloads of `name`, so callers write `name(args)` for float and double
// alike. `params` is the parenthesised parameter list written with `T`;
// `args` the parenthesised argument list passed on. A template-id with a
// comma goes in parentheses: `(kernel<T, 32>)`.
//
//   MEPROP_ISA_KERNEL(name, impl, params, args)
//     one build per ISA level (MEPROP_CLONES).
//   MEPROP_ISA_KERNEL_WIDE(name, wide_impl, narrow_impl, params, args)
//     wide_impl compiled for AVX-512 alone and taken when avx512_runs(),
//     narrow_impl under the per-ISA clones otherwise.
#define MEPROP_ISA_KERNEL_FOR(T_, space, name, impl, params, args) \
    namespace space {                                              \
    using T = T_;                                                  \
    MEPROP_CLONES void name params {                               \
        impl args;                                                 \
    }                                                              \
    }                                                              \
    using space::name;

#define MEPROP_ISA_KERNEL(name, impl, params, args)                    \
    MEPROP_ISA_KERNEL_FOR(float, name##_f32, name, impl, params, args) \
    MEPROP_ISA_KERNEL_FOR(double, name##_f64, name, impl, params, args)

#define MEPROP_ISA_KERNEL_WIDE_FOR(T_, space, name, wide_impl, narrow_impl, params, args) \
    namespace space {                                                                     \
    using T = T_;                                                                         \
    MEPROP_AVX512_TARGET void wide params {                                               \
        wide_impl args;                                                                   \
    }                                                                                     \
    MEPROP_CLONES void narrow params {                                                    \
        narrow_impl args;                                                                 \
    }                                                                                     \
    inline void name params {                                                             \
        if (::meprop::detail::avx512_runs())                                              \
            wide args;                                                                    \
        else                                                                              \
            narrow args;                                                                  \
    }                                                                                     \
    }                                                                                     \
    using space::name;

#define MEPROP_ISA_KERNEL_WIDE(name, wide_impl, narrow_impl, params, args)                    \
    MEPROP_ISA_KERNEL_WIDE_FOR(float, name##_f32, name, wide_impl, narrow_impl, params, args) \
    MEPROP_ISA_KERNEL_WIDE_FOR(double, name##_f64, name, wide_impl, narrow_impl, params, args)
