#include "combine_rows.hpp"

#include <omp.h>

#include <algorithm>

#include "meprop/threading.hpp"

// Portable builds compile for the baseline ISA; on x86-64 with GCC or clang the
// hot loop is also compiled for AVX2+FMA and AVX-512 and picked at load time.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(MEPROP_NATIVE_ARCH)
#define MEPROP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MEPROP_CLONES
#endif

namespace meprop::detail {
namespace {

// Columns per task: fits the output block in L1 and keeps the per-task split,
// and so the summation order, independent of the thread count.
constexpr std::size_t column_block = 512;
// Below this many multiply-adds one thread is faster than waking a team.
constexpr std::size_t parallel_min_work = 1 << 16;

template <class T>
[[gnu::always_inline]] inline void combine_block(T* __restrict out, std::size_t len,
                                                 const std::int64_t* src_rows, const T* coefs,
                                                 std::size_t n, const T* src, std::size_t ld,
                                                 bool accumulate) {
    if (!accumulate) std::fill(out, out + len, T(0));
    std::size_t e = 0;
    // Four source rows per sweep: one load and store of out per four FMAs.
    for (; e + 4 <= n; e += 4) {
        const T* __restrict s0 = src + src_rows[e] * ld;
        const T* __restrict s1 = src + src_rows[e + 1] * ld;
        const T* __restrict s2 = src + src_rows[e + 2] * ld;
        const T* __restrict s3 = src + src_rows[e + 3] * ld;
        const T c0 = coefs[e], c1 = coefs[e + 1], c2 = coefs[e + 2], c3 = coefs[e + 3];
        for (std::size_t c = 0; c < len; ++c) {
            out[c] += c0 * s0[c] + c1 * s1[c] + c2 * s2[c] + c3 * s3[c];
        }
    }
    for (; e < n; ++e) {
        const T* __restrict s0 = src + src_rows[e] * ld;
        const T c0 = coefs[e];
        for (std::size_t c = 0; c < len; ++c) out[c] += c0 * s0[c];
    }
}

MEPROP_CLONES void combine_block_f32(float* out, std::size_t len, const std::int64_t* src_rows,
                                     const float* coefs, std::size_t n, const float* src,
                                     std::size_t ld, bool accumulate) {
    combine_block(out, len, src_rows, coefs, n, src, ld, accumulate);
}

MEPROP_CLONES void combine_block_f64(double* out, std::size_t len, const std::int64_t* src_rows,
                                     const double* coefs, std::size_t n, const double* src,
                                     std::size_t ld, bool accumulate) {
    combine_block(out, len, src_rows, coefs, n, src, ld, accumulate);
}

inline void combine_block_any(float* out, std::size_t len, const std::int64_t* rows,
                              const float* coefs, std::size_t n, const float* src, std::size_t ld,
                              bool acc) {
    combine_block_f32(out, len, rows, coefs, n, src, ld, acc);
}
inline void combine_block_any(double* out, std::size_t len, const std::int64_t* rows,
                              const double* coefs, std::size_t n, const double* src,
                              std::size_t ld, bool acc) {
    combine_block_f64(out, len, rows, coefs, n, src, ld, acc);
}

}  // namespace

template <class T>
void combine_rows(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                  const std::int64_t* out_row_ids, bool accumulate) {
    const std::size_t cols = src.cols;
    const std::size_t blocks = (cols + column_block - 1) / column_block;
    const auto tasks = static_cast<std::int64_t>(plan.out_rows * blocks);
    const std::size_t work = plan.row_begin[plan.out_rows] * cols;
    const int threads = work >= parallel_min_work ? num_threads() : 1;

#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
        const std::size_t r = static_cast<std::size_t>(task) / blocks;
        const std::size_t c0 = (static_cast<std::size_t>(task) % blocks) * column_block;
        const std::size_t len = std::min(column_block, cols - c0);
        const std::size_t out_row = out_row_ids ? static_cast<std::size_t>(out_row_ids[r]) : r;
        const std::size_t e0 = plan.row_begin[r];
        combine_block_any(out.row(out_row) + c0, len, plan.src_rows + e0, plan.coefs + e0,
                          plan.row_begin[r + 1] - e0, src.data + c0, cols, accumulate);
    }
}

template void combine_rows<float>(const RowCombination<float>&, ConstMatrix<float>,
                                  Matrix<float>, const std::int64_t*, bool);
template void combine_rows<double>(const RowCombination<double>&, ConstMatrix<double>,
                                   Matrix<double>, const std::int64_t*, bool);

}  // namespace meprop::detail
