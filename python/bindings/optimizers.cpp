// Bindings of the row-sparse optimizer updates.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "register.hpp"
#include "weight_gradient.hpp"

namespace meprop_bindings {

namespace {

// A parameter (1-D or 2-D) with its gradient rows and state buffers, checked.
struct UpdateArgs {
    Precision precision;
    py::array rows;                           // int64 (m,)
    py::array grad_rows;                      // (m, cols), or none with `planned`
    const WeightGradient* planned = nullptr;  // a fused update's gradient
};

UpdateArgs parse_update(py::array& param, py::handle rows_obj, py::handle grads_obj,
                        std::vector<py::array*> state, const std::vector<const char*>& names) {
    if (param.ndim() != 1 && param.ndim() != 2) throw py::value_error("param must be 1-D or 2-D");
    UpdateArgs u;
    u.precision = precision_of(param, "param");
    std::vector<py::ssize_t> shape(param.shape(), param.shape() + param.ndim());
    check_output(param, "param", u.precision, shape);
    for (std::size_t i = 0; i < state.size(); ++i) {
        check_output(*state[i], names[i], u.precision, shape);
        if (overlaps(*state[i], param)) throw py::value_error(std::string(names[i]) + " overlaps param");
    }
    u.rows = py::array::ensure(rows_obj, py::array::c_style);
    if (!u.rows || !u.rows.dtype().equal(py::dtype::of<std::int64_t>()) || u.rows.ndim() != 1) {
        PyErr_Clear();
        throw py::type_error("rows must be a 1-D int64 array of row ids");
    }
    const auto cols = param.ndim() == 2 ? param.shape(1) : param.shape(0);
    const auto n_rows = param.ndim() == 2 ? param.shape(0) : 1;
    if (py::isinstance<WeightGradient>(grads_obj)) {
        u.planned = &grads_obj.cast<const WeightGradient&>();
        if (u.planned->precision() != u.precision)
            throw py::type_error("grad_rows must have the dtype of param");
        if (u.planned->cols() != cols) {
            throw py::value_error("grad_rows has " + std::to_string(u.planned->cols()) + " columns, param " +
                                  std::to_string(cols));
        }
        const py::array& own = u.planned->rows();
        if (own.shape(0) != u.rows.shape(0) ||
            !std::equal(static_cast<const std::int64_t*>(own.data()),
                        static_cast<const std::int64_t*>(own.data()) + own.shape(0),
                        static_cast<const std::int64_t*>(u.rows.data()))) {
            throw py::value_error("rows must be the WeightGradient's own rows");
        }
        for (std::size_t i = 0; i < state.size(); ++i) {
            if (overlaps(*state[i], u.planned->x())) {
                throw py::value_error(std::string(names[i]) + " overlaps the gradient's x");
            }
        }
        if (overlaps(param, u.planned->x())) throw py::value_error("param overlaps the gradient's x");
        return u;
    }
    u.grad_rows = as_input(grads_obj, "grad_rows", 2);
    if (precision_of(u.grad_rows, "grad_rows") != u.precision) {
        throw py::type_error("grad_rows must have the dtype of param");
    }
    if (u.grad_rows.shape(0) != u.rows.shape(0) || u.grad_rows.shape(1) != cols) {
        throw py::value_error("grad_rows must have shape (len(rows), " + std::to_string(cols) + ")");
    }
    if (u.rows.shape(0) > n_rows) throw py::value_error("more gradient rows than param has rows");
    return u;
}

template <class T>
meprop::RowGradientView row_view(const UpdateArgs& u) {
    return {static_cast<const std::int64_t*>(u.rows.data()), static_cast<std::size_t>(u.rows.shape(0))};
}

// Calls update(gradient...) with the core's gradient arguments: (rows view,
// gradient rows) for stored rows, a PlannedGradient for a fused update.
template <class T, class Update>
void with_gradient(const UpdateArgs& u, Update&& update) {
    if (u.planned != nullptr) {
        const meprop::PlannedGradient<T> g{&u.planned->plan<T>(), view<T>(u.planned->x())};
        update(g);
    } else {
        update(row_view<T>(u), static_cast<const T*>(u.grad_rows.data()));
    }
}

void sgd_update(py::array param, py::handle rows, py::handle grad_rows, double lr, double clip) {
    auto u = parse_update(param, rows, grad_rows, {}, {});
    const meprop::SgdConfig c{lr, clip};
    py::gil_scoped_release unlocked;
    auto run = [&](auto zero) {
        using T = decltype(zero);
        with_gradient<T>(u, [&](auto&&... g) { meprop::sgd_update(mutable_view<T>(param), g..., c); });
    };
    u.precision == Precision::f32 ? run(0.0f) : run(0.0);
}

void adagrad_update(py::array param, py::handle rows, py::handle grad_rows, py::array sum_sq, double lr,
                    double eps, double clip) {
    auto u = parse_update(param, rows, grad_rows, {&sum_sq}, {"sum_sq"});
    const meprop::AdagradConfig c{lr, eps, clip};
    py::gil_scoped_release unlocked;
    auto run = [&](auto zero) {
        using T = decltype(zero);
        with_gradient<T>(u, [&](auto&&... g) {
            meprop::adagrad_update(mutable_view<T>(param), g..., mutable_view<T>(sum_sq), c);
        });
    };
    u.precision == Precision::f32 ? run(0.0f) : run(0.0);
}

// A float64 array of one factor per row of param, written in place.
double* row_factors(std::optional<py::array>& a, const char* name, py::ssize_t rows) {
    if (!a) return nullptr;
    if (!a->dtype().equal(py::dtype::of<double>())) {
        throw py::type_error(std::string(name) + " must be float64 (one factor per row), got " +
                             dtype_name(*a));
    }
    check_output(*a, name, Precision::f64, {rows});
    return static_cast<double*>(a->mutable_data());
}

void adam_update(py::array param, py::handle rows, py::handle grad_rows, py::array m, py::array v,
                 std::int64_t step, double lr, double beta1, double beta2, double eps, double clip, bool lazy,
                 std::optional<py::array> decay1, std::optional<py::array> decay2) {
    auto u = parse_update(param, rows, grad_rows, {&m, &v}, {"m", "v"});
    if (overlaps(m, v)) throw py::value_error("m and v overlap");
    if (decay1.has_value() != decay2.has_value()) {
        throw py::value_error("decay1 and decay2 come together (deferred decay) or not at all");
    }
    const py::ssize_t n_rows = param.ndim() == 2 ? param.shape(0) : 1;
    const meprop::AdamRowDecay decay{row_factors(decay1, "decay1", n_rows),
                                     row_factors(decay2, "decay2", n_rows)};
    if (decay1) {
        for (const py::array* other : {&*decay2, &param, &m, &v}) {
            if (overlaps(*decay1, *other) || (other != &*decay2 && overlaps(*decay2, *other))) {
                throw py::value_error("decay1 and decay2 must not overlap each other, param, m or v");
            }
        }
    }
    const meprop::AdamConfig c{lr, beta1, beta2, eps, clip};
    py::gil_scoped_release unlocked;
    auto run = [&](auto zero) {
        using T = decltype(zero);
        with_gradient<T>(u, [&](auto&&... g) {
            meprop::adam_update(mutable_view<T>(param), g..., mutable_view<T>(m), mutable_view<T>(v), step, c,
                                lazy, decay);
        });
    };
    u.precision == Precision::f32 ? run(0.0f) : run(0.0);
}

}  // namespace

void register_optimizers(py::module_& m) {
    m.def("sgd_update", &sgd_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"), py::arg("lr"),
          py::arg("clip") = 0.0,
          "In place: param[rows] -= lr * grad_rows (gradient clipped to +-clip when clip > 0).\n"
          "grad_rows may be a WeightGradient (with rows its .rows): a fused update.");
    m.def("adagrad_update", &adagrad_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"),
          py::arg("sum_sq"), py::arg("lr"), py::arg("eps") = 1e-6, py::arg("clip") = 0.0,
          "In place AdaGrad step on the given rows; grad_rows may be a WeightGradient (fused).");
    m.def("adam_update", &adam_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"), py::arg("m"),
          py::arg("v"), py::arg("step"), py::arg("lr") = 1e-3, py::arg("beta1") = 0.9,
          py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("clip") = 0.0, py::arg("lazy") = false,
          py::arg("decay1") = py::none(), py::arg("decay2") = py::none(),
          "In place Adam step; lazy=False also moves rows without gradient (zero gradient). "
          "decay1/decay2: float64 per-row factors for deferring the moments' decay. "
          "grad_rows may be a WeightGradient (fused).");
}

}  // namespace meprop_bindings
