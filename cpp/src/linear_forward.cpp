#include "meprop/linear_forward.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "check.hpp"
#include "multiversion.hpp"
#include "threads_for.hpp"

namespace meprop {
namespace {

// Examples per block: their rows of x (32 x n_in) stay in L2 while every row
// of W streams past once.
constexpr std::size_t batch_block = 32;
// Same threshold as the backward kernels: below it one thread is faster.
constexpr std::size_t parallel_min_work = 1 << 18;

// A register tile: up to MaxEx examples x Wr rows of W, one vector
// accumulator each. A block's examples are split into tiles as even as
// possible (10 -> 5 + 5 with MaxEx 6), so that every tile has enough
// independent accumulators to keep the FMA pipes busy.
//  - Wide: 64-byte vectors, up to 6 x 4 = 24 accumulators plus 5 loads in
//    AVX-512's 32 registers.
//  - Narrow: 32-byte vectors, up to 5 x 2 = 10 accumulators plus 3 loads in
//    AVX2's 16 (the wide tile there spills, and ran 1.8x slower than BLAS).
//    Ten, not eight: two FMA pipes of 4-5 cycles' latency need about ten
//    independent sums in flight; at batch 10 (tiles of 5 + 5 instead of
//    4 + 3 + 3) 784->500 took 126 us instead of 152 on an AMD EPYC (AVX2).
struct WideTile {
    static constexpr std::size_t bytes = 64, max_examples = 6, weights = 4;
};
struct NarrowTile {
    static constexpr std::size_t bytes = 32, max_examples = 5, weights = 2;
};

template <class T, std::size_t Bytes>
struct Vec {
    typedef T type __attribute__((vector_size(Bytes)));
};

// The sum of a vector's lanes, halving: lanes [0, n/2) plus [n/2, n), again
// and again. At batch 10 a 784-long dot product is only 49 vector
// multiply-adds, and a lane-by-lane sum would cost about as much as the
// products. The order is fixed: results do not depend on the thread count.
template <class T, std::size_t Bytes>
[[gnu::always_inline]] inline T lane_sum(typename Vec<T, Bytes>::type v) {
    if constexpr (Bytes == 2 * sizeof(T)) {
        return v[0] + v[1];
    } else {
        using H = typename Vec<T, Bytes / 2>::type;
        H lo, hi;
        std::memcpy(&lo, &v, Bytes / 2);
        std::memcpy(&hi, reinterpret_cast<const char*>(&v) + Bytes / 2, Bytes / 2);
        return lane_sum<T, Bytes / 2>(lo + hi);
    }
}

// Dot products of Ex rows of x with the tile's rows of W over n columns:
// vector multiply-adds, the lane sums, then the scalar tail.
template <class T, class Tile, int Ex>
[[gnu::always_inline]] inline void dot_tile(const T* const* xs, const T* const* ws, std::size_t n,
                                            T (*out)[Tile::weights]) {
    constexpr std::size_t Wr = Tile::weights;
    using V = typename Vec<T, Tile::bytes>::type;
    constexpr std::size_t lanes = sizeof(V) / sizeof(T);
    V acc[Ex][Wr];
    for (int e = 0; e < Ex; ++e)
        for (std::size_t w = 0; w < Wr; ++w) acc[e][w] = V{};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        V wv[Wr];
        for (std::size_t w = 0; w < Wr; ++w) std::memcpy(&wv[w], ws[w] + i, sizeof(V));
        for (int e = 0; e < Ex; ++e) {
            V xv;
            std::memcpy(&xv, xs[e] + i, sizeof(V));
            for (std::size_t w = 0; w < Wr; ++w) acc[e][w] += xv * wv[w];
        }
    }
    for (int e = 0; e < Ex; ++e) {
        for (std::size_t w = 0; w < Wr; ++w) {
            T sum = lane_sum<T, Tile::bytes>(acc[e][w]);
            for (std::size_t t = i; t < n; ++t) sum += xs[e][t] * ws[w][t];
            out[e][w] = sum;
        }
    }
}

// One block: rows [w0, w1) of W against examples [b0, b1). The last rows of
// W short of a full tile repeat the last one, and the duplicates are dropped.
template <class T, class Tile>
[[gnu::always_inline]] inline void forward_block(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias,
                                                 Matrix<T> y, std::size_t b0, std::size_t b1, std::size_t w0,
                                                 std::size_t w1) {
    constexpr std::size_t Wr = Tile::weights, MaxEx = Tile::max_examples;
    const std::size_t examples = b1 - b0;
    const std::size_t tiles = (examples + MaxEx - 1) / MaxEx;
    for (std::size_t j = w0; j < w1; j += Wr) {
        const std::size_t nw = std::min(Wr, w1 - j);
        const T* ws[Wr];
        for (std::size_t w = 0; w < Wr; ++w) ws[w] = W.row(j + std::min(w, nw - 1));
        std::size_t b = b0;
        for (std::size_t tile = 0; tile < tiles; ++tile) {
            // Tile sizes differ by at most one: the first (examples % tiles) get one more.
            const std::size_t ne = examples / tiles + (tile < examples % tiles ? 1 : 0);
            const T* xs[MaxEx] = {};
            for (std::size_t e = 0; e < ne; ++e) xs[e] = x.row(b + e);
            T out[MaxEx][Wr];
            switch (ne) {
                case 6:
                    if constexpr (MaxEx >= 6) dot_tile<T, Tile, 6>(xs, ws, x.cols, out);
                    break;
                case 5:
                    if constexpr (MaxEx >= 5) dot_tile<T, Tile, 5>(xs, ws, x.cols, out);
                    break;
                case 4: dot_tile<T, Tile, 4>(xs, ws, x.cols, out); break;
                case 3: dot_tile<T, Tile, 3>(xs, ws, x.cols, out); break;
                case 2: dot_tile<T, Tile, 2>(xs, ws, x.cols, out); break;
                default: dot_tile<T, Tile, 1>(xs, ws, x.cols, out); break;
            }
            for (std::size_t e = 0; e < ne; ++e)
                for (std::size_t w = 0; w < nw; ++w)
                    y.row(b + e)[j + w] = bias ? out[e][w] + bias[j + w] : out[e][w];
            b += ne;
        }
    }
}

// The wide tile is compiled for AVX-512 alone and taken when the processor
// has it; the narrow one gets the usual per-ISA clones (multiversion.hpp).
MEPROP_ISA_KERNEL_WIDE(forward_block_any, (forward_block<T, WideTile>), (forward_block<T, NarrowTile>),
                       (ConstMatrix<T> x, ConstMatrix<T> W, const T* bias, Matrix<T> y, std::size_t b0,
                        std::size_t b1, std::size_t w0, std::size_t w1),
                       (x, W, bias, y, b0, b1, w0, w1))

}  // namespace

template <class T>
void linear_forward(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias, Matrix<T> y) {
    if (x.cols != W.cols)
        detail::fail("linear_forward: x has ", x.cols, " columns but W has ", W.cols,
                     " (W must be n_out x n_in)");
    if (y.rows != x.rows || y.cols != W.rows)
        detail::fail("linear_forward: y must be ", x.rows, " x ", W.rows, ", got ", y.rows, " x ", y.cols);
    if (x.rows == 0 || W.rows == 0) return;
    // Tasks: (example block, chunk of W rows). A chunk of 16 rows keeps tasks
    // numerous enough to balance and each W row is read once per block.
    constexpr std::size_t chunk = 16;
    const std::size_t batch_blocks = (x.rows + batch_block - 1) / batch_block;
    const std::size_t chunks = (W.rows + chunk - 1) / chunk;
    const auto tasks = static_cast<std::int64_t>(batch_blocks * chunks);
    const std::size_t work = x.rows * W.rows * x.cols;
    const int threads = detail::threads_for(work, parallel_min_work);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
        const std::size_t block = static_cast<std::size_t>(task) / chunks;
        const std::size_t c = static_cast<std::size_t>(task) % chunks;
        const std::size_t b0 = block * batch_block, b1 = std::min(x.rows, b0 + batch_block);
        const std::size_t w0 = c * chunk, w1 = std::min(W.rows, w0 + chunk);
        forward_block_any(x, W, bias, y, b0, b1, w0, w1);
    }
}

bool linear_forward_uses_avx512() {
    return detail::avx512_runs();
}

template void linear_forward<float>(ConstMatrix<float>, ConstMatrix<float>, const float*, Matrix<float>);
template void linear_forward<double>(ConstMatrix<double>, ConstMatrix<double>, const double*, Matrix<double>);

}  // namespace meprop
