// How many threads a kernel starts: the one rule every parallel loop of the
// library follows. A loop runs on all the library's threads (num_threads())
// once its work pays for waking them, and on one below that; each kernel
// passes the threshold measured for its own inner loop, next to the call.
#pragma once

#include <algorithm>
#include <cstddef>

#include "meprop/threading.hpp"

namespace meprop::detail {

// `work` in the kernel's own unit (elements, multiply-adds), `min_work` where
// a second thread starts to pay.
inline int threads_for(std::size_t work, std::size_t min_work) {
    return work >= min_work ? num_threads() : 1;
}

// For work that comes in independent tasks (sequences): no more threads than tasks.
inline int threads_for_tasks(std::size_t tasks) {
    return static_cast<int>(
        std::min<std::size_t>(static_cast<std::size_t>(num_threads()), std::max<std::size_t>(tasks, 1)));
}

}  // namespace meprop::detail
