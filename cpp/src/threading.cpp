#include "meprop/threading.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

#include <omp.h>

namespace meprop {
namespace {
// 0 means "not set": follow OpenMP's default.
std::atomic<int> configured_threads{0};
}  // namespace

void set_num_threads(int n) {
    if (n < 1) {
        throw std::invalid_argument("meprop: thread count must be >= 1, got " + std::to_string(n));
    }
    configured_threads.store(n);
}

int num_threads() {
    const int n = configured_threads.load();
    return n > 0 ? n : omp_get_max_threads();
}

}  // namespace meprop
