#include "meprop/error_feedback.hpp"

#include <cmath>
#include <vector>

#include "check.hpp"

namespace meprop {

template <class T>
void validate_error_memory(const ErrorMemory<T>& memory, std::size_t n_out) {
    if (memory.size != n_out) {
        detail::fail("error memory must have one entry per output unit (", n_out, "), got ", memory.size);
    }
    if (n_out > 0 && memory.values == nullptr) detail::fail("error memory is a null pointer");
    if (!(memory.decay >= T(0) && memory.decay <= T(1))) {
        detail::fail("error memory decay must be in [0, 1], got ", memory.decay);
    }
}

template <class T>
void add_error_memory(ConstMatrix<T> dy, const ErrorMemory<T>& memory, Matrix<T> corrected) {
    detail::check_view(dy, "dy");
    validate_error_memory(memory, dy.cols);
    if (corrected.rows != dy.rows || corrected.cols != dy.cols) {
        detail::fail("corrected must be ", dy.rows, " x ", dy.cols, ", got ", corrected.rows, " x ",
                     corrected.cols);
    }
    if (dy.rows == 0) return;
    const T share = T(1) / static_cast<T>(dy.rows);
    for (std::size_t b = 0; b < dy.rows; ++b) {
        const T* in = dy.row(b);
        T* out = corrected.row(b);
        for (std::size_t j = 0; j < dy.cols; ++j) out[j] = in[j] + memory.values[j] * share;
    }
}

template <class T>
void update_error_memory(ConstMatrix<T> corrected, IndexSets sets, ErrorMemory<T>& memory) {
    detail::check_view(corrected, "corrected");
    validate_error_memory(memory, corrected.cols);
    validate_index_sets(sets, corrected.rows, corrected.cols);
    std::vector<T> dropped(corrected.cols, T(0));
    for (std::size_t b = 0; b < corrected.rows; ++b) {
        const T* row = corrected.row(b);
        for (std::size_t j = 0; j < corrected.cols; ++j) dropped[j] += row[j];
    }
    for (std::size_t b = 0; b < corrected.rows; ++b) {
        const T* row = corrected.row(b);
        const std::int64_t* ids = sets.set(b);
        for (std::size_t t = 0; t < sets.k; ++t) dropped[ids[t]] -= row[ids[t]];
    }
    // A kept entry is subtracted from the same sum it was added to, in row
    // order, so a unit kept in every example ends at exactly zero.
    for (std::size_t j = 0; j < corrected.cols; ++j) {
        const T value = memory.decay * dropped[j];
        // A NaN or infinite gradient must not poison every later step: the
        // entry that carried it was kept (NaN ranks first) and is propagated;
        // the memory forgets it.
        memory.values[j] = std::isfinite(value) ? value : T(0);
    }
}

template <class T>
std::vector<std::int64_t> select_with_error_memory(ConstMatrix<T> dy, BackwardMode mode, std::size_t k,
                                                   ErrorMemory<T>& memory, Matrix<T> corrected,
                                                   IndexSets& sets, SelectMethod method) {
    add_error_memory(dy, memory, corrected);
    const ConstMatrix<T> u{corrected.data, corrected.rows, corrected.cols};
    auto ids = select_index_sets(u, mode, k, sets, method);
    update_error_memory(u, sets, memory);
    return ids;
}

#define MEPROP_INSTANTIATE_ERROR_FEEDBACK(T)                                             \
    template void validate_error_memory<T>(const ErrorMemory<T>&, std::size_t);          \
    template void add_error_memory<T>(ConstMatrix<T>, const ErrorMemory<T>&, Matrix<T>); \
    template void update_error_memory<T>(ConstMatrix<T>, IndexSets, ErrorMemory<T>&);    \
    template std::vector<std::int64_t> select_with_error_memory<T>(                      \
        ConstMatrix<T>, BackwardMode, std::size_t, ErrorMemory<T>&, Matrix<T>, IndexSets&, SelectMethod);

MEPROP_INSTANTIATE_ERROR_FEEDBACK(float)
MEPROP_INSTANTIATE_ERROR_FEEDBACK(double)

}  // namespace meprop
