#include "meprop/linear_forward.hpp"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "meprop/threading.hpp"

#include "check.hpp"
#include "multiversion.hpp"

namespace meprop {
namespace {

// Examples per block: their rows of x (32 x n_in) stay in L2 while every row
// of W streams past once.
constexpr std::size_t batch_block = 32;
// A register tile: up to 6 examples x 2 rows of W, each pair a vector
// accumulator. A block's examples are split into tiles as even as possible
// (10 -> 5 + 5), so that every tile has enough independent accumulators to
// keep both FMA pipes busy; 12 accumulators plus 3 loads fit AVX-512's 32
// registers.
constexpr std::size_t max_tile_examples = 6;
constexpr std::size_t tile_weights = 4;
// Same threshold as the backward kernels: below it one thread is faster.
constexpr std::size_t parallel_min_work = 1 << 18;

template <class T>
struct Vec {
    typedef T type __attribute__((vector_size(64)));
};

// The lane sums of two accumulators, a's first. Pairing halves the shuffles
// of a horizontal sum: each fold adds the two halves of both vectors at once.
// At batch 10 a 784-long dot product is only 49 vector multiply-adds, so a
// lane-by-lane sum would cost about as much as the products themselves.
// The summation order is fixed: results do not depend on the thread count.
[[gnu::always_inline]] inline void pair_sums(Vec<float>::type a, Vec<float>::type b, float& sa,
                                             float& sb) {
    typedef float V8 __attribute__((vector_size(32)));
    typedef float V4 __attribute__((vector_size(16)));
    typedef float V2 __attribute__((vector_size(8)));
    // [a0..7 + a8..15 | b0..7 + b8..15]
    const Vec<float>::type h = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,
                                                       20, 21, 22, 23) +
                               __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25,
                                                       26, 27, 28, 29, 30, 31);
    const V8 q = __builtin_shufflevector(h, h, 0, 1, 2, 3, 8, 9, 10, 11) +
                 __builtin_shufflevector(h, h, 4, 5, 6, 7, 12, 13, 14, 15);
    const V4 e = __builtin_shufflevector(q, q, 0, 1, 4, 5) + __builtin_shufflevector(q, q, 2, 3, 6, 7);
    const V2 t = __builtin_shufflevector(e, e, 0, 2) + __builtin_shufflevector(e, e, 1, 3);
    sa = t[0];
    sb = t[1];
}

[[gnu::always_inline]] inline void pair_sums(Vec<double>::type a, Vec<double>::type b, double& sa,
                                             double& sb) {
    typedef double V4 __attribute__((vector_size(32)));
    typedef double V2 __attribute__((vector_size(16)));
    const Vec<double>::type h = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
                                __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    const V4 e = __builtin_shufflevector(h, h, 0, 1, 4, 5) + __builtin_shufflevector(h, h, 2, 3, 6, 7);
    const V2 t = __builtin_shufflevector(e, e, 0, 2) + __builtin_shufflevector(e, e, 1, 3);
    sa = t[0];
    sb = t[1];
}

// Dot products of Ex rows of x with the two rows of W over n columns: vector
// multiply-adds, the pairwise lane sums, then the scalar tail.
template <class T, int Ex>
[[gnu::always_inline]] inline void dot_tile(const T* const* xs, const T* const* ws, std::size_t n,
                                            T (*out)[tile_weights]) {
    using V = typename Vec<T>::type;
    constexpr std::size_t lanes = sizeof(V) / sizeof(T);
    V acc[Ex][tile_weights];
    for (int e = 0; e < Ex; ++e)
        for (std::size_t w = 0; w < tile_weights; ++w) acc[e][w] = V{};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        V wv[tile_weights];
        for (std::size_t w = 0; w < tile_weights; ++w) std::memcpy(&wv[w], ws[w] + i, sizeof(V));
        for (int e = 0; e < Ex; ++e) {
            V xv;
            std::memcpy(&xv, xs[e] + i, sizeof(V));
            for (std::size_t w = 0; w < tile_weights; ++w) acc[e][w] += xv * wv[w];
        }
    }
    for (int e = 0; e < Ex; ++e) {
        for (std::size_t w = 0; w < tile_weights; w += 2) {
            pair_sums(acc[e][w], acc[e][w + 1], out[e][w], out[e][w + 1]);
        }
        for (std::size_t w = 0; w < tile_weights; ++w)
            for (std::size_t t = i; t < n; ++t) out[e][w] += xs[e][t] * ws[w][t];
    }
}

// One block: rows [w0, w1) of W against examples [b0, b1). An odd last row of
// W is paired with itself, and its duplicate result dropped.
template <class T>
[[gnu::always_inline]] inline void forward_block(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias,
                                                 Matrix<T> y, std::size_t b0, std::size_t b1,
                                                 std::size_t w0, std::size_t w1) {
    const std::size_t examples = b1 - b0;
    const std::size_t tiles = (examples + max_tile_examples - 1) / max_tile_examples;
    for (std::size_t j = w0; j < w1; j += tile_weights) {
        const std::size_t nw = std::min(tile_weights, w1 - j);
        const T* ws[tile_weights];
        for (std::size_t w = 0; w < tile_weights; ++w) ws[w] = W.row(j + std::min(w, nw - 1));
        std::size_t b = b0;
        for (std::size_t tile = 0; tile < tiles; ++tile) {
            // Tile sizes differ by at most one: the first (examples % tiles) get one more.
            const std::size_t ne = examples / tiles + (tile < examples % tiles ? 1 : 0);
            const T* xs[max_tile_examples] = {};
            for (std::size_t e = 0; e < ne; ++e) xs[e] = x.row(b + e);
            T out[max_tile_examples][tile_weights];
            switch (ne) {
                case 6: dot_tile<T, 6>(xs, ws, x.cols, out); break;
                case 5: dot_tile<T, 5>(xs, ws, x.cols, out); break;
                case 4: dot_tile<T, 4>(xs, ws, x.cols, out); break;
                case 3: dot_tile<T, 3>(xs, ws, x.cols, out); break;
                case 2: dot_tile<T, 2>(xs, ws, x.cols, out); break;
                default: dot_tile<T, 1>(xs, ws, x.cols, out); break;
            }
            for (std::size_t e = 0; e < ne; ++e)
                for (std::size_t w = 0; w < nw; ++w)
                    y.row(b + e)[j + w] = bias ? out[e][w] + bias[j + w] : out[e][w];
            b += ne;
        }
    }
}

MEPROP_CLONES void forward_block_f32(ConstMatrix<float> x, ConstMatrix<float> W, const float* bias,
                                     Matrix<float> y, std::size_t b0, std::size_t b1,
                                     std::size_t w0, std::size_t w1) {
    forward_block(x, W, bias, y, b0, b1, w0, w1);
}
MEPROP_CLONES void forward_block_f64(ConstMatrix<double> x, ConstMatrix<double> W,
                                     const double* bias, Matrix<double> y, std::size_t b0,
                                     std::size_t b1, std::size_t w0, std::size_t w1) {
    forward_block(x, W, bias, y, b0, b1, w0, w1);
}
inline void forward_block_any(ConstMatrix<float> x, ConstMatrix<float> W, const float* bias,
                              Matrix<float> y, std::size_t b0, std::size_t b1, std::size_t w0,
                              std::size_t w1) {
    forward_block_f32(x, W, bias, y, b0, b1, w0, w1);
}
inline void forward_block_any(ConstMatrix<double> x, ConstMatrix<double> W, const double* bias,
                              Matrix<double> y, std::size_t b0, std::size_t b1, std::size_t w0,
                              std::size_t w1) {
    forward_block_f64(x, W, bias, y, b0, b1, w0, w1);
}

}  // namespace

template <class T>
void linear_forward(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias, Matrix<T> y) {
    if (x.cols != W.cols)
        detail::fail("linear_forward: x has ", x.cols, " columns but W has ", W.cols,
                     " (W must be n_out x n_in)");
    if (y.rows != x.rows || y.cols != W.rows)
        detail::fail("linear_forward: y must be ", x.rows, " x ", W.rows, ", got ", y.rows, " x ",
                     y.cols);
    if (x.rows == 0 || W.rows == 0) return;
    // Tasks: (example block, chunk of W rows). A chunk of 16 rows keeps tasks
    // numerous enough to balance and each W row is read once per block.
    constexpr std::size_t chunk = 16;
    const std::size_t batch_blocks = (x.rows + batch_block - 1) / batch_block;
    const std::size_t chunks = (W.rows + chunk - 1) / chunk;
    const auto tasks = static_cast<std::int64_t>(batch_blocks * chunks);
    const std::size_t work = x.rows * W.rows * x.cols;
    const int threads = work >= parallel_min_work ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t task = 0; task < tasks; ++task) {
        const std::size_t block = static_cast<std::size_t>(task) / chunks;
        const std::size_t c = static_cast<std::size_t>(task) % chunks;
        const std::size_t b0 = block * batch_block, b1 = std::min(x.rows, b0 + batch_block);
        const std::size_t w0 = c * chunk, w1 = std::min(W.rows, w0 + chunk);
        forward_block_any(x, W, bias, y, b0, b1, w0, w1);
    }
}

template void linear_forward<float>(ConstMatrix<float>, ConstMatrix<float>, const float*,
                                    Matrix<float>);
template void linear_forward<double>(ConstMatrix<double>, ConstMatrix<double>, const double*,
                                     Matrix<double>);

}  // namespace meprop
