// Top-k by a threshold that cannot cut a winner, then an exact sort of the few
// entries above it.
//
// Deal the entries round-robin into `lanes` groups (entry j to group j mod
// lanes) and take each group's largest magnitude key. If t is the k-th largest
// of these maxima, k different entries have a key >= t, so the k-th largest
// key of the whole vector is >= t too: every entry of the top k has a key
// >= t. The maxima are one vectorised sweep (the groups are the lanes of the
// sweep), and for k well below `lanes` only a handful more than k entries
// reach t, so the exact choice among them -- largest key first, lower index
// first on ties -- is a partial selection among a few dozen. About two
// sweeps over n in all,
// without the radix select's histograms; it needs k <= lanes and is meant for
// short rows with small k (see select_method_for).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "magnitude_key.hpp"
#include "select_workspace.hpp"

namespace meprop::detail {

constexpr std::size_t threshold_lanes = 64;
// Up to this many candidates the exact finish ranks them pairwise (quadratic
// but branch-free and vectorised); above it, a selection.
constexpr std::size_t rank_limit = 96;

// Needs 1 <= k <= threshold_lanes and k <= n. Inlined into per-ISA clones.
template <class T>
[[gnu::always_inline]] inline void select_threshold(const T* a, std::size_t n, std::size_t k,
                                                    std::int64_t* out) {
    using MK = MagnitudeKey<T>;
    using Key = typename MK::type;
    constexpr std::size_t lanes = threshold_lanes;

    auto& ws = SelectWorkspace<Key>::for_this_thread();
    ensure_size(ws.keys, n);
    ensure_size(ws.candidates, n);
    Key* keys = ws.keys.data();
    std::uint32_t* cand = ws.candidates.data();

    // Keys, and the maximum key of each lane (group j mod lanes).
    std::array<Key, lanes> maxima{};
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        for (std::size_t l = 0; l < lanes; ++l) {  // vectorises
            const Key key = MK::of(a[i + l]);
            keys[i + l] = key;
            maxima[l] = std::max(maxima[l], key);
        }
    }
    for (std::size_t l = 0; i < n; ++i, ++l) {
        keys[i] = MK::of(a[i]);
        maxima[l] = std::max(maxima[l], keys[i]);
    }
    // With n < lanes some lanes hold no entry; their zero maxima are still a
    // valid bound (zero is the smallest key), only a looser one.
    //
    // The threshold is the largest maximum that at least k maxima reach.
    // Counting, for each maximum, how many others reach it is 64 x 64
    // vectorised comparisons without a branch; a selection algorithm
    // (nth_element) mispredicts on every fresh row.
    std::array<std::uint32_t, lanes> reaching{};
    for (std::size_t j = 0; j < lanes; ++j) {
        const Key m = maxima[j];
        for (std::size_t l = 0; l < lanes; ++l) reaching[l] += m >= maxima[l];  // vectorises
    }
    Key threshold = 0;
    for (std::size_t l = 0; l < lanes; ++l) {
        threshold = std::max(threshold, reaching[l] >= k ? maxima[l] : Key{0});
    }

    // The candidates, in index order: a bit mask per block of 64 entries
    // (a comparison per entry, no branch), then a walk over the set bits.
    std::size_t n_cand = 0;
    for (std::size_t base = 0; base < n; base += 64) {
        const std::size_t width = std::min<std::size_t>(64, n - base);
        std::uint64_t mask = 0;
        for (std::size_t l = 0; l < width; ++l) {
            mask |= static_cast<std::uint64_t>(keys[base + l] >= threshold) << l;
        }
        while (mask != 0) {
            cand[n_cand++] = static_cast<std::uint32_t>(base + static_cast<std::size_t>(__builtin_ctzll(mask)));
            mask &= mask - 1;
        }
    }

    if (n_cand <= rank_limit) {
        // Each candidate's rank: the candidates with a larger key, and those
        // with an equal key and a lower index (earlier in the list). The k of
        // rank < k are the answer; keeping them is a branch-free compaction
        // in place (the write position never passes the read position).
        auto& ranked = ws.heap_keys;
        ensure_size(ranked, n_cand);
        Key* ck = ranked.data();
        for (std::size_t c = 0; c < n_cand; ++c) ck[c] = keys[cand[c]];
        std::size_t taken = 0;
        for (std::size_t c = 0; c < n_cand; ++c) {
            const Key key = ck[c];
            std::uint32_t rank = 0;
            for (std::size_t d = 0; d < n_cand; ++d) {  // vectorises
                rank += (ck[d] > key) | ((ck[d] == key) & (d < c));
            }
            cand[taken] = cand[c];
            taken += rank < k;
        }
        for (std::size_t c = 0; c < k; ++c) out[c] = static_cast<std::int64_t>(cand[c]);
        return;
    }

    // Many candidates (ties at the bound, or k close to the lanes): the k-th
    // largest candidate key decides; keep every candidate above it and, of
    // those equal to it, the lowest indices -- in index order.
    auto& ranked = ws.heap_keys;
    ensure_size(ranked, n_cand);
    for (std::size_t c = 0; c < n_cand; ++c) ranked[c] = keys[cand[c]];
    std::nth_element(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k - 1),
                     ranked.begin() + static_cast<std::ptrdiff_t>(n_cand), std::greater<Key>());
    const Key kth = ranked[k - 1];
    std::size_t equal_wanted = k;
    for (std::size_t c = 0; c < n_cand; ++c) equal_wanted -= keys[cand[c]] > kth;
    std::size_t taken = 0;
    for (std::size_t c = 0; c < n_cand && taken < k; ++c) {
        const Key key = keys[cand[c]];
        const bool equal = key == kth;
        if (key > kth || (equal && equal_wanted > 0)) {
            equal_wanted -= equal;
            out[taken++] = static_cast<std::int64_t>(cand[c]);
        }
    }
}

}  // namespace meprop::detail
