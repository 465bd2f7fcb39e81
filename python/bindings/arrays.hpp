// What every binding shares: array conversion and checks, and views of
// NumPy arrays as the core's matrices. Inputs are converted (a list becomes
// float64, a non-contiguous array is copied); outputs never are.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "meprop/meprop.hpp"

namespace meprop_bindings {

namespace py = pybind11;

enum class Precision { f32, f64 };

inline std::string dtype_name(const py::array& a) {
    return py::str(a.dtype()).cast<std::string>();
}

inline Precision precision_of(const py::array& a, const char* name) {
    // The common case first, from the descriptor's fields: comparing dtype
    // objects costs a tenth of a microsecond each, and a backward call checks
    // three arrays, at batch 10 a few percent of a meProp layer's backward.
    const py::dtype dt = a.dtype();
    const char order = dt.byteorder();
    if (order == '=' || order == '|') {
        if (dt.num() == py::dtype::num_of<float>()) return Precision::f32;
        if (dt.num() == py::dtype::num_of<double>()) return Precision::f64;
    }
    if (dt.equal(py::dtype::of<float>())) return Precision::f32;
    if (dt.equal(py::dtype::of<double>())) return Precision::f64;
    throw py::type_error(std::string(name) + " has dtype " + dtype_name(a) +
                         "; meprop kernels take float32 or float64 (convert explicitly, "
                         "e.g. a.astype(numpy.float32))");
}

// Any array-like becomes a C-contiguous float array: a list becomes float64,
// a non-contiguous or Fortran-ordered array is copied, a float32/float64
// C-contiguous array is used as is. Other dtypes are rejected, never cast.
inline py::array as_input(py::handle obj, const char* name, py::ssize_t ndim) {
    // An ndarray is taken as it is (a view of a subclass reads the same data).
    py::array a =
        py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
    if (!a) {
        PyErr_Clear();
        throw py::type_error(std::string(name) + " is not convertible to a numpy array");
    }
    precision_of(a, name);
    if (a.ndim() != ndim) {
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                              std::to_string(a.ndim()) + "-D");
    }
    if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
    return a;
}

// Output buffers are never converted: a copy would silently swallow the writes.
inline void check_output(const py::array& out, const char* name, Precision want,
                         std::vector<py::ssize_t> shape) {
    if (precision_of(out, name) != want) {
        throw py::type_error(std::string(name) + " has dtype " + dtype_name(out) + " but the inputs are " +
                             (want == Precision::f32 ? "float32" : "float64"));
    }
    if (!(out.flags() & py::array::c_style)) {
        throw py::value_error(std::string(name) + " must be C-contiguous");
    }
    if (!out.writeable()) throw py::value_error(std::string(name) + " is read-only");
    bool same = out.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t d = 0; same && d < shape.size(); ++d) same = out.shape(d) == shape[d];
    if (!same) {
        std::string expected = "(";
        for (std::size_t d = 0; d < shape.size(); ++d) {
            expected += (d ? ", " : "") + std::to_string(shape[d]);
        }
        throw py::value_error(std::string(name) + " must have shape " + expected +
                              (shape.size() == 1 ? ",)" : ")"));
    }
}

inline bool overlaps(const py::array& a, const py::array& b) {
    const auto* a0 = static_cast<const char*>(a.data());
    const auto* b0 = static_cast<const char*>(b.data());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

inline std::size_t checked_k(std::int64_t k, std::size_t n, const char* what) {
    if (k < 1 || static_cast<std::size_t>(k) > n) {
        throw py::value_error("k must be in [1, " + std::to_string(n) + "] (" + what + "), got " +
                              std::to_string(k));
    }
    return static_cast<std::size_t>(k);
}

template <class T>
meprop::ConstMatrix<T> view(const py::array& a) {
    const auto rows = a.ndim() == 2 ? static_cast<std::size_t>(a.shape(0)) : 1;
    const auto cols = static_cast<std::size_t>(a.shape(a.ndim() - 1));
    return {static_cast<const T*>(a.data()), rows, cols};
}

template <class T>
meprop::Matrix<T> mutable_view(py::array& a) {
    const auto rows = a.ndim() == 2 ? static_cast<std::size_t>(a.shape(0)) : 1;
    const auto cols = static_cast<std::size_t>(a.shape(a.ndim() - 1));
    return {static_cast<T*>(a.mutable_data()), rows, cols};
}

}  // namespace meprop_bindings
