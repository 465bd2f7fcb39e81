// Sparse backward of a linear layer y = x W^T + b, the second half of meProp.
//
// Shapes: x (B, n_in), W (n_out, n_in) row-major, dy (B, n_out).
// Given index sets S_b (the kept columns of dy), the gradients are the dense
// ones computed with dy masked to S:
//   dx[b]  = sum_{j in S_b} dy[b, j] * W[j, :]
//   dW[j]  = sum_{b : j in S_b} dy[b, j] * x[b, :]      (only touched rows j)
// Each output row is computed by one thread in a fixed order, so results are
// bitwise identical for any thread count. Errors throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "meprop/matrix.hpp"
#include "meprop/topk.hpp"

namespace meprop {

// Which entries of dy are kept.
enum class BackwardMode {
    per_example,  // the top-k of each row of dy (the paper's meProp)
    unified,      // one top-k column set for the batch, by sum_b |dy[b, j]|
    dense,        // every entry: ordinary backprop through the same kernels
};

// How the bias gradient is formed.
enum class BiasGradient {
    dense,   // db = sum_b dy[b, :], as in the paper's code
    sparse,  // db = sum_b of the masked dy: only touched entries move
};

BackwardMode parse_backward_mode(std::string_view name);
BiasGradient parse_bias_gradient(std::string_view name);

// Index sets: `sets` rows of `k` column ids each, strictly ascending within a
// row. sets == 1 means one set shared by every example (unified or dense).
struct IndexSets {
    const std::int64_t* ids = nullptr;
    std::size_t sets = 0;
    std::size_t k = 0;

    const std::int64_t* set(std::size_t b) const { return ids + (sets == 1 ? 0 : b * k); }
};

// Throws std::invalid_argument unless every set is strictly ascending, within
// [0, n_out), and there is one set or one per example.
void validate_index_sets(IndexSets s, std::size_t batch, std::size_t n_out);

// counts[j] += the number of examples whose kept entries include column j:
// meSimp's record of how often each output unit is selected. A shared set
// (unified or dense) counts once for each of the `batch` examples. counts has
// n_out entries; the sets must be valid for (batch, n_out).
void count_selected(IndexSets s, std::size_t batch, std::size_t n_out, std::int64_t* counts);

// dx = mask_S(dy) W. dx is overwritten.
template <class T>
void sparse_input_grad(ConstMatrix<T> dy, ConstMatrix<T> W, IndexSets s, Matrix<T> dx);

// Gradient rows of W that the index sets touch, in ascending row order.
template <class T>
struct RowGradients {
    std::vector<std::int64_t> rows;  // touched row ids, ascending
    std::vector<T> grads;            // rows.size() x cols, row-major
    std::size_t cols = 0;
};

// Compact dW = mask_S(dy)^T x, touched rows only.
template <class T>
RowGradients<T> sparse_weight_grad(ConstMatrix<T> dy, ConstMatrix<T> x, IndexSets s);

// The same in two steps, for callers that own the output memory: the plan
// groups the kept entries of dy by the row of W they update; `compute` writes
// the touched rows' gradients into a rows().size() x n_in buffer.
template <class T>
class WeightGradPlan {
  public:
    WeightGradPlan(ConstMatrix<T> dy, IndexSets s);

    const std::vector<std::int64_t>& rows() const { return units_; }
    std::size_t batch() const { return batch_; }
    void compute(ConstMatrix<T> x, Matrix<T> out) const;  // out = gradient rows
    // Rows [first, last) of rows() into out ((last - first) x n_in), on the
    // calling thread, bit for bit as compute() writes them: the fused
    // optimizer updates compute a few rows at a time in cache (optimizers.hpp).
    void compute_rows(ConstMatrix<T> x, std::size_t first, std::size_t last, Matrix<T> out) const;
    void accumulate(ConstMatrix<T> x, Matrix<T> dW) const;  // dW[rows] += ...

  private:
    std::size_t batch_ = 0;
    bool shared_ = false;                 // one index set for all examples
    std::vector<std::int64_t> units_;     // touched rows of W, ascending
    std::vector<std::size_t> row_begin_;  // per unit: offset into the entries
    std::vector<std::int64_t> examples_;  // per entry: the example b
    std::vector<T> values_;               // per entry: dy[b, unit]
};

// dW[j] += (mask_S(dy)^T x)[j] for touched rows j; other rows are not read or
// written, so a persistent gradient buffer costs nothing for untouched rows.
template <class T>
void sparse_weight_grad_accumulate(ConstMatrix<T> dy, ConstMatrix<T> x, IndexSets s, Matrix<T> dW);

// db (length n_out): dense or masked column sums of dy, summed in row order.
// Overwrites db unless accumulate is true.
template <class T>
void bias_grad(ConstMatrix<T> dy, const IndexSets* s, BiasGradient kind, T* db, bool accumulate);

// Selects the index sets for a mode: per_example -> B x k, unified -> 1 x k,
// dense -> 1 x n_out (0..n_out-1; k is ignored).
template <class T>
std::vector<std::int64_t> select_index_sets(ConstMatrix<T> dy, BackwardMode mode, std::size_t k,
                                            IndexSets& sets, SelectMethod method = SelectMethod::automatic);

// Everything at once, owning its results (for C++ callers).
template <class T>
struct LinearGradients {
    std::vector<T> dx;                  // B x n_in
    RowGradients<T> dW;                 // touched rows of dW
    std::vector<T> db;                  // n_out
    std::vector<std::int64_t> indices;  // the index sets used
};

template <class T>
LinearGradients<T> linear_backward(ConstMatrix<T> dy, ConstMatrix<T> x, ConstMatrix<T> W, std::size_t k,
                                   BackwardMode mode = BackwardMode::per_example,
                                   BiasGradient bias = BiasGradient::dense);

}  // namespace meprop
