// Top-k by a bound that cannot cut a winner, then an exact choice among the
// few entries that reach it.
//
// Deal the entries round-robin into 64 lanes (entry j to lane j mod 64) and
// take each lane's largest magnitude key. If t is the k-th largest of these
// maxima, k different entries have a key >= t, so the k-th largest key of the
// whole vector is >= t too: every entry of the top k has a key >= t. The lane
// maxima are one vectorised sweep, and for k well below 64 only a handful more
// than k entries reach t, so the exact choice among them -- larger key first,
// lower index first on ties -- is small. Every step is branch-free or nearly
// so: on fresh rows a branchy selection (nth_element, a heap) pays a
// misprediction per decision, which is most of its cost at these sizes.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "magnitude_key.hpp"
#include "select_heap.hpp"
#include "select_workspace.hpp"

namespace meprop::detail {

constexpr std::size_t threshold_lanes = 64;
// Up to this many candidates the exact choice ranks them pairwise (quadratic
// but branch-free and vectorised); above it, a selection.
constexpr std::size_t rank_limit = 96;

// Writes the keys of a[0..n) and returns the bound: the largest lane maximum
// that at least k lane maxima reach. Counting, for each maximum, how many
// reach it is 64 x 64 vectorised comparisons. With n < 64 some lanes are
// empty; their zero maxima still give a valid bound, only a looser one.
template <class T, class Key>
[[gnu::always_inline]] inline Key lane_bound(const T* a, std::size_t n, std::size_t k, Key* keys) {
    using MK = MagnitudeKey<T>;
    constexpr std::size_t lanes = threshold_lanes;
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
    std::array<std::uint32_t, lanes> reaching{};
    for (std::size_t j = 0; j < lanes; ++j) {
        const Key m = maxima[j];
        for (std::size_t l = 0; l < lanes; ++l) reaching[l] += m >= maxima[l];  // vectorises
    }
    Key bound = 0;
    for (std::size_t l = 0; l < lanes; ++l) bound = std::max(bound, reaching[l] >= k ? maxima[l] : Key{0});
    return bound;
}

// The indices of the keys >= bound, in index order: a bit mask per block of 64
// entries (a comparison each, no branch), then a walk over the set bits.
template <class Key>
[[gnu::always_inline]] inline std::size_t gather_reaching(const Key* keys, std::size_t n, Key bound,
                                                          std::uint32_t* cand) {
    std::size_t n_cand = 0;
    for (std::size_t base = 0; base < n; base += 64) {
        const std::size_t width = std::min<std::size_t>(64, n - base);
        std::uint64_t mask = 0;
        for (std::size_t l = 0; l < width; ++l)
            mask |= static_cast<std::uint64_t>(keys[base + l] >= bound) << l;
        while (mask != 0) {
            cand[n_cand++] =
                static_cast<std::uint32_t>(base + static_cast<std::size_t>(__builtin_ctzll(mask)));
            mask &= mask - 1;
        }
    }
    return n_cand;
}

// Few candidates: each one's rank counts the candidates with a larger key and
// those with an equal key earlier in the list (a lower index); the k of rank
// < k are the answer. Keeping them is a branch-free compaction in place (the
// write position never passes the read position).
template <class Key>
[[gnu::always_inline]] inline void keep_by_rank(std::uint32_t* cand, std::size_t n_cand, const Key* ck,
                                                std::size_t k, std::int64_t* out) {
    std::size_t taken = 0;
    for (std::size_t c = 0; c < n_cand; ++c) {
        const Key key = ck[c];
        std::uint32_t rank = 0;
        for (std::size_t d = 0; d < n_cand; ++d)
            rank += (ck[d] > key) | ((ck[d] == key) & (d < c));  // vectorises
        cand[taken] = cand[c];
        taken += rank < k;
    }
    for (std::size_t c = 0; c < k; ++c) out[c] = static_cast<std::int64_t>(cand[c]);
}

// Many candidates (ties at the bound, or k close to the lanes), but at most
// half the row: the k-th
// largest candidate key decides; keep every candidate above it and, of those
// equal to it, the lowest indices -- in index order.
template <class Key>
inline void keep_by_selection(const std::uint32_t* cand, std::size_t n_cand, const Key* keys, Key* scratch,
                              std::size_t k, std::int64_t* out) {
    for (std::size_t c = 0; c < n_cand; ++c) scratch[c] = keys[cand[c]];
    std::nth_element(scratch, scratch + (k - 1), scratch + n_cand, std::greater<Key>());
    const Key kth = scratch[k - 1];
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

// Needs 1 <= k <= threshold_lanes and k <= n. Inlined into per-ISA clones.
template <class T>
[[gnu::always_inline]] inline void select_threshold(const T* a, std::size_t n, std::size_t k,
                                                    std::int64_t* out) {
    using Key = typename MagnitudeKey<T>::type;
    auto& ws = SelectWorkspace<Key>::for_this_thread();
    ensure_size(ws.keys, n);
    ensure_size(ws.candidates, n);
    Key* keys = ws.keys.data();
    std::uint32_t* cand = ws.candidates.data();

    const Key bound = lane_bound(a, n, k, keys);
    std::size_t reaching = 0;
    for (std::size_t j = 0; j < n; ++j) reaching += keys[j] >= bound;  // vectorises
    if (2 * reaching > n) {
        // The bound filters out little: most lanes' maxima are equal or zero
        // (a mostly zero row, say). A selection over most of the row would
        // mispredict on every entry, and radix refines the tied keys digit by
        // digit; the heap lets equal keys pass without a sift.
        select_heap(a, n, k, out);
        return;
    }
    const std::size_t n_cand = gather_reaching(keys, n, bound, cand);
    ensure_size(ws.candidate_keys, n_cand);
    Key* ck = ws.candidate_keys.data();
    if (n_cand <= rank_limit) {
        for (std::size_t c = 0; c < n_cand; ++c) ck[c] = keys[cand[c]];
        keep_by_rank(cand, n_cand, ck, k, out);
    } else {
        keep_by_selection(cand, n_cand, keys, ck, k, out);
    }
}

}  // namespace meprop::detail
