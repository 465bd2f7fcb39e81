#include "meprop/topk.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "check.hpp"
#include "meprop/threading.hpp"
#include "select_heap.hpp"
#include "select_radix.hpp"

namespace meprop {

SelectMethod parse_select_method(std::string_view name) {
    if (name == "auto") return SelectMethod::automatic;
    if (name == "heap") return SelectMethod::heap;
    if (name == "radix") return SelectMethod::radix;
    detail::fail("unknown top-k method '", name, "' (expected 'auto', 'heap' or 'radix')");
}

const char* select_method_name(SelectMethod method) {
    switch (method) {
        case SelectMethod::heap: return "heap";
        case SelectMethod::radix: return "radix";
        default: return "auto";
    }
}

SelectMethod select_method_for(std::size_t n, std::size_t k) {
    // Measured per row, one thread, AVX-512 machine (benchmarks/bench_select.py):
    // the heap costs about one mispredicted sift per entry that enters it, so it
    // wins only while few do (k <= 4, or k <= n/400 for long rows); the radix
    // pass costs a few sweeps whatever k is (n=500: 0.74-0.90 us for k=8-20
    // against the heap's 1.07-2.4 us).
    const std::size_t heap_limit = std::max<std::size_t>(4, n / 400);
    return k <= heap_limit ? SelectMethod::heap : SelectMethod::radix;
}

namespace {

void check_topk_args(const void* a, std::size_t n, std::size_t k, const void* out) {
    if (k < 1 || k > n) detail::fail("k must be in [1, n] = [1, ", n, "], got ", k);
    if (a == nullptr || out == nullptr) detail::fail("null data pointer passed to top-k");
    if (n > std::numeric_limits<std::uint32_t>::max()) {
        detail::fail("top-k supports at most 2^32 - 1 entries per row, got ", n);
    }
}

template <class T>
void select(const T* a, std::size_t n, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (method == SelectMethod::automatic) method = select_method_for(n, k);
    if (k == n) {  // everything is kept; no selection needed
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(i);
    } else if (method == SelectMethod::heap) {
        detail::select_heap(a, n, k, out);
    } else {
        detail::select_radix(a, n, k, out);
    }
}

// Below this much work, waking threads costs more than it saves.
constexpr std::size_t parallel_min_entries = 8192;

}  // namespace

template <class T>
void topk(const T* a, std::size_t n, std::size_t k, std::int64_t* out, SelectMethod method) {
    check_topk_args(a, n, k, out);
    select(a, n, k, out, method);
}

template <class T>
void topk_rows(ConstMatrix<T> a, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (a.rows == 0) {  // nothing to select, but k must still fit a row
        if (k < 1 || k > a.cols) detail::fail("k must be in [1, n] = [1, ", a.cols, "], got ", k);
        return;
    }
    check_topk_args(a.data, a.cols, k, out);
    const auto rows = static_cast<std::int64_t>(a.rows);
    const int threads = a.rows * a.cols >= parallel_min_entries ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t r = 0; r < rows; ++r) {
        select(a.row(static_cast<std::size_t>(r)), a.cols, k, out + r * static_cast<std::int64_t>(k),
               method);
    }
}

template <class T>
void topk_unified(ConstMatrix<T> a, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (a.rows == 0) detail::fail("unified top-k needs at least one row");
    check_topk_args(a.data, a.cols, k, out);
    thread_local std::vector<T> sums;
    if (sums.size() < a.cols) sums.resize(a.cols);
    T* s = sums.data();

    // Each thread owns a block of columns and sums it in row order.
    constexpr std::int64_t block = 256;
    const auto cols = static_cast<std::int64_t>(a.cols);
    const std::int64_t blocks = (cols + block - 1) / block;
    const int threads = a.rows * a.cols >= parallel_min_entries ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const std::int64_t c0 = blk * block;
        const std::int64_t c1 = c0 + block < cols ? c0 + block : cols;
        for (std::int64_t c = c0; c < c1; ++c) s[c] = std::abs(a.data[c]);
        for (std::size_t r = 1; r < a.rows; ++r) {
            const T* row = a.row(r);
            for (std::int64_t c = c0; c < c1; ++c) s[c] += std::abs(row[c]);
        }
    }
    select(s, a.cols, k, out, method);
}

#define MEPROP_INSTANTIATE_TOPK(T)                                                        \
    template void topk<T>(const T*, std::size_t, std::size_t, std::int64_t*, SelectMethod); \
    template void topk_rows<T>(ConstMatrix<T>, std::size_t, std::int64_t*, SelectMethod);    \
    template void topk_unified<T>(ConstMatrix<T>, std::size_t, std::int64_t*, SelectMethod);

MEPROP_INSTANTIATE_TOPK(float)
MEPROP_INSTANTIATE_TOPK(double)

}  // namespace meprop
