#include "combine_rows.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "meprop/threading.hpp"

#include "multiversion.hpp"

namespace meprop::detail {
namespace {

// Columns per task: fits the output block in L1 and keeps the per-task split,
// and so the summation order, independent of the thread count.
constexpr std::size_t column_block = 512;
// Below this many multiply-adds (about 10 us on one core) one thread is
// faster than a team: the kernel is too short to amortise waking a second
// thread, and a team stalls on its slowest member when another process takes
// a core, which costs short kernels most.
constexpr std::size_t parallel_min_work = 1 << 18;

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

// Shared sources: a tile of Rows output rows x Cols columns is accumulated in
// registers while each source row segment is loaded once for all Rows rows.
// Every output element is still the sum over entries in entry order, so the
// tiling (and the thread count) does not change the result.
//
// Full tiles use GCC/clang vector types, which each compiled clone maps to its
// own registers (two SSE halves, one AVX register, ...).
template <class T>
struct Vec;
template <>
struct Vec<float> {
    typedef float type __attribute__((vector_size(32)));
};
template <>
struct Vec<double> {
    typedef double type __attribute__((vector_size(32)));
};
constexpr int tile_vectors = 2;  // vectors per output row in a tile

template <class T, int Rows>
[[gnu::always_inline]] inline void shared_tile_full(T* const* out, const std::int64_t* src_rows,
                                                    std::size_t n, const T* const* coefs,
                                                    const T* src, std::size_t ld,
                                                    bool accumulate) {
    using V = typename Vec<T>::type;
    constexpr int lanes = sizeof(V) / sizeof(T);
    V acc[Rows][tile_vectors];
    for (int r = 0; r < Rows; ++r) {
        for (int v = 0; v < tile_vectors; ++v) {
            if (accumulate) std::memcpy(&acc[r][v], out[r] + v * lanes, sizeof(V));
            else acc[r][v] = V{} ;
        }
    }
    for (std::size_t e = 0; e < n; ++e) {
        const T* s = src + src_rows[e] * ld;
        V sv[tile_vectors];
        for (int v = 0; v < tile_vectors; ++v) std::memcpy(&sv[v], s + v * lanes, sizeof(V));
        for (int r = 0; r < Rows; ++r) {
            const T w = coefs[r][e];
            for (int v = 0; v < tile_vectors; ++v) acc[r][v] += w * sv[v];
        }
    }
    for (int r = 0; r < Rows; ++r) {
        for (int v = 0; v < tile_vectors; ++v) std::memcpy(out[r] + v * lanes, &acc[r][v], sizeof(V));
    }
}

// The ragged right edge: the same sums, element by element.
template <class T>
[[gnu::always_inline]] inline void shared_tile_edge(T* const* out, std::size_t rows, std::size_t len,
                                                    const std::int64_t* src_rows, std::size_t n,
                                                    const T* const* coefs, const T* src,
                                                    std::size_t ld, bool accumulate) {
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < len; ++c) {
            T acc = accumulate ? out[r][c] : T(0);
            for (std::size_t e = 0; e < n; ++e) acc += coefs[r][e] * src[src_rows[e] * ld + c];
            out[r][c] = acc;
        }
    }
}

template <class T>
constexpr int shared_tile_cols = tile_vectors * 32 / static_cast<int>(sizeof(T));
constexpr int shared_tile_rows = 4;

template <class T>
[[gnu::always_inline]] inline void shared_tile_any(T* const* out, std::size_t rows,
                                                   std::size_t len, const std::int64_t* src_rows,
                                                   std::size_t n, const T* const* coefs,
                                                   const T* src, std::size_t ld, bool accumulate) {
    if (len != static_cast<std::size_t>(shared_tile_cols<T>)) {
        shared_tile_edge(out, rows, len, src_rows, n, coefs, src, ld, accumulate);
        return;
    }
    switch (rows) {
        case 4: shared_tile_full<T, 4>(out, src_rows, n, coefs, src, ld, accumulate); break;
        case 3: shared_tile_full<T, 3>(out, src_rows, n, coefs, src, ld, accumulate); break;
        case 2: shared_tile_full<T, 2>(out, src_rows, n, coefs, src, ld, accumulate); break;
        default: shared_tile_full<T, 1>(out, src_rows, n, coefs, src, ld, accumulate); break;
    }
}

MEPROP_CLONES void shared_tile_f32(float* const* out, std::size_t rows, std::size_t len,
                                   const std::int64_t* src_rows, std::size_t n,
                                   const float* const* coefs, const float* src, std::size_t ld,
                                   bool accumulate) {
    shared_tile_any(out, rows, len, src_rows, n, coefs, src, ld, accumulate);
}

MEPROP_CLONES void shared_tile_f64(double* const* out, std::size_t rows, std::size_t len,
                                   const std::int64_t* src_rows, std::size_t n,
                                   const double* const* coefs, const double* src, std::size_t ld,
                                   bool accumulate) {
    shared_tile_any(out, rows, len, src_rows, n, coefs, src, ld, accumulate);
}

inline void shared_tile_dispatch(float* const* out, std::size_t rows, std::size_t len,
                                 const std::int64_t* src_rows, std::size_t n,
                                 const float* const* coefs, const float* src, std::size_t ld,
                                 bool accumulate) {
    shared_tile_f32(out, rows, len, src_rows, n, coefs, src, ld, accumulate);
}
inline void shared_tile_dispatch(double* const* out, std::size_t rows, std::size_t len,
                                 const std::int64_t* src_rows, std::size_t n,
                                 const double* const* coefs, const double* src, std::size_t ld,
                                 bool accumulate) {
    shared_tile_f64(out, rows, len, src_rows, n, coefs, src, ld, accumulate);
}

template <class T>
void combine_rows_shared(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                         const std::int64_t* out_row_ids, bool accumulate) {
    constexpr std::size_t R = shared_tile_rows;
    constexpr std::size_t C = shared_tile_cols<T>;
    const std::size_t cols = src.cols;
    const std::size_t n = plan.row_begin[1] - plan.row_begin[0];
    const std::size_t row_tiles = (plan.out_rows + R - 1) / R;
    const std::size_t col_tiles = (cols + C - 1) / C;
    const auto tasks = static_cast<std::int64_t>(row_tiles * col_tiles);
    const std::size_t work = plan.out_rows * n * cols;
    const int threads = work >= parallel_min_work ? num_threads() : 1;

    // Column tile outermost: consecutive tasks reuse the same source segments.
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
        const std::size_t ct = static_cast<std::size_t>(task) / row_tiles;
        const std::size_t r0 = (static_cast<std::size_t>(task) % row_tiles) * R;
        const std::size_t c0 = ct * C;
        const std::size_t rows = std::min(R, plan.out_rows - r0);
        T* out_ptrs[R];
        const T* coef_ptrs[R];
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t row = out_row_ids ? static_cast<std::size_t>(out_row_ids[r0 + r]) : r0 + r;
            out_ptrs[r] = out.row(row) + c0;
            coef_ptrs[r] = plan.coefs + plan.row_begin[r0 + r];
        }
        shared_tile_dispatch(out_ptrs, rows, std::min(C, cols - c0), plan.src_rows, n, coef_ptrs,
                             src.data + c0, cols, accumulate);
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
    if (plan.shared_sources && plan.out_rows > 0) {
        combine_rows_shared(plan, src, out, out_row_ids, accumulate);
        return;
    }
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
