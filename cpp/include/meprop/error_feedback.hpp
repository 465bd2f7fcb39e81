// Error feedback for meProp's selection (memorized sparse back-propagation,
// Zhang, Sun et al., arXiv 1905.10194): the part of the output gradient that
// top-k drops is remembered and added back before the next selection, so that
// no gradient is lost for good, only delayed.
//
// A layer keeps one memory entry per output unit. At each backward:
//   u[b, j]  = dy[b, j] + memory[j] / B                (the memory spread over the batch)
//   S        = the index sets selected on u
//   memory[j] = decay * (sum_b u[b, j] - sum_{b : j in S_b} u[b, j])
// and the backward uses u masked to S. The sums over b run in row order, so
// the result does not depend on the thread count. With decay 1 the gradient
// mass of each unit is conserved: what is not propagated now is later.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "meprop/linear_backward.hpp"
#include "meprop/matrix.hpp"
#include "meprop/topk.hpp"

namespace meprop {

template <class T>
struct ErrorMemory {
    T* values = nullptr;  // one entry per output unit (dy.cols), updated in place
    std::size_t size = 0;
    T decay = T(1);  // in [0, 1]; 0 forgets everything (plain meProp)
};

// Throws std::invalid_argument unless memory has one entry per column of dy
// and decay lies in [0, 1].
template <class T>
void validate_error_memory(const ErrorMemory<T>& memory, std::size_t n_out);

// u = dy + memory / B, written into `corrected` (B x n_out, row-major).
template <class T>
void add_error_memory(ConstMatrix<T> dy, const ErrorMemory<T>& memory, Matrix<T> corrected);

// memory = decay * (column sums of u minus the kept entries' sums).
template <class T>
void update_error_memory(ConstMatrix<T> corrected, IndexSets sets, ErrorMemory<T>& memory);

// The whole step for a mode: fills `corrected`, selects on it (as
// select_index_sets) and updates the memory. Returns the index storage that
// `sets` points into. Dense mode keeps everything and leaves memory at zero.
template <class T>
std::vector<std::int64_t> select_with_error_memory(ConstMatrix<T> dy, BackwardMode mode, std::size_t k,
                                                   ErrorMemory<T>& memory, Matrix<T> corrected,
                                                   IndexSets& sets,
                                                   SelectMethod method = SelectMethod::automatic);

}  // namespace meprop
