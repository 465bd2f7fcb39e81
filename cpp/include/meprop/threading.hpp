// The thread count used by every parallel kernel of the library.
//
// Kernels run on OpenMP with at most `num_threads()` threads. Results never
// depend on the thread count: work is split so that each output element is
// computed by exactly one thread in a fixed order.
#pragma once

namespace meprop {

// The largest thread count set_num_threads accepts (1024).
int max_threads();

// Sets the number of threads the kernels may use, in [1, max_threads()];
// throws std::invalid_argument otherwise. Process-wide. The count is an atomic that
// each parallel loop reads once before it starts, so calling this while
// kernels run on other threads is safe: a call in progress may run some loops
// with the old count and later ones with the new, with the same results.
void set_num_threads(int n);

// The current thread count: the last value given to set_num_threads, or by
// default OpenMP's omp_get_max_threads() (OMP_NUM_THREADS or the core count).
int num_threads();

}  // namespace meprop
