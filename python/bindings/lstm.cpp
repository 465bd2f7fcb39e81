// Bindings of the LSTM recurrence and its meProp backward through time.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "register.hpp"

namespace meprop_bindings {

namespace {

py::array offsets_of(py::handle obj, py::ssize_t rows) {
    py::array o = py::array::ensure(obj, py::array::c_style);
    if (!o || !o.dtype().equal(py::dtype::of<std::int64_t>()) || o.ndim() != 1 || o.shape(0) < 2) {
        PyErr_Clear();
        throw py::type_error("offsets must be a 1-D int64 array of at least 2 sequence boundaries");
    }
    // A private copy: the kernels read the boundaries again while the GIL is
    // released, so another thread must not be able to change them after the check.
    py::array_t<std::int64_t> own(o.shape(0));
    std::memcpy(own.mutable_data(), o.data(), static_cast<std::size_t>(o.shape(0)) * sizeof(std::int64_t));
    meprop::validate_sequences({own.data(), static_cast<std::size_t>(own.shape(0) - 1)},
                               static_cast<std::size_t>(rows));
    return std::move(own);
}

meprop::Sequences sequences(const py::array& o) {
    return {static_cast<const std::int64_t*>(o.data()), static_cast<std::size_t>(o.shape(0) - 1)};
}

void same_dtype(Precision p, std::initializer_list<std::pair<const py::array*, const char*>> arrays) {
    for (const auto& [a, name] : arrays) {
        if (precision_of(*a, name) != p) {
            throw py::type_error(std::string(name) + " has dtype " + dtype_name(*a) +
                                 " but W_hh has another; all arrays must share one dtype");
        }
    }
}

void shape_is(const py::array& a, const char* name, py::ssize_t rows, py::ssize_t cols) {
    if (a.shape(0) != rows || a.shape(1) != cols) {
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                              std::to_string(cols) + "), got (" + std::to_string(a.shape(0)) + ", " +
                              std::to_string(a.shape(1)) + ")");
    }
}

py::ssize_t hidden_of(const py::array& W_hh) {
    const auto h = W_hh.shape(1);
    if (h < 1 || W_hh.shape(0) != 4 * h) {
        throw py::value_error("W_hh must have shape (4h, h) with h >= 1, got (" +
                              std::to_string(W_hh.shape(0)) + ", " + std::to_string(h) + ")");
    }
    return h;
}

template <class T>
py::tuple forward(const py::array& in, const py::array& W_hh, const py::array& offsets) {
    const auto N = in.shape(0), G = W_hh.shape(0), h = W_hh.shape(1);
    py::array_t<T> gates({N, G}), cells({N, h}), tanhs({N, h}), hidden({N, h});
    const meprop::LstmCache<T> cache{mutable_view<T>(gates), mutable_view<T>(cells), mutable_view<T>(tanhs),
                                     mutable_view<T>(hidden)};
    {
        py::gil_scoped_release unlocked;
        meprop::lstm_forward(view<T>(in), view<T>(W_hh), sequences(offsets), cache);
    }
    return py::make_tuple(gates, cells, tanhs, hidden);
}

py::tuple forward_any(py::handle in_obj, py::handle W_hh_obj, py::handle offsets_obj) {
    py::array W_hh = as_input(W_hh_obj, "W_hh", 2);
    py::array in = as_input(in_obj, "input_gates", 2);
    const auto h = hidden_of(W_hh);
    shape_is(in, "input_gates", in.shape(0), 4 * h);
    const Precision p = precision_of(W_hh, "W_hh");
    same_dtype(p, {{&in, "input_gates"}});
    py::array offsets = offsets_of(offsets_obj, in.shape(0));
    return p == Precision::f32 ? forward<float>(in, W_hh, offsets) : forward<double>(in, W_hh, offsets);
}

struct BackwardInputs {
    py::array x, W_ih, W_hh, offsets, gates, cells, tanhs, hidden, dhidden;
    Precision precision;
    std::size_t k;
    meprop::SelectMethod method;
    meprop::GateSelection selection;
    double memory_decay = 0.0;
};

template <class T>
py::tuple backward(const BackwardInputs& a, bool input_grad) {
    const auto N = a.x.shape(0), n_in = a.x.shape(1), G = a.W_hh.shape(0), h = a.W_hh.shape(1);
    const bool dense = a.k == static_cast<std::size_t>(G);
    py::array_t<T> dx(std::vector<py::ssize_t>{input_grad ? N : 0, n_in});
    py::array_t<T> db(G);
    py::array_t<std::int64_t> kept(
        std::vector<py::ssize_t>{dense ? 0 : N, dense ? 0 : static_cast<py::ssize_t>(a.k)});
    std::vector<T> dz(static_cast<std::size_t>(N * G)), h_prev(static_cast<std::size_t>(N * h));
    std::vector<std::int64_t> all_rows(static_cast<std::size_t>(G));
    std::optional<meprop::WeightGradPlan<T>> plan;
    double gate_seconds = 0.0;
    const auto dzv =
        meprop::ConstMatrix<T>{dz.data(), static_cast<std::size_t>(N), static_cast<std::size_t>(G)};
    {
        py::gil_scoped_release unlocked;
        const auto seqs = sequences(a.offsets);
        gate_seconds = meprop::lstm_backward_through_time(
            view<T>(a.W_hh), seqs, view<T>(a.gates), view<T>(a.cells), view<T>(a.tanhs), view<T>(a.dhidden),
            a.k, meprop::Matrix<T>{dz.data(), dzv.rows, dzv.cols}, kept.mutable_data(), a.method, a.selection,
            static_cast<T>(a.memory_decay));
        std::iota(all_rows.begin(), all_rows.end(), std::int64_t{0});
        const meprop::IndexSets sets = dense ? meprop::IndexSets{all_rows.data(), 1, dzv.cols}
                                             : meprop::IndexSets{kept.data(), dzv.rows, a.k};
        if (input_grad) meprop::sparse_input_grad(dzv, view<T>(a.W_ih), sets, mutable_view<T>(dx));
        meprop::lstm_previous_hidden(view<T>(a.hidden), seqs,
                                     meprop::Matrix<T>{h_prev.data(), dzv.rows, static_cast<std::size_t>(h)});
        plan.emplace(dzv, sets);
        meprop::bias_grad(dzv, nullptr, meprop::BiasGradient::dense, db.mutable_data(), false);
    }
    const auto m = static_cast<py::ssize_t>(plan->rows().size());
    py::array_t<std::int64_t> rows(m);
    std::copy(plan->rows().begin(), plan->rows().end(), rows.mutable_data());
    py::array_t<T> dW_ih({m, n_in}), dW_hh({m, h});
    {
        py::gil_scoped_release unlocked;
        plan->compute(view<T>(a.x), mutable_view<T>(dW_ih));
        plan->compute(meprop::ConstMatrix<T>{h_prev.data(), dzv.rows, static_cast<std::size_t>(h)},
                      mutable_view<T>(dW_hh));
    }
    return py::make_tuple(input_grad ? py::object(dx) : py::object(py::none()), rows, dW_ih, dW_hh, db, kept,
                          gate_seconds);
}

py::tuple backward_any(py::handle x, py::handle W_ih, py::handle W_hh, py::handle offsets, py::handle gates,
                       py::handle cells, py::handle cell_tanh, py::handle hidden, py::handle dhidden,
                       std::optional<std::int64_t> k, const std::string& method, bool input_grad,
                       bool per_gate, double memory_decay) {
    BackwardInputs a;
    if (!(memory_decay >= 0.0 && memory_decay <= 1.0)) {
        throw py::value_error("memory_decay must be in [0, 1], got " + std::to_string(memory_decay));
    }
    a.memory_decay = memory_decay;
    a.selection = per_gate ? meprop::GateSelection::per_gate : meprop::GateSelection::together;
    a.method = meprop::parse_select_method(method);
    a.W_hh = as_input(W_hh, "W_hh", 2);
    a.x = as_input(x, "x", 2);
    a.W_ih = as_input(W_ih, "W_ih", 2);
    a.gates = as_input(gates, "gates", 2);
    a.cells = as_input(cells, "cells", 2);
    a.tanhs = as_input(cell_tanh, "cell_tanh", 2);
    a.hidden = as_input(hidden, "hidden", 2);
    a.dhidden = as_input(dhidden, "dhidden", 2);
    a.precision = precision_of(a.W_hh, "W_hh");
    same_dtype(a.precision, {{&a.x, "x"},
                             {&a.W_ih, "W_ih"},
                             {&a.gates, "gates"},
                             {&a.cells, "cells"},
                             {&a.tanhs, "cell_tanh"},
                             {&a.hidden, "hidden"},
                             {&a.dhidden, "dhidden"}});
    const auto h = hidden_of(a.W_hh), N = a.x.shape(0);
    if (N == 0) throw py::value_error("x has no rows (no time steps)");
    shape_is(a.W_ih, "W_ih", 4 * h, a.x.shape(1));
    shape_is(a.gates, "gates", N, 4 * h);
    shape_is(a.cells, "cells", N, h);
    shape_is(a.tanhs, "cell_tanh", N, h);
    shape_is(a.hidden, "hidden", N, h);
    shape_is(a.dhidden, "dhidden", N, h);
    a.offsets = offsets_of(offsets, N);
    a.k = k ? checked_k(*k, static_cast<std::size_t>(4 * h), "4 x the hidden size")
            : static_cast<std::size_t>(4 * h);
    if (per_gate && a.k % 4 != 0) {
        throw py::value_error("with per_gate=True, k (entries kept per step) must be a multiple of 4, got " +
                              std::to_string(a.k));
    }
    return a.precision == Precision::f32 ? backward<float>(a, input_grad) : backward<double>(a, input_grad);
}

}  // namespace

void register_lstm(py::module_& m) {
    m.def("lstm_forward", &forward_any, py::arg("input_gates"), py::arg("W_hh"), py::arg("offsets"),
          "LSTM recurrence over packed sequences: (gates, cells, cell_tanh, hidden).");
    m.def("lstm_backward", &backward_any, py::arg("x"), py::arg("W_ih"), py::arg("W_hh"), py::arg("offsets"),
          py::arg("gates"), py::arg("cells"), py::arg("cell_tanh"), py::arg("hidden"), py::arg("dhidden"),
          py::arg("k") = py::none(), py::kw_only(), py::arg("method") = "auto", py::arg("input_grad") = true,
          py::arg("per_gate") = false, py::arg("memory_decay") = 0.0,
          "meProp backward through time: (dx, rows, dW_ih_rows, dW_hh_rows, db, kept, gate_seconds).\n\n"
          "k entries of each step's gate gradient are kept: the k largest of all 4h, or with\n"
          "per_gate=True the k/4 largest of each gate's h (k a multiple of 4).\n"
          "memory_decay > 0: error feedback through time within each sequence.");
}

}  // namespace meprop_bindings
