// Top-k selection by magnitude, the first half of meProp's backward pass.
//
// Every function returns the indices of the k entries with the largest |a[i]|
// in ascending index order. The order is total and deterministic:
//   * NaN ranks above every number (a NaN gradient is never silently dropped),
//   * among equal magnitudes the lower index wins,
//   * -0 and +0 are equal.
// Errors (k < 1, k > n, null pointers) throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "meprop/matrix.hpp"

namespace meprop {

enum class SelectMethod {
    automatic,  // picks one of the others from (n, k); see select_method_for
    heap,       // the paper's size-k min-heap: O(n log k) time, O(k) space
    radix,      // radix select on magnitude bits, then one exact pass: O(n)
    threshold,  // a bound from 64 lane maxima, then an exact pass over the few
                // entries above it: O(n); for k > 64 it runs radix
};

// Parses "auto", "heap", "radix" or "threshold"; throws std::invalid_argument
// otherwise.
SelectMethod parse_select_method(std::string_view name);
const char* select_method_name(SelectMethod method);

// The method `automatic` resolves to for a vector of n entries and a given k.
SelectMethod select_method_for(std::size_t n, std::size_t k);

// Top-k of one vector a[0..n). Writes k indices to out.
template <class T>
void topk(const T* a, std::size_t n, std::size_t k, std::int64_t* out,
          SelectMethod method = SelectMethod::automatic);

// Top-k of every row of a (rows x cols): out is rows x k. Parallel over rows.
template <class T>
void topk_rows(ConstMatrix<T> a, std::size_t k, std::int64_t* out,
               SelectMethod method = SelectMethod::automatic);

// One index set for the whole batch: the k columns with the largest
// sum over rows of |a[r, j]| (the paper's "simple unified top-k"). The column
// sums are accumulated in row order, so the result does not depend on threads.
template <class T>
void topk_unified(ConstMatrix<T> a, std::size_t k, std::int64_t* out,
                  SelectMethod method = SelectMethod::automatic);

}  // namespace meprop
