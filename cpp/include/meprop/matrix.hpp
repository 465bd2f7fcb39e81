// Non-owning views of row-major matrices. The library never owns caller data:
// every kernel reads and writes through these views and allocates only its own
// scratch space.
#pragma once

#include <cstddef>

namespace meprop {

template <class T>
struct ConstMatrix {
    const T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;

    const T* row(std::size_t r) const { return data + r * cols; }
};

template <class T>
struct Matrix {
    T* data = nullptr;
    std::size_t rows = 0;
    std::size_t cols = 0;

    T* row(std::size_t r) const { return data + r * cols; }
    operator ConstMatrix<T>() const { return {data, rows, cols}; }
};

}  // namespace meprop
