// The small per-element layers around the matrix products: ReLU and the
// softmax cross-entropy loss. At the paper's batch of 10 their NumPy forms
// cost a dozen array operations of a few microseconds each, as much as a
// meProp layer's whole backward; these are one pass each.
#pragma once

#include <cstddef>
#include <cstdint>

#include "meprop/matrix.hpp"

namespace meprop {

// y = max(x, 0) element-wise, NaN kept (as numpy.maximum). y may be x.
template <class T>
void relu_forward(ConstMatrix<T> x, Matrix<T> y);

// dx = dy * (y > 0), y the forward's output: the product NumPy forms, so a
// negative dy where y is 0 gives -0.0 as there. dx may be dy.
template <class T>
void relu_backward(ConstMatrix<T> dy, ConstMatrix<T> y, Matrix<T> dx);

// The mean over rows of -log softmax(logits)[label], and its gradient with
// respect to the logits, (softmax - onehot(label)) / divisor, into grad
// (which may be logits). divisor is the batch the mean runs over (the rows
// here, or the whole mini-batch when these rows are a shard of it). Each row
// is shifted by its maximum first, so large logits do not overflow. Throws
// std::invalid_argument for a label outside [0, classes) or no rows; a NaN
// logit gives a NaN loss and NaN gradients in its row.
template <class T>
double softmax_cross_entropy(ConstMatrix<T> logits, const std::int64_t* labels, Matrix<T> grad,
                             double divisor);

}  // namespace meprop
