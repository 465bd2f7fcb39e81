// Radix select on magnitude keys, then one exact pass in index order.
//
// Pass 1 turns every entry into its magnitude key and histograms the top digit.
// The digit holding the k-th largest key becomes the only one still undecided;
// its entries are refined digit by digit until the k-th largest key t is known
// exactly. The final pass walks the keys in index order and keeps every key
// above t and the first (lowest-index) entries equal to t, which gives the
// ascending order and the tie rule for free. O(n) time, O(n) workspace.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "magnitude_key.hpp"
#include "select_workspace.hpp"

namespace meprop::detail {

template <class T>
void select_radix(const T* a, std::size_t n, std::size_t k, std::int64_t* out) {
    using MK = MagnitudeKey<T>;
    using Key = typename MK::type;
    constexpr int digit_bits = 8;
    constexpr std::size_t buckets = std::size_t{1} << digit_bits;

    auto& ws = SelectWorkspace<Key>::for_this_thread();
    ensure_size(ws.keys, n);
    ensure_size(ws.candidates, n);
    Key* keys = ws.keys.data();
    std::uint32_t* cand = ws.candidates.data();

    std::array<std::uint32_t, buckets> hist;
    int shift = MK::bits - digit_bits;

    // Pass 1: keys and the histogram of the top digit.
    hist.fill(0);
    for (std::size_t i = 0; i < n; ++i) {
        const Key key = MK::of(a[i]);
        keys[i] = key;
        ++hist[key >> shift];
    }

    Key prefix = 0;         // the digits of t decided so far
    std::size_t need = k;   // how many entries still to take at or below prefix
    std::size_t n_cand = 0; // undecided entries (all of them share prefix)
    bool first = true;
    for (;;) {
        // The bucket holding the need-th largest remaining key.
        std::size_t above = 0;
        std::size_t digit = buckets;
        while (digit-- > 0) {
            if (above + hist[digit] >= need) break;
            above += hist[digit];
        }
        need -= above;
        prefix |= static_cast<Key>(digit) << shift;
        const Key mask = ~((Key{1} << shift) - 1);  // the digits decided so far
        // Entries whose key starts with prefix stay candidates.
        std::size_t next = 0;
        if (first) {
            for (std::size_t i = 0; i < n; ++i) {
                cand[next] = static_cast<std::uint32_t>(i);
                next += (keys[i] & mask) == prefix;
            }
            first = false;
        } else {
            for (std::size_t c = 0; c < n_cand; ++c) {
                cand[next] = cand[c];
                next += (keys[cand[c]] & mask) == prefix;
            }
        }
        n_cand = next;
        if (shift == 0 || n_cand == need) break;

        const int width = shift < digit_bits ? shift : digit_bits;
        shift -= width;
        const Key digit_mask = (Key{1} << width) - 1;
        hist.fill(0);
        for (std::size_t c = 0; c < n_cand; ++c) ++hist[(keys[cand[c]] >> shift) & digit_mask];
    }

    // Threshold: the smallest key that is taken. When every candidate is taken
    // it is the candidates' minimum; otherwise all remaining digits are fixed.
    Key threshold = prefix;
    if (n_cand == need && shift != 0) {
        threshold = keys[cand[0]];
        for (std::size_t c = 1; c < n_cand; ++c) {
            if (keys[cand[c]] < threshold) threshold = keys[cand[c]];
        }
        need = 0;
        for (std::size_t c = 0; c < n_cand; ++c) need += keys[cand[c]] == threshold;
    }

    std::size_t taken = 0;
    for (std::size_t i = 0; i < n && taken < k; ++i) {
        const Key key = keys[i];
        if (key > threshold || (key == threshold && need > 0)) {
            need -= key == threshold;
            out[taken++] = static_cast<std::int64_t>(i);
        }
    }
}

}  // namespace meprop::detail
