// Per-thread scratch space for selection, allocated on first use and reused by
// every later row and call on that thread: the hot path never allocates once
// the buffers have grown to the largest (n, k) seen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace meprop::detail {

template <class Key>
struct SelectWorkspace {
    std::vector<Key> keys;                  // radix, threshold: one key per entry
    std::vector<std::uint32_t> candidates;  // radix: entries still undecided; threshold: entries at the bound
    std::vector<Key> candidate_keys;        // threshold: the candidates' keys
    std::vector<Key> heap_keys;             // heap: k keys
    std::vector<std::int64_t> heap_ids;     // heap: k indices

    static SelectWorkspace& for_this_thread() {
        thread_local SelectWorkspace workspace;
        return workspace;
    }
};

// Grows v to at least n elements; never shrinks, so capacity is reused.
template <class V>
inline void ensure_size(V& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

}  // namespace meprop::detail
