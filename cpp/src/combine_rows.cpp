#include "combine_rows.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "multiversion.hpp"
#include "threads_for.hpp"

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

// Explicit vectors of B bytes: 64 (one AVX-512 register) in the build for
// AVX-512, 32 in the clones for AVX2 and older (multiversion.hpp). Loops left
// to the compiler's vectoriser get 256-bit ones even on AVX-512 machines.
template <class T, std::size_t B>
struct Wide {
    typedef T type __attribute__((vector_size(B)));
};

// One pass over the output block for up to four source rows: out = (or +=)
// c0*s0 + c1*s1 + c2*s2 + c3*s3. Grouping four rows per pass means one load and
// store of the output per four multiply-adds instead of one per multiply-add.
// The vector body and the scalar tail sum in the same order.
template <class T, std::size_t B, int Rows, bool Accumulate>
[[gnu::always_inline]] inline void combine_pass(T* __restrict out, std::size_t len,
                                                const std::int64_t* src_rows, const T* coefs, const T* src,
                                                std::size_t ld) {
    using V = typename Wide<T, B>::type;
    constexpr std::size_t lanes = sizeof(V) / sizeof(T);
    const T* __restrict s0 = src + src_rows[0] * ld;
    const T* __restrict s1 = Rows > 1 ? src + src_rows[1] * ld : s0;
    const T* __restrict s2 = Rows > 2 ? src + src_rows[2] * ld : s0;
    const T* __restrict s3 = Rows > 3 ? src + src_rows[3] * ld : s0;
    const T c0 = coefs[0];
    const T c1 = Rows > 1 ? coefs[1] : T(0);
    const T c2 = Rows > 2 ? coefs[2] : T(0);
    const T c3 = Rows > 3 ? coefs[3] : T(0);
    std::size_t c = 0;
    for (; c + lanes <= len; c += lanes) {
        V a, b;
        std::memcpy(&a, s0 + c, sizeof(V));
        V sum = c0 * a;
        if constexpr (Rows > 1) {
            std::memcpy(&b, s1 + c, sizeof(V));
            sum += c1 * b;
        }
        if constexpr (Rows > 2) {
            std::memcpy(&b, s2 + c, sizeof(V));
            sum += c2 * b;
        }
        if constexpr (Rows > 3) {
            std::memcpy(&b, s3 + c, sizeof(V));
            sum += c3 * b;
        }
        if constexpr (Accumulate) {
            std::memcpy(&b, out + c, sizeof(V));
            sum += b;
        }
        std::memcpy(out + c, &sum, sizeof(V));
    }
    for (; c < len; ++c) {
        T sum = c0 * s0[c];
        if constexpr (Rows > 1) sum += c1 * s1[c];
        if constexpr (Rows > 2) sum += c2 * s2[c];
        if constexpr (Rows > 3) sum += c3 * s3[c];
        if constexpr (Accumulate)
            out[c] += sum;
        else
            out[c] = sum;
    }
}

template <class T, std::size_t B, bool Accumulate>
[[gnu::always_inline]] inline void combine_group(T* out, std::size_t len, const std::int64_t* rows,
                                                 const T* coefs, std::size_t count, const T* src,
                                                 std::size_t ld) {
    switch (count) {
        case 1: combine_pass<T, B, 1, Accumulate>(out, len, rows, coefs, src, ld); break;
        case 2: combine_pass<T, B, 2, Accumulate>(out, len, rows, coefs, src, ld); break;
        case 3: combine_pass<T, B, 3, Accumulate>(out, len, rows, coefs, src, ld); break;
        default: combine_pass<T, B, 4, Accumulate>(out, len, rows, coefs, src, ld); break;
    }
}

// The entries are taken in groups of four, in order; the first group writes
// the block (no separate zero fill) unless accumulating.
template <class T, std::size_t B>
[[gnu::always_inline]] inline void combine_block(T* __restrict out, std::size_t len,
                                                 const std::int64_t* src_rows, const T* coefs, std::size_t n,
                                                 const T* src, std::size_t ld, bool accumulate) {
    std::size_t e = 0;
    if (!accumulate) {
        if (n == 0) {
            std::fill(out, out + len, T(0));
            return;
        }
        const std::size_t count = std::min<std::size_t>(n, 4);
        combine_group<T, B, false>(out, len, src_rows, coefs, count, src, ld);
        e = count;
    }
    for (; e < n; e += 4) {
        const std::size_t count = std::min<std::size_t>(n - e, 4);
        combine_group<T, B, true>(out, len, src_rows + e, coefs + e, count, src, ld);
    }
}

// Shared sources: a tile of Rows output rows x Vectors vectors of columns is
// accumulated in registers while each source row segment is loaded once for
// all Rows rows. Every output element is still the sum over entries in entry
// order, so the tiling (and the thread count) does not change the result.
constexpr int tile_vectors = 2;  // vectors per output row in a full tile
constexpr std::size_t shared_tile_rows = 4;

template <class T, std::size_t B, int Rows, int Vectors>
[[gnu::always_inline]] inline void shared_tile_full(T* const* out, std::size_t c0,
                                                    const std::int64_t* src_rows, std::size_t n,
                                                    const T* const* coefs, const T* src, std::size_t ld,
                                                    bool accumulate) {
    using V = typename Wide<T, B>::type;
    constexpr int lanes = sizeof(V) / sizeof(T);
    V acc[Rows][Vectors];
    for (int r = 0; r < Rows; ++r) {
        for (int v = 0; v < Vectors; ++v) {
            if (accumulate)
                std::memcpy(&acc[r][v], out[r] + c0 + v * lanes, sizeof(V));
            else
                acc[r][v] = V{};
        }
    }
    for (std::size_t e = 0; e < n; ++e) {
        const T* s = src + src_rows[e] * ld + c0;
        V sv[Vectors];
        for (int v = 0; v < Vectors; ++v) std::memcpy(&sv[v], s + v * lanes, sizeof(V));
        for (int r = 0; r < Rows; ++r) {
            const T w = coefs[r][e];
            for (int v = 0; v < Vectors; ++v) acc[r][v] += w * sv[v];
        }
    }
    for (int r = 0; r < Rows; ++r) {
        for (int v = 0; v < Vectors; ++v) std::memcpy(out[r] + c0 + v * lanes, &acc[r][v], sizeof(V));
    }
}

// Fewer columns than a vector at the right edge: the same sums, element by element.
template <class T>
[[gnu::always_inline]] inline void shared_tile_edge(T* const* out, std::size_t rows, std::size_t c0,
                                                    std::size_t len, const std::int64_t* src_rows,
                                                    std::size_t n, const T* const* coefs, const T* src,
                                                    std::size_t ld, bool accumulate) {
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = c0; c < c0 + len; ++c) {
            T acc = accumulate ? out[r][c] : T(0);
            for (std::size_t e = 0; e < n; ++e) acc += coefs[r][e] * src[src_rows[e] * ld + c];
            out[r][c] = acc;
        }
    }
}

template <class T, std::size_t B, int Vectors>
[[gnu::always_inline]] inline void shared_tile_rows_any(T* const* out, std::size_t rows, std::size_t c0,
                                                        const std::int64_t* src_rows, std::size_t n,
                                                        const T* const* coefs, const T* src, std::size_t ld,
                                                        bool accumulate) {
    switch (rows) {
        case 4: shared_tile_full<T, B, 4, Vectors>(out, c0, src_rows, n, coefs, src, ld, accumulate); break;
        case 3: shared_tile_full<T, B, 3, Vectors>(out, c0, src_rows, n, coefs, src, ld, accumulate); break;
        case 2: shared_tile_full<T, B, 2, Vectors>(out, c0, src_rows, n, coefs, src, ld, accumulate); break;
        default: shared_tile_full<T, B, 1, Vectors>(out, c0, src_rows, n, coefs, src, ld, accumulate); break;
    }
}

// A task of the shared case: up to 4 output rows over one column tile
// (two vectors; at the right edge one vector, then single columns).
template <class T, std::size_t B>
[[gnu::always_inline]] inline void shared_tile_any(T* const* out, std::size_t rows, std::size_t c0,
                                                   std::size_t len, const std::int64_t* src_rows,
                                                   std::size_t n, const T* const* coefs, const T* src,
                                                   std::size_t ld, bool accumulate) {
    constexpr std::size_t lanes = sizeof(typename Wide<T, B>::type) / sizeof(T);
    if (len == tile_vectors * lanes) {
        shared_tile_rows_any<T, B, tile_vectors>(out, rows, c0, src_rows, n, coefs, src, ld, accumulate);
        return;
    }
    if (len >= lanes) {
        shared_tile_rows_any<T, B, 1>(out, rows, c0, src_rows, n, coefs, src, ld, accumulate);
        c0 += lanes;
        len -= lanes;
    }
    if (len > 0) shared_tile_edge(out, rows, c0, len, src_rows, n, coefs, src, ld, accumulate);
}

template <class T, std::size_t B>
constexpr std::size_t shared_tile_cols = tile_vectors * B / sizeof(T);

// Tasks [first, last) of the shared case, column tile outermost: consecutive
// tasks reuse the same source segments.
template <class T, std::size_t B>
[[gnu::always_inline]] inline void shared_tasks(const RowCombination<T>& plan, ConstMatrix<T> src,
                                                Matrix<T> out, const std::int64_t* out_row_ids,
                                                bool accumulate, std::size_t first, std::size_t last) {
    constexpr std::size_t R = shared_tile_rows;
    constexpr std::size_t C = shared_tile_cols<T, B>;
    const std::size_t cols = src.cols;
    const std::size_t n = plan.row_begin[1] - plan.row_begin[0];
    const std::size_t row_tiles = (plan.out_rows + R - 1) / R;
    for (std::size_t task = first; task < last; ++task) {
        const std::size_t c0 = task / row_tiles * C;
        const std::size_t r0 = task % row_tiles * R;
        const std::size_t rows = std::min(R, plan.out_rows - r0);
        T* out_ptrs[R];
        const T* coef_ptrs[R];
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t row = out_row_ids ? static_cast<std::size_t>(out_row_ids[r0 + r]) : r0 + r;
            out_ptrs[r] = out.row(row);
            coef_ptrs[r] = plan.coefs + plan.row_begin[r0 + r];
        }
        shared_tile_any<T, B>(out_ptrs, rows, c0, std::min(C, cols - c0), plan.src_rows, n, coef_ptrs,
                              src.data, cols, accumulate);
    }
}

// Tasks [first, last) of the general case: (output row, column block) pairs.
template <class T, std::size_t B>
[[gnu::always_inline]] inline void row_tasks(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                                             const std::int64_t* out_row_ids, bool accumulate,
                                             std::size_t first, std::size_t last) {
    const std::size_t cols = src.cols;
    const std::size_t blocks = (cols + column_block - 1) / column_block;
    for (std::size_t task = first; task < last; ++task) {
        const std::size_t r = task / blocks;
        const std::size_t c0 = task % blocks * column_block;
        const std::size_t len = std::min(column_block, cols - c0);
        const std::size_t out_row = out_row_ids ? static_cast<std::size_t>(out_row_ids[r]) : r;
        const std::size_t e0 = plan.row_begin[r];
        combine_block<T, B>(out.row(out_row) + c0, len, plan.src_rows + e0, plan.coefs + e0,
                            plan.row_begin[r + 1] - e0, src.data + c0, cols, accumulate);
    }
}

// The per-ISA builds take a range of tasks, not one: at batch 10 a task is a
// few hundred multiply-adds, and a call through the dispatcher per task cost
// as much as the arithmetic.
#define MEPROP_TASK_PARAMS                                                                                \
    (const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out, const std::int64_t* ids, bool acc, \
     std::size_t first, std::size_t last)
#define MEPROP_TASK_ARGS (plan, src, out, ids, acc, first, last)
MEPROP_ISA_KERNEL_WIDE(shared_tasks_any, (shared_tasks<T, 64>), (shared_tasks<T, 32>), MEPROP_TASK_PARAMS,
                       MEPROP_TASK_ARGS)
MEPROP_ISA_KERNEL_WIDE(row_tasks_any, (row_tasks<T, 64>), (row_tasks<T, 32>), MEPROP_TASK_PARAMS,
                       MEPROP_TASK_ARGS)
#undef MEPROP_TASK_PARAMS
#undef MEPROP_TASK_ARGS

template <class T>
void run_tasks(bool shared, const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
               const std::int64_t* ids, bool acc, std::size_t first, std::size_t last) {
    if (shared)
        shared_tasks_any(plan, src, out, ids, acc, first, last);
    else
        row_tasks_any(plan, src, out, ids, acc, first, last);
}

// The plan's tasks (each computed whole by one thread) and its multiply-adds.
template <class T>
std::pair<std::size_t, std::size_t> tasks_and_work(const RowCombination<T>& plan, std::size_t cols) {
    if (plan.shared_sources) {
        const std::size_t R = shared_tile_rows;
        const std::size_t C = avx512_runs() ? shared_tile_cols<T, 64> : shared_tile_cols<T, 32>;
        return {(plan.out_rows + R - 1) / R * ((cols + C - 1) / C),
                plan.out_rows * (plan.row_begin[1] - plan.row_begin[0]) * cols};
    }
    return {plan.out_rows * ((cols + column_block - 1) / column_block), plan.row_begin[plan.out_rows] * cols};
}

}  // namespace

template <class T>
void combine_rows_here(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                       const std::int64_t* out_row_ids, bool accumulate) {
    if (plan.out_rows == 0) return;
    run_tasks(plan.shared_sources, plan, src, out, out_row_ids, accumulate, 0,
              tasks_and_work(plan, src.cols).first);
}

template <class T>
void combine_rows(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                  const std::int64_t* out_row_ids, bool accumulate) {
    if (plan.out_rows == 0) return;
    const bool shared = plan.shared_sources;
    // Plain variables, not a structured binding: clang 14 cannot name those in an OpenMP region.
    const auto counts = tasks_and_work(plan, src.cols);
    const std::size_t tasks = counts.first, work = counts.second;
    const int threads = threads_for(work, parallel_min_work);
    if (threads == 1) {
        run_tasks(shared, plan, src, out, out_row_ids, accumulate, 0, tasks);
        return;
    }
    // Contiguous task ranges, one per thread; each task is computed whole by
    // one thread, so the result does not depend on how they are split.
#pragma omp parallel num_threads(threads)
    {
        const auto t = static_cast<std::size_t>(omp_get_thread_num());
        const auto nt = static_cast<std::size_t>(omp_get_num_threads());
        run_tasks(shared, plan, src, out, out_row_ids, accumulate, tasks * t / nt, tasks * (t + 1) / nt);
    }
}

template void combine_rows<float>(const RowCombination<float>&, ConstMatrix<float>, Matrix<float>,
                                  const std::int64_t*, bool);
template void combine_rows<double>(const RowCombination<double>&, ConstMatrix<double>, Matrix<double>,
                                   const std::int64_t*, bool);
template void combine_rows_here<float>(const RowCombination<float>&, ConstMatrix<float>, Matrix<float>,
                                       const std::int64_t*, bool);
template void combine_rows_here<double>(const RowCombination<double>&, ConstMatrix<double>, Matrix<double>,
                                        const std::int64_t*, bool);

}  // namespace meprop::detail
