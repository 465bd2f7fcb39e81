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
// A register tile: Ex examples x Wr rows of W, each a vector accumulator.
// 4 x 2 accumulators plus 6 loads fit the 16 registers of AVX2.
constexpr std::size_t tile_examples = 4;
constexpr std::size_t tile_weights = 2;
// Same threshold as the backward kernels: below it one thread is faster.
constexpr std::size_t parallel_min_work = 1 << 18;

template <class T>
struct Vec {
    typedef T type __attribute__((vector_size(64)));
};

// Dot products of Ex rows of x with Wr rows of W over n columns. Lanes of the
// accumulators are summed in a fixed order, then the scalar tail.
template <class T, int Ex, int Wr>
[[gnu::always_inline]] inline void dot_tile(const T* const* xs, const T* const* ws, std::size_t n,
                                            T (*out)[Wr]) {
    using V = typename Vec<T>::type;
    constexpr std::size_t lanes = sizeof(V) / sizeof(T);
    V acc[Ex][Wr];
    for (int e = 0; e < Ex; ++e)
        for (int w = 0; w < Wr; ++w) acc[e][w] = V{};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        V wv[Wr];
        for (int w = 0; w < Wr; ++w) std::memcpy(&wv[w], ws[w] + i, sizeof(V));
        for (int e = 0; e < Ex; ++e) {
            V xv;
            std::memcpy(&xv, xs[e] + i, sizeof(V));
            for (int w = 0; w < Wr; ++w) acc[e][w] += xv * wv[w];
        }
    }
    for (int e = 0; e < Ex; ++e) {
        for (int w = 0; w < Wr; ++w) {
            T sum = T(0);
            for (std::size_t l = 0; l < lanes; ++l) sum += acc[e][w][l];
            for (std::size_t t = i; t < n; ++t) sum += xs[e][t] * ws[w][t];
            out[e][w] = sum;
        }
    }
}

template <class T, int Ex>
[[gnu::always_inline]] inline void tile_examples_fixed(const T* const* xs, const T* const* ws,
                                                       std::size_t n_weights, std::size_t n,
                                                       T (*out)[tile_weights]) {
    if (n_weights == tile_weights) {
        dot_tile<T, Ex, tile_weights>(xs, ws, n, out);
    } else {
        T one[Ex][1];
        dot_tile<T, Ex, 1>(xs, ws, n, one);
        for (int e = 0; e < Ex; ++e) out[e][0] = one[e][0];
    }
}

// One block: rows [w0, w1) of W against examples [b0, b1).
template <class T>
[[gnu::always_inline]] inline void forward_block(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias,
                                                 Matrix<T> y, std::size_t b0, std::size_t b1,
                                                 std::size_t w0, std::size_t w1) {
    for (std::size_t j = w0; j < w1; j += tile_weights) {
        const std::size_t nw = std::min(tile_weights, w1 - j);
        const T* ws[tile_weights] = {W.row(j), W.row(j + nw - 1)};
        for (std::size_t b = b0; b < b1; b += tile_examples) {
            const std::size_t ne = std::min(tile_examples, b1 - b);
            const T* xs[tile_examples];
            for (std::size_t e = 0; e < tile_examples; ++e) xs[e] = x.row(b + std::min(e, ne - 1));
            T out[tile_examples][tile_weights] = {};
            switch (ne) {
                case 4: tile_examples_fixed<T, 4>(xs, ws, nw, x.cols, out); break;
                case 3: tile_examples_fixed<T, 3>(xs, ws, nw, x.cols, out); break;
                case 2: tile_examples_fixed<T, 2>(xs, ws, nw, x.cols, out); break;
                default: tile_examples_fixed<T, 1>(xs, ws, nw, x.cols, out); break;
            }
            for (std::size_t e = 0; e < ne; ++e)
                for (std::size_t w = 0; w < nw; ++w)
                    y.row(b + e)[j + w] = bias ? out[e][w] + bias[j + w] : out[e][w];
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
