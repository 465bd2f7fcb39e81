// Bindings of top-k selection.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "register.hpp"

namespace meprop_bindings {

namespace {

py::array topk(py::handle a_obj, std::int64_t k_arg, const std::string& method_name) {
    const auto method = meprop::parse_select_method(method_name);
    py::array a = as_input(a_obj, "a", 1);
    const auto n = static_cast<std::size_t>(a.shape(0));
    const std::size_t k = checked_k(k_arg, n, "the length of a");
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(k));
    std::int64_t* o = out.mutable_data();
    const Precision p = precision_of(a, "a");
    py::gil_scoped_release unlocked;
    if (p == Precision::f32)
        meprop::topk(static_cast<const float*>(a.data()), n, k, o, method);
    else
        meprop::topk(static_cast<const double*>(a.data()), n, k, o, method);
    return std::move(out);
}

py::array topk_2d(py::handle a_obj, std::int64_t k_arg, const std::string& method_name, bool unified) {
    const auto method = meprop::parse_select_method(method_name);
    py::array a = as_input(a_obj, "A", 2);
    const auto rows = a.shape(0);
    const auto n = static_cast<std::size_t>(a.shape(1));
    if (unified && rows == 0) throw py::value_error("A has no rows; unified top-k needs at least one");
    const std::size_t k = checked_k(k_arg, n, "the number of columns of A");
    py::array_t<std::int64_t> out = unified ? py::array_t<std::int64_t>(static_cast<py::ssize_t>(k))
                                            : py::array_t<std::int64_t>({rows, static_cast<py::ssize_t>(k)});
    std::int64_t* o = out.mutable_data();
    const Precision p = precision_of(a, "A");
    py::gil_scoped_release unlocked;
    if (p == Precision::f32) {
        unified ? meprop::topk_unified(view<float>(a), k, o, method)
                : meprop::topk_rows(view<float>(a), k, o, method);
    } else {
        unified ? meprop::topk_unified(view<double>(a), k, o, method)
                : meprop::topk_rows(view<double>(a), k, o, method);
    }
    return std::move(out);
}

}  // namespace

void register_topk(py::module_& m) {
    m.def("topk", &topk, py::arg("a"), py::arg("k"), py::arg("method") = "auto",
          "Indices (int64, ascending) of the k largest |a[i]| of a 1-D float array.");
    m.def(
        "topk_rows",
        [](py::handle a, std::int64_t k, const std::string& method) { return topk_2d(a, k, method, false); },
        py::arg("A"), py::arg("k"), py::arg("method") = "auto",
        "Per-row top-k of a 2-D float array: (B, k) int64, each row ascending.");
    m.def(
        "topk_unified",
        [](py::handle a, std::int64_t k, const std::string& method) { return topk_2d(a, k, method, true); },
        py::arg("A"), py::arg("k"), py::arg("method") = "auto",
        "The k columns (int64, ascending) with the largest sum over rows of |A[b, j]|.");
    m.def(
        "select_method_for",
        [](std::size_t n, std::size_t k) {
            return std::string(meprop::select_method_name(meprop::select_method_for(n, k)));
        },
        py::arg("n"), py::arg("k"), "The method 'auto' picks for a row of n entries.");
}

}  // namespace meprop_bindings
