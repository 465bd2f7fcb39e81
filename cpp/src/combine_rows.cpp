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

// One pass over the output block for up to four source rows: out = (or +=)
// c0*s0 + c1*s1 + c2*s2 + c3*s3. Grouping four rows per pass means one load and
// store of the output per four multiply-adds instead of one per multiply-add.
template <class T, int Rows, bool Accumulate>
[[gnu::always_inline]] inline void combine_pass(T* __restrict out, std::size_t len,
                                                const std::int64_t* src_rows, const T* coefs,
                                                const T* src, std::size_t ld) {
    const T* __restrict s0 = src + src_rows[0] * ld;
    const T* __restrict s1 = Rows > 1 ? src + src_rows[1] * ld : s0;
    const T* __restrict s2 = Rows > 2 ? src + src_rows[2] * ld : s0;
    const T* __restrict s3 = Rows > 3 ? src + src_rows[3] * ld : s0;
    const T c0 = coefs[0];
    const T c1 = Rows > 1 ? coefs[1] : T(0);
    const T c2 = Rows > 2 ? coefs[2] : T(0);
    const T c3 = Rows > 3 ? coefs[3] : T(0);
    for (std::size_t c = 0; c < len; ++c) {
        T sum = c0 * s0[c];
        if constexpr (Rows > 1) sum += c1 * s1[c];
        if constexpr (Rows > 2) sum += c2 * s2[c];
        if constexpr (Rows > 3) sum += c3 * s3[c];
        if constexpr (Accumulate) out[c] += sum;
        else out[c] = sum;
    }
}

template <class T, bool Accumulate>
[[gnu::always_inline]] inline void combine_group(T* out, std::size_t len, const std::int64_t* rows,
                                                 const T* coefs, std::size_t count, const T* src,
                                                 std::size_t ld) {
    switch (count) {
        case 1: combine_pass<T, 1, Accumulate>(out, len, rows, coefs, src, ld); break;
        case 2: combine_pass<T, 2, Accumulate>(out, len, rows, coefs, src, ld); break;
        case 3: combine_pass<T, 3, Accumulate>(out, len, rows, coefs, src, ld); break;
        default: combine_pass<T, 4, Accumulate>(out, len, rows, coefs, src, ld); break;
    }
}

// The entries are taken in groups of four, in order; the first group writes
// the block (no separate zero fill) unless accumulating.
template <class T>
[[gnu::always_inline]] inline void combine_block(T* __restrict out, std::size_t len,
                                                 const std::int64_t* src_rows, const T* coefs,
                                                 std::size_t n, const T* src, std::size_t ld,
                                                 bool accumulate) {
    std::size_t e = 0;
    if (!accumulate) {
        if (n == 0) {
            std::fill(out, out + len, T(0));
            return;
        }
        const std::size_t count = std::min<std::size_t>(n, 4);
        combine_group<T, false>(out, len, src_rows, coefs, count, src, ld);
        e = count;
    }
    for (; e < n; e += 4) {
        const std::size_t count = std::min<std::size_t>(n - e, 4);
        combine_group<T, true>(out, len, src_rows + e, coefs + e, count, src, ld);
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
