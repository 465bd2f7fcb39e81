#include "meprop/pointwise.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "check.hpp"

namespace meprop {
namespace {

template <class A, class B>
void check_same_shape(const A& a, const B& b, const char* a_name, const char* b_name) {
    detail::check_view(a, a_name);
    detail::check_view(b, b_name);
    if (a.rows != b.rows || a.cols != b.cols) {
        detail::fail(b_name, " must be ", a.rows, " x ", a.cols, " like ", a_name, ", got ", b.rows, " x ",
                     b.cols);
    }
}

}  // namespace

template <class T>
void relu_forward(ConstMatrix<T> x, Matrix<T> y) {
    check_same_shape(x, y, "x", "y");
    const std::size_t n = x.rows * x.cols;
    const T* in = x.data;
    T* out = y.data;
    // x != x keeps NaN; -0.0 becomes +0.0 (not greater than 0).
    // Element i reads and writes index i only, so in-place use vectorises safely.
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) out[i] = in[i] > T(0) || in[i] != in[i] ? in[i] : T(0);
}

template <class T>
void relu_backward(ConstMatrix<T> dy, ConstMatrix<T> y, Matrix<T> dx) {
    check_same_shape(dy, y, "dy", "y");
    check_same_shape(dy, dx, "dy", "dx");
    const std::size_t n = dy.rows * dy.cols;
    const T* g = dy.data;
    const T* out = y.data;
    T* d = dx.data;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) d[i] = g[i] * (out[i] > T(0) ? T(1) : T(0));
}

template <class T>
double softmax_cross_entropy(ConstMatrix<T> logits, const std::int64_t* labels, Matrix<T> grad,
                             double divisor) {
    check_same_shape(logits, grad, "logits", "grad");
    if (logits.rows == 0) detail::fail("empty batch: the mean cross-entropy of no examples is undefined");
    if (logits.cols == 0) detail::fail("logits have no classes");
    if (labels == nullptr) detail::fail("labels are a null pointer");
    if (!(divisor > 0)) detail::fail("the divisor must be > 0, got ", divisor);
    const std::size_t C = logits.cols;
    for (std::size_t b = 0; b < logits.rows; ++b) {
        if (labels[b] < 0 || static_cast<std::size_t>(labels[b]) >= C) {
            detail::fail("label ", labels[b], " of row ", b, " is outside [0, ", C, ")");
        }
    }
    const T scale = static_cast<T>(1.0 / divisor);
    std::vector<T> e(C);
    double total_loss = 0.0;
    for (std::size_t b = 0; b < logits.rows; ++b) {
        const T* z = logits.row(b);
        T top = z[0];
        for (std::size_t j = 1; j < C; ++j) top = z[j] > top || z[j] != z[j] ? z[j] : top;
        T sum = T(0);
        for (std::size_t j = 0; j < C; ++j) {
            e[j] = std::exp(z[j] - top);
            sum += e[j];
        }
        const auto label = static_cast<std::size_t>(labels[b]);
        // log-sum-exp of the shifted row minus the label's shifted logit.
        total_loss += static_cast<double>(std::log(sum)) - static_cast<double>(z[label] - top);
        T* g = grad.row(b);
        for (std::size_t j = 0; j < C; ++j) g[j] = (e[j] / sum - (j == label ? T(1) : T(0))) * scale;
    }
    return total_loss / static_cast<double>(logits.rows);
}

#define MEPROP_INSTANTIATE_POINTWISE(T)                                        \
    template void relu_forward<T>(ConstMatrix<T>, Matrix<T>);                  \
    template void relu_backward<T>(ConstMatrix<T>, ConstMatrix<T>, Matrix<T>); \
    template double softmax_cross_entropy<T>(ConstMatrix<T>, const std::int64_t*, Matrix<T>, double);

MEPROP_INSTANTIATE_POINTWISE(float)
MEPROP_INSTANTIATE_POINTWISE(double)

}  // namespace meprop
