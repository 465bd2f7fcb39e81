// The one arithmetic kernel behind every sparse gradient: each output row is
// a weighted sum of source rows,
//   out[r, :] (+)= sum_{e in row r} coef[e] * src[src_row[e], :],
// i.e. a sparse (CSR) times dense product. dx uses it with W's rows as
// sources, dW with x's rows; unified and dense modes are the same with every
// output row sharing one pattern.
#pragma once

#include <cstddef>
#include <cstdint>

#include "meprop/matrix.hpp"

namespace meprop::detail {

template <class T>
struct RowCombination {
    std::size_t out_rows = 0;
    const std::size_t* row_begin = nullptr;  // out_rows + 1 offsets into the entries
    const std::int64_t* src_rows = nullptr;  // per entry: which source row
    const T* coefs = nullptr;                // per entry: its weight
    // Every row has the same source rows (unified and dense modes). Then a
    // tile of output rows shares each source load, a small dense product.
    bool shared_sources = false;
};

// Writes row r of the result to out + out_row_ids[r] * out.cols (or row r when
// out_row_ids is null). Overwrites unless accumulate. Each (row, column block)
// is owned by one thread and summed in entry order: thread-count independent.
template <class T>
void combine_rows(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                  const std::int64_t* out_row_ids, bool accumulate);

// The same on the calling thread alone, for a caller inside a parallel loop of its own.
template <class T>
void combine_rows_here(const RowCombination<T>& plan, ConstMatrix<T> src, Matrix<T> out,
                       const std::int64_t* out_row_ids, bool accumulate);

}  // namespace meprop::detail
