// Bindings of the per-element layers: ReLU and the softmax cross-entropy.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "arrays.hpp"
#include "register.hpp"

namespace meprop_bindings {

namespace {

// A new array like `like`, or `out` after checking it.
py::array output_like(const py::array& like, Precision p, std::optional<py::array>& out, const char* name) {
    std::vector<py::ssize_t> shape(like.shape(), like.shape() + like.ndim());
    if (out) {
        check_output(*out, name, p, shape);
        return *out;
    }
    return p == Precision::f32 ? py::array(py::array_t<float>(shape)) : py::array(py::array_t<double>(shape));
}

template <class T>
meprop::ConstMatrix<T> flat(const py::array& a) {
    return {static_cast<const T*>(a.data()), 1, static_cast<std::size_t>(a.size())};
}
template <class T>
meprop::Matrix<T> flat_mutable(py::array& a) {
    return {static_cast<T*>(a.mutable_data()), 1, static_cast<std::size_t>(a.size())};
}

// as_input for element-wise layers, which take an array of any rank.
py::array as_input_any_rank(py::handle obj, const char* name) {
    py::array a =
        py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
    if (!a) {
        PyErr_Clear();
        throw py::type_error(std::string(name) + " is not convertible to a numpy array");
    }
    return as_input(a, name, a.ndim());
}

py::array relu_forward(py::handle x_obj, std::optional<py::array> out) {
    py::array x = as_input_any_rank(x_obj, "x");
    const Precision p = precision_of(x, "x");
    py::array y = output_like(x, p, out, "out");
    py::gil_scoped_release unlocked;
    if (p == Precision::f32)
        meprop::relu_forward<float>(flat<float>(x), flat_mutable<float>(y));
    else
        meprop::relu_forward<double>(flat<double>(x), flat_mutable<double>(y));
    return y;
}

py::array relu_backward(py::handle dy_obj, py::handle y_obj, std::optional<py::array> out) {
    py::array y = as_input_any_rank(y_obj, "y");
    py::array dy = as_input(dy_obj, "dy", y.ndim());
    const Precision p = precision_of(y, "y");
    if (precision_of(dy, "dy") != p) throw py::type_error("dy and y must have the same dtype");
    for (py::ssize_t d = 0; d < y.ndim(); ++d) {
        if (dy.shape(d) != y.shape(d)) throw py::value_error("dy must have the shape of y");
    }
    py::array dx = output_like(y, p, out, "out");
    py::gil_scoped_release unlocked;
    if (p == Precision::f32)
        meprop::relu_backward<float>(flat<float>(dy), flat<float>(y), flat_mutable<float>(dx));
    else
        meprop::relu_backward<double>(flat<double>(dy), flat<double>(y), flat_mutable<double>(dx));
    return dx;
}

py::tuple softmax_cross_entropy(py::handle logits_obj, py::handle labels_obj, std::optional<double> divisor) {
    py::array logits = as_input(logits_obj, "logits", 2);
    const Precision p = precision_of(logits, "logits");
    py::array labels = py::array::ensure(labels_obj, py::array::c_style);
    if (!labels || labels.dtype().kind() != 'i' && labels.dtype().kind() != 'u') {
        PyErr_Clear();
        throw py::type_error("labels must be an integer array of class ids");
    }
    if (labels.ndim() != 1 || labels.shape(0) != logits.shape(0)) {
        throw py::value_error("expected logits (B, C) and labels (B,), got logits with " +
                              std::to_string(logits.shape(0)) + " rows and labels of " +
                              std::to_string(labels.ndim()) + "-D shape with " +
                              std::to_string(labels.ndim() ? labels.shape(0) : 0) + " entries");
    }
    if (!labels.dtype().equal(py::dtype::of<std::int64_t>())) labels = labels.attr("astype")("int64");
    py::array grad = p == Precision::f32 ? py::array(py::array_t<float>({logits.shape(0), logits.shape(1)}))
                                         : py::array(py::array_t<double>({logits.shape(0), logits.shape(1)}));
    const double d = divisor ? *divisor : static_cast<double>(logits.shape(0));
    const auto* ids = static_cast<const std::int64_t*>(labels.data());
    double loss;
    {
        py::gil_scoped_release unlocked;
        loss = p == Precision::f32 ? meprop::softmax_cross_entropy<float>(view<float>(logits), ids,
                                                                          mutable_view<float>(grad), d)
                                   : meprop::softmax_cross_entropy<double>(view<double>(logits), ids,
                                                                           mutable_view<double>(grad), d);
    }
    return py::make_tuple(loss, grad);
}

}  // namespace

void register_pointwise(py::module_& m) {
    m.def("relu_forward", &relu_forward, py::arg("x"), py::kw_only(), py::arg("out") = py::none(),
          "max(x, 0) element-wise (any shape; NaN kept), into out if given (it may be x).");
    m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"), py::kw_only(),
          py::arg("out") = py::none(),
          "dy * (y > 0) with y the forward's output, into out if given (it may be dy).");
    m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
          py::arg("divisor") = py::none(),
          "(mean cross-entropy, gradient) of logits (B, C) against integer labels (B,): the gradient is\n"
          "(softmax - onehot) / divisor (default B). A label outside [0, C) raises ValueError.");
}

}  // namespace meprop_bindings
