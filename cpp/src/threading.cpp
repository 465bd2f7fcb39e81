#include "meprop/threading.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

#include <omp.h>

namespace meprop {
namespace {
// 0 means "not set": follow OpenMP's default.
std::atomic<int> configured_threads{0};
}  // namespace

int max_threads() {
    // Far above any useful count (one thread per core), far below where
    // libgomp fails to create threads (tens of thousands) or runs out of
    // stack for them.
    return 1024;
}

void set_num_threads(int n) {
    if (n < 1 || n > max_threads()) {
        throw std::invalid_argument("meprop: thread count must be in [1, " + std::to_string(max_threads()) +
                                    "], got " + std::to_string(n));
    }
    configured_threads.store(n);
}

int num_threads() {
    const int n = configured_threads.load();
    // OMP_NUM_THREADS may ask for more than the library accepts: cap it too.
    return n > 0 ? n : std::min(omp_get_max_threads(), max_threads());
}

}  // namespace meprop
