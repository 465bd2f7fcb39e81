#include "meprop/topk.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "meprop/memory.hpp"
#include "multiversion.hpp"
#include "select_heap.hpp"
#include "select_radix.hpp"
#include "select_threshold.hpp"
#include "threads_for.hpp"

namespace meprop {

SelectMethod parse_select_method(std::string_view name) {
    if (name == "auto") return SelectMethod::automatic;
    if (name == "heap") return SelectMethod::heap;
    if (name == "radix") return SelectMethod::radix;
    if (name == "threshold") return SelectMethod::threshold;
    detail::fail("unknown top-k method '", name, "' (expected 'auto', 'heap', 'radix' or 'threshold')");
}

const char* select_method_name(SelectMethod method) {
    switch (method) {
        case SelectMethod::heap: return "heap";
        case SelectMethod::radix: return "radix";
        case SelectMethod::threshold: return "threshold";
        default: return "auto";
    }
}

SelectMethod select_method_for(std::size_t n, std::size_t k) {
    // Measured per row on fresh rows, one thread, AVX-512 machine
    // (benchmarks/bench_select.py, n = 100-4096, k = 1-128): the threshold
    // pass wins for k up to 32 once rows hold at least 8k entries (n=500,
    // k=20: 0.68 us against radix's 1.09 and the heap's 2.72), and up to 48
    // in rows of 40k or more; nearer the 64 lanes, or in rows only a few times longer than
    // k, too many entries reach its bound. In rows of fewer than 256 entries
    // its fixed cost (64 x 64 comparisons) loses to the heap for k <= 4.
    // Otherwise the heap costs about one mispredicted sift per entry that
    // enters it, so it wins only while few do (k <= n/400), and radix costs
    // a few sweeps whatever k is.
    if (k <= 4 && n < 256) return SelectMethod::heap;
    const bool few = k <= detail::threshold_lanes / 2 || (k <= 48 && n >= 40 * k);
    if (few && n >= 8 * k) return SelectMethod::threshold;
    return k <= n / 400 ? SelectMethod::heap : SelectMethod::radix;
}

namespace {

// The threshold pass compiled for each ISA level: its lane maxima and
// candidate masks are vector code, 2-3x faster with AVX2 or AVX-512 than with
// the baseline's SSE2.
MEPROP_ISA_KERNEL(select_threshold_any, detail::select_threshold,
                  (const T* a, std::size_t n, std::size_t k, std::int64_t* out), (a, n, k, out))

void check_topk_args(const void* a, std::size_t n, std::size_t k, const void* out) {
    if (k < 1 || k > n) detail::fail("k must be in [1, n] = [1, ", n, "], got ", k);
    if (a == nullptr || out == nullptr) detail::fail("null data pointer passed to top-k");
    if (n > std::numeric_limits<std::uint32_t>::max()) {
        detail::fail("top-k supports at most 2^32 - 1 entries per row, got ", n);
    }
}

// Rows from this long on are checked against the free memory before the
// radix and threshold passes take their scratch (a key and a candidate id per
// entry: 2x a float32 row). Reading the free memory costs microseconds, a
// scan of such a row tens of milliseconds.
constexpr std::size_t scratch_check_entries = std::size_t(1) << 24;

template <class T>
std::size_t scratch_bytes(std::size_t n) {
    return n * (sizeof(typename detail::MagnitudeKey<T>::type) + sizeof(std::uint32_t));
}

// The method to run on rows of n entries, `threads` of them at once, given
// what fits: `auto` falls back to the heap, which needs O(k) scratch; an
// explicit radix or threshold that cannot fit is refused. Called before any
// parallel region (an exception must not leave one).
template <class T>
SelectMethod method_that_fits(std::size_t n, std::size_t k, SelectMethod asked, std::size_t threads = 1) {
    const SelectMethod chosen = asked == SelectMethod::automatic ? select_method_for(n, k) : asked;
    if (chosen == SelectMethod::heap || n < scratch_check_entries || k == n) return chosen;
    const std::size_t available = available_memory_bytes();
    const std::size_t needed = scratch_bytes<T>(n) * threads;
    if (available == 0 || needed <= available) return chosen;
    if (asked == SelectMethod::automatic) return SelectMethod::heap;
    throw OutOfMemory("meprop: top-k method '" + std::string(select_method_name(chosen)) + "' needs " +
                      std::to_string(needed) + " bytes of scratch for rows of " + std::to_string(n) +
                      " entries, and " + std::to_string(available) +
                      " bytes are available; use method 'heap' (scratch of k entries) or 'auto'");
}

template <class T>
void select(const T* a, std::size_t n, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (method == SelectMethod::automatic) method = select_method_for(n, k);
    if (k == n) {  // everything is kept; no selection needed
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(i);
    } else if (method == SelectMethod::heap) {
        detail::select_heap(a, n, k, out);
    } else if (method == SelectMethod::threshold && k <= detail::threshold_lanes) {
        select_threshold_any(a, n, k, out);
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
    select(a, n, k, out, method_that_fits<T>(n, k, method));
}

template <class T>
void topk_rows(ConstMatrix<T> a, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (a.rows == 0) {  // nothing to select, but k must still fit a row
        if (k < 1 || k > a.cols) detail::fail("k must be in [1, n] = [1, ", a.cols, "], got ", k);
        return;
    }
    check_topk_args(a.data, a.cols, k, out);
    const auto rows = static_cast<std::int64_t>(a.rows);
    const int threads = detail::threads_for(a.rows * a.cols, parallel_min_entries);
    const std::size_t at_once = std::min<std::size_t>(static_cast<std::size_t>(threads), a.rows);
    method = method_that_fits<T>(a.cols, k, method, at_once);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (std::int64_t r = 0; r < rows; ++r) {
        select(a.row(static_cast<std::size_t>(r)), a.cols, k, out + r * static_cast<std::int64_t>(k), method);
    }
}

template <class T>
void topk_unified(ConstMatrix<T> a, std::size_t k, std::int64_t* out, SelectMethod method) {
    if (a.rows == 0) detail::fail("unified top-k needs at least one row");
    check_topk_args(a.data, a.cols, k, out);
    thread_local std::vector<T> sums;
    if (sums.size() < a.cols) {
        const std::size_t available = a.cols >= scratch_check_entries ? available_memory_bytes() : 0;
        if (available != 0 && a.cols * sizeof(T) > available) {
            throw OutOfMemory("meprop: unified top-k needs " + std::to_string(a.cols * sizeof(T)) +
                              " bytes for its column sums, and " + std::to_string(available) +
                              " bytes are available");
        }
        sums.resize(a.cols);
    }
    method = method_that_fits<T>(a.cols, k, method);
    T* s = sums.data();

    // Each thread owns a block of columns and sums it in row order.
    constexpr std::int64_t block = 256;
    const auto cols = static_cast<std::int64_t>(a.cols);
    const std::int64_t blocks = (cols + block - 1) / block;
    const int threads = detail::threads_for(a.rows * a.cols, parallel_min_entries);
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

#define MEPROP_INSTANTIATE_TOPK(T)                                                          \
    template void topk<T>(const T*, std::size_t, std::size_t, std::int64_t*, SelectMethod); \
    template void topk_rows<T>(ConstMatrix<T>, std::size_t, std::int64_t*, SelectMethod);   \
    template void topk_unified<T>(ConstMatrix<T>, std::size_t, std::int64_t*, SelectMethod);

MEPROP_INSTANTIATE_TOPK(float)
MEPROP_INSTANTIATE_TOPK(double)

}  // namespace meprop
