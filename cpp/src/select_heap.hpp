// The paper's top-k: a min-heap of the k best entries seen so far.
//
// The root is the worst kept entry. Entries arrive in index order, so a new
// entry replaces the root only when its magnitude is strictly larger: on a tie
// the kept (lower) index wins. O(n log k) time, O(k) space in the workspace.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "magnitude_key.hpp"
#include "select_workspace.hpp"

namespace meprop::detail {

// "a is worse than b": smaller magnitude, or equal magnitude and higher index.
template <class Key>
inline bool worse(Key ka, std::int64_t ia, Key kb, std::int64_t ib) {
    return ka < kb || (ka == kb && ia > ib);
}

template <class Key>
inline void sift_down(Key* keys, std::int64_t* ids, std::size_t k, std::size_t pos) {
    const Key key = keys[pos];
    const std::int64_t id = ids[pos];
    for (;;) {
        std::size_t child = 2 * pos + 1;
        if (child >= k) break;
        if (child + 1 < k && worse(keys[child + 1], ids[child + 1], keys[child], ids[child])) {
            ++child;
        }
        if (!worse(keys[child], ids[child], key, id)) break;
        keys[pos] = keys[child];
        ids[pos] = ids[child];
        pos = child;
    }
    keys[pos] = key;
    ids[pos] = id;
}

template <class T>
void select_heap(const T* a, std::size_t n, std::size_t k, std::int64_t* out) {
    using Key = typename MagnitudeKey<T>::type;
    auto& ws = SelectWorkspace<Key>::for_this_thread();
    ensure_size(ws.heap_keys, k);
    ensure_size(ws.heap_ids, k);
    Key* keys = ws.heap_keys.data();
    std::int64_t* ids = ws.heap_ids.data();

    for (std::size_t i = 0; i < k; ++i) {
        keys[i] = MagnitudeKey<T>::of(a[i]);
        ids[i] = static_cast<std::int64_t>(i);
    }
    for (std::size_t i = k / 2; i-- > 0;) sift_down(keys, ids, k, i);

    Key root = keys[0];
    for (std::size_t i = k; i < n; ++i) {
        const Key key = MagnitudeKey<T>::of(a[i]);
        if (key > root) {
            keys[0] = key;
            ids[0] = static_cast<std::int64_t>(i);
            sift_down(keys, ids, k, 0);
            root = keys[0];
        }
    }
    std::copy(ids, ids + k, out);
    std::sort(out, out + k);
}

}  // namespace meprop::detail
