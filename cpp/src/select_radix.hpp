// Radix select on magnitude keys with an exact finish.
//
// Pass 1 turns every entry into its magnitude key and histograms the top
// digit (the exponent, for floats). The bucket holding the k-th largest key is
// the boundary: everything above it is kept, everything below it dropped.
// Pass 2 gathers, in index order, the entries at or above the boundary bucket
// (typically k plus a small bucket). Only these are refined digit by digit
// until the k-th largest key t is exact; the output is then those with a key
// above t plus the first (lowest-index) ones equal to t, which gives the
// ascending order and the tie rule for free. Two passes over n; the rest is on
// the small candidate list. O(n) time, O(n) workspace reused per thread.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "magnitude_key.hpp"
#include "select_workspace.hpp"

namespace meprop::detail {

constexpr int radix_digit_bits = 8;
constexpr std::size_t radix_buckets = std::size_t{1} << radix_digit_bits;

// The digit whose bucket holds the need-th largest key; `need` becomes the
// count still to take inside that bucket.
inline std::size_t boundary_digit(const std::uint32_t* hist, std::size_t& need,
                                  std::size_t buckets = radix_buckets) {
    std::size_t above = 0;
    std::size_t digit = buckets;
    while (digit-- > 0) {
        if (above + hist[digit] >= need) break;
        above += hist[digit];
    }
    need -= above;
    return digit;
}

template <class T>
void select_radix(const T* a, std::size_t n, std::size_t k, std::int64_t* out) {
    using MK = MagnitudeKey<T>;
    using Key = typename MK::type;

    auto& ws = SelectWorkspace<Key>::for_this_thread();
    ensure_size(ws.keys, n);
    ensure_size(ws.candidates, n);
    Key* keys = ws.keys.data();
    std::uint32_t* cand = ws.candidates.data();

    // Pass 1: keys, and four interleaved histograms so that runs of equal
    // digits (common: gradients share few exponents) do not serialise on one
    // counter.
    int shift = MK::bits - radix_digit_bits;
    for (std::size_t j = 0; j < n; ++j) keys[j] = MK::of(a[j]);  // vectorises
    std::array<std::array<std::uint32_t, radix_buckets>, 4> partial{};
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        ++partial[0][keys[i] >> shift];
        ++partial[1][keys[i + 1] >> shift];
        ++partial[2][keys[i + 2] >> shift];
        ++partial[3][keys[i + 3] >> shift];
    }
    for (; i < n; ++i) ++partial[0][keys[i] >> shift];
    std::array<std::uint32_t, radix_buckets> hist;
    for (std::size_t d = 0; d < radix_buckets; ++d) {
        hist[d] = partial[0][d] + partial[1][d] + partial[2][d] + partial[3][d];
    }
    std::size_t need = k;  // still to take among keys sharing `prefix`
    Key prefix = static_cast<Key>(boundary_digit(hist.data(), need)) << shift;

    // Pass 2: the entries at or above the boundary bucket, in index order.
    std::size_t n_cand = 0;
    // Branch-free: which entries pass is data-dependent, and a mispredicted
    // branch per passing entry costs more than a store per entry.
    for (std::size_t j = 0; j < n; ++j) {
        cand[n_cand] = static_cast<std::uint32_t>(j);
        n_cand += keys[j] >= prefix;
    }

    // Refine the boundary digit by digit among the candidates that share the
    // decided prefix; the candidates above it are already certain.
    Key decided = ~((Key{1} << shift) - 1);  // bits of the key fixed so far
    std::size_t tied = 0;                    // candidates sharing the prefix
    for (std::size_t c = 0; c < n_cand; ++c) tied += (keys[cand[c]] & decided) == prefix;
    while (shift > 0 && tied > need) {
        // Few candidates left: narrow digits, so that clearing and scanning
        // the histogram does not cost more than counting into it.
        const int wanted = tied <= 64 ? 4 : radix_digit_bits;
        const int width = shift < wanted ? shift : wanted;
        shift -= width;
        const Key digit_mask = (Key{1} << width) - 1;
        const std::size_t buckets = std::size_t{1} << width;
        std::fill(hist.begin(), hist.begin() + static_cast<std::ptrdiff_t>(buckets), 0u);
        for (std::size_t c = 0; c < n_cand; ++c) {
            const Key key = keys[cand[c]];
            if ((key & decided) == prefix) ++hist[(key >> shift) & digit_mask];
        }
        prefix |= static_cast<Key>(boundary_digit(hist.data(), need, buckets)) << shift;
        decided |= digit_mask << shift;
        tied = 0;
        for (std::size_t c = 0; c < n_cand; ++c) tied += (keys[cand[c]] & decided) == prefix;
    }

    // Exact finish. Either every key sharing the prefix is kept (tied == need)
    // or the prefix is the whole key and the lowest `need` indices among the
    // equal keys are kept.
    std::size_t taken = 0;
    for (std::size_t c = 0; c < n_cand && taken < k; ++c) {
        const std::uint32_t j = cand[c];
        const Key key = keys[j];
        const bool shares = (key & decided) == prefix;
        if (key > (prefix | ~decided) || (shares && need > 0)) {
            need -= shares;
            out[taken++] = static_cast<std::int64_t>(j);
        }
    }
}

}  // namespace meprop::detail
