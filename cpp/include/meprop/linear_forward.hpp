// Forward of a linear layer:
//   y[b, j] = sum_i x[b, i] * W[j, i] + bias[j]
// Shapes: x (B, n_in), W (n_out, n_in) row-major as in linear_backward.hpp,
// y (B, n_out); bias has n_out entries or is null.
//
// Why a kernel of our own: at the paper's batch of 10 a BLAS GEMM pads to its
// block size (OpenBLAS takes as long for 10 examples as for 16 on a 784x500
// layer), and calling it means a second thread pool beside the library's.
// This kernel reads W once per 32 examples, keeps a tile of dot products in
// registers (up to 6 examples x 4 rows of W in 64-byte vectors on AVX-512,
// 4 x 2 in 32-byte vectors elsewhere) and runs on the library's OpenMP
// threads. Each y element is one thread's fixed-order sum, so results do not
// depend on the thread count. How it compares with OpenBLAS per ISA and
// batch: docs/benchmarks.md ("The forward kernel against BLAS").
#pragma once

#include "meprop/matrix.hpp"

namespace meprop {

// y is overwritten. Throws std::invalid_argument on mismatched shapes.
template <class T>
void linear_forward(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias, Matrix<T> y);

// Whether linear_forward runs its AVX-512 tile on this machine (callers
// choosing between it and a BLAS GEMM for large batches want to know).
bool linear_forward_uses_avx512();

}  // namespace meprop
