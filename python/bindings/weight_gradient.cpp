#include "weight_gradient.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace meprop_bindings {

template <class T>
WeightGradient::WeightGradient(meprop::WeightGradPlan<T>&& plan, py::array x)
    : precision_(std::is_same_v<T, float> ? Precision::f32 : Precision::f64), x_(std::move(x)) {
    const auto& ids = plan.rows();
    py::array_t<std::int64_t> rows(static_cast<py::ssize_t>(ids.size()));
    std::copy(ids.begin(), ids.end(), rows.mutable_data());
    // Read-only: the rows describe the plan and must keep matching it.
    rows.attr("setflags")(py::arg("write") = false);
    rows_ = std::move(rows);
    auto shared = std::make_shared<const meprop::WeightGradPlan<T>>(std::move(plan));
    if constexpr (std::is_same_v<T, float>)
        f32_ = std::move(shared);
    else
        f64_ = std::move(shared);
}

template <>
const meprop::WeightGradPlan<float>& WeightGradient::plan<float>() const {
    return *f32_;
}
template <>
const meprop::WeightGradPlan<double>& WeightGradient::plan<double>() const {
    return *f64_;
}

namespace {
template <class T>
py::array materialize_as(const WeightGradient& g) {
    py::array_t<T> out({g.rows().shape(0), g.cols()});
    auto view_out = mutable_view<T>(out);
    const auto& plan = g.plan<T>();
    const auto x = view<T>(g.x());
    py::gil_scoped_release unlocked;
    plan.compute(x, view_out);
    return out;
}
}  // namespace

py::array WeightGradient::materialize() const {
    return precision_ == Precision::f32 ? materialize_as<float>(*this) : materialize_as<double>(*this);
}

template WeightGradient::WeightGradient(meprop::WeightGradPlan<float>&&, py::array);
template WeightGradient::WeightGradient(meprop::WeightGradPlan<double>&&, py::array);

void register_weight_gradient(py::module_& m) {
    py::class_<WeightGradient>(
        m, "WeightGradient",
        "The touched rows of a meProp dW, not computed yet: the optimizers' fused\n"
        "updates compute each row while updating it. materialize() (or numpy.asarray)\n"
        "gives the rows. It holds the layer input x, which must not change before\n"
        "the update.")
        .def_property_readonly("rows", &WeightGradient::rows, "The touched rows of W, ascending (int64).")
        .def_property_readonly(
            "shape", [](const WeightGradient& g) { return py::make_tuple(g.rows().shape(0), g.cols()); },
            "(len(rows), n_in): the shape of the gradient rows.")
        .def_property_readonly(
            "dtype", [](const WeightGradient& g) { return g.x().dtype(); }, "The gradient's dtype.")
        .def("materialize", &WeightGradient::materialize,
             "The gradient rows, (len(rows), n_in), in a new array.")
        .def(
            "__array__",
            [](const WeightGradient& g, py::object dtype, py::object copy) {
                py::array rows = g.materialize();
                return dtype.is_none() ? rows : py::array(rows.attr("astype")(dtype));
            },
            py::arg("dtype") = py::none(), py::arg("copy") = py::none())
        .def("__repr__", [](const WeightGradient& g) {
            return "WeightGradient(rows=" + std::to_string(g.rows().shape(0)) +
                   ", n_in=" + std::to_string(g.cols()) + ", dtype=" + dtype_name(g.x()) + ")";
        });
}

}  // namespace meprop_bindings
