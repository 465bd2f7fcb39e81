// Fused optimizer updates, one pass over each parameter's state.
//
// A NumPy update takes some ten passes over the parameters; at the paper's
// MNIST batch of 10 that costs more than the whole meProp backward. These
// kernels update in one pass, in parallel, elementwise (so the result does not
// depend on the thread count).
//
// Gradients arrive as rows: `rows` (ascending ids) and `grad_rows`
// (rows.size() x cols). A dense gradient is the case rows = 0..n-1. With
// `lazy` false every row is updated and rows without gradient count as zero
// gradient (the paper's code: under Adam they still move through the
// moments); with `lazy` true only the listed rows are touched.
//
// Fused updates take a linear layer's weight-gradient plan and its input x
// instead of the gradient rows (PlannedGradient): each thread computes a few
// gradient rows at a time into a buffer that stays in cache and updates them
// at once, so the rows are never written to memory and read back. The result
// is bit for bit that of computing the rows with the plan and passing them.
//
// While an update runs, subnormal numbers (below 1.2e-38 in float) count as
// zero, on x86: Adam's decaying moments reach them, and each operation on one
// is slow enough to halve the update's speed. Only values under the normal
// range change; the caller's floating-point mode is restored afterwards.
#pragma once

#include <cstddef>
#include <cstdint>

#include "meprop/linear_backward.hpp"
#include "meprop/matrix.hpp"

namespace meprop {

struct RowGradientView {
    const std::int64_t* rows = nullptr;  // ascending row ids
    std::size_t count = 0;
};

// The gradient rows of a fused update: plan->rows() are the row ids, and the
// rows themselves are mask_S(dy)^T x, computed from the plan while updating.
// x (batch x param.cols) must hold what the plan was made for.
template <class T>
struct PlannedGradient {
    const WeightGradPlan<T>* plan = nullptr;
    ConstMatrix<T> x;
};

struct SgdConfig {
    double lr = 0.01;
    double clip = 0.0;  // > 0: clip each gradient element to [-clip, clip]
};

struct AdagradConfig {
    double lr = 0.01;
    double eps = 1e-6;
    double clip = 0.0;
};

struct AdamConfig {
    double lr = 0.001;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double clip = 0.0;
};

// param -= lr * g. Rows without gradient do not move, lazy or not.
template <class T>
void sgd_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, const SgdConfig& c);
template <class T>
void sgd_update(Matrix<T> param, const PlannedGradient<T>& grad, const SgdConfig& c);

// sum_sq += g^2; param -= lr * g / (sqrt(sum_sq) + eps). Rows without
// gradient do not move, lazy or not.
template <class T>
void adagrad_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, Matrix<T> sum_sq,
                    const AdagradConfig& c);
template <class T>
void adagrad_update(Matrix<T> param, const PlannedGradient<T>& grad, Matrix<T> sum_sq,
                    const AdagradConfig& c);

// Deferred decay of Adam's moments, one factor pair per row of the parameter:
// row r's moments are beta1_power[r] * m[r] and beta2_power[r] * v[r]. A row
// without gradient then multiplies two numbers instead of rewriting its m and
// v (it reads param, m and v and writes param: four streams instead of six,
// the larger part of a meProp step under Adam, where most rows get no
// gradient); both factors return to 1 when the row next gets a gradient.
// Mathematically the same update; rounding differs from decaying in place by
// a few units in the last place. Start both arrays at 1, and pass them with
// every later update of the parameter: m and v mean nothing without them.
struct AdamRowDecay {
    double* beta1_power = nullptr;  // param.rows entries, or null
    double* beta2_power = nullptr;  // param.rows entries, or null
};

// Adam (Kingma & Ba) with bias correction at step t >= 1:
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// With `decay` (both arrays or neither), rows without gradient defer their
// moments' decay as described above; rows that get a gradient every step are
// updated bit for bit as without it.
template <class T>
void adam_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, Matrix<T> m, Matrix<T> v,
                 std::int64_t step, const AdamConfig& c, bool lazy, AdamRowDecay decay = {});
template <class T>
void adam_update(Matrix<T> param, const PlannedGradient<T>& grad, Matrix<T> m, Matrix<T> v, std::int64_t step,
                 const AdamConfig& c, bool lazy, AdamRowDecay decay = {});

}  // namespace meprop
