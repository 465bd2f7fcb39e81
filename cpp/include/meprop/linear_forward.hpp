// Forward of a linear layer for the small batches of meProp training:
//   y[b, j] = sum_i x[b, i] * W[j, i] + bias[j]
// Shapes: x (B, n_in), W (n_out, n_in) row-major as in linear_backward.hpp,
// y (B, n_out); bias has n_out entries or is null.
//
// Why a kernel of our own: at the paper's batch of 10 a BLAS GEMM pads to its
// block size (OpenBLAS takes as long for 10 examples as for 16 on a 784x500
// layer), and calling it means a second thread pool beside the library's.
// This kernel reads W once per 32 examples, keeps a 4x2 tile of dot products
// in registers and runs on the library's OpenMP threads: 1.4x faster than
// OpenBLAS at B=10 (benchmarks/bench_forward.py). Each y element is one
// thread's fixed-order sum, so results do not depend on the thread count.
// For one example or more than ~12 BLAS is faster; the Python layer uses this
// kernel for 2-12 examples only.
#pragma once

#include "meprop/matrix.hpp"

namespace meprop {

// y is overwritten. Throws std::invalid_argument on mismatched shapes.
template <class T>
void linear_forward(ConstMatrix<T> x, ConstMatrix<T> W, const T* bias, Matrix<T> y);

}  // namespace meprop
