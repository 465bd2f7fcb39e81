// Bindings of the Linear layer's kernels: the forward, and the meProp backward
// in its three forms (dense dW, touched rows only, into caller-owned buffers).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "register.hpp"
#include "weight_gradient.hpp"

namespace meprop_bindings {

namespace {

struct BackwardArgs {
    py::array dy, x, W;
    Precision precision;
    meprop::BackwardMode mode;
    meprop::BiasGradient bias;
    meprop::SelectMethod method;
    std::size_t k;                    // unused in dense mode
    std::optional<py::array> memory;  // error feedback: one entry per output unit
    double memory_decay = 1.0;
    std::optional<py::array> indices;  // given index sets instead of a selection (a private copy)
    std::optional<py::array> counts;   // meSimp's selection counts, one per output unit, added to
};

// memory= and indices= of the backward entry points, checked against the
// other arguments: the memory is written in place, so it is an output buffer.
void parse_selection_args(BackwardArgs& a, std::optional<py::array> memory, double memory_decay,
                          py::handle indices, std::optional<py::array> counts = std::nullopt) {
    const auto B = a.dy.shape(0), n_out = a.dy.shape(1);
    if (counts) {
        if (!counts->dtype().equal(py::dtype::of<std::int64_t>())) {
            throw py::type_error("counts must be an int64 array, got " + dtype_name(*counts));
        }
        if (counts->ndim() != 1 || counts->shape(0) != n_out) {
            throw py::value_error("counts must have shape (" + std::to_string(n_out) +
                                  ",), one per output unit");
        }
        if (!(counts->flags() & py::array::c_style) || !counts->writeable()) {
            throw py::value_error("counts must be C-contiguous and writeable (it is added to in place)");
        }
        a.counts = std::move(counts);
    }
    if (memory) {
        check_output(*memory, "memory", a.precision, {n_out});
        for (const py::array* in : {&a.dy, &a.x, &a.W}) {
            if (overlaps(*memory, *in)) throw py::value_error("memory must not overlap dy, x or W");
        }
        if (!(memory_decay >= 0.0 && memory_decay <= 1.0)) {
            throw py::value_error("memory_decay must be in [0, 1], got " + std::to_string(memory_decay));
        }
        a.memory = std::move(memory);
        a.memory_decay = memory_decay;
    }
    if (indices.is_none()) return;
    if (a.mode == meprop::BackwardMode::dense) {
        throw py::value_error("indices= selects entries of dy; mode 'dense' keeps them all");
    }
    py::array given = py::array::ensure(indices, py::array::c_style);
    if (!given || !given.dtype().equal(py::dtype::of<std::int64_t>())) {
        PyErr_Clear();
        throw py::type_error("indices must be an int64 array of column ids of dy");
    }
    const bool per_example = a.mode == meprop::BackwardMode::per_example;
    if (per_example ? given.ndim() != 2 || given.shape(0) != B : given.ndim() != 1) {
        throw py::value_error(per_example ? "indices must have shape (B, k) for mode 'per_example'"
                                          : "indices must have shape (k,) for mode 'unified'");
    }
    const auto k = given.shape(given.ndim() - 1);
    a.k = checked_k(k, static_cast<std::size_t>(n_out), "the number of columns of dy");
    // A private copy: the kernels read the ids while the GIL is released.
    py::array_t<std::int64_t> own(given.request().shape);
    std::memcpy(own.mutable_data(), given.data(), static_cast<std::size_t>(given.nbytes()));
    meprop::validate_index_sets({own.data(), per_example ? static_cast<std::size_t>(B) : 1, a.k},
                                static_cast<std::size_t>(B), static_cast<std::size_t>(n_out));
    a.indices = std::move(own);
}

// The entries of dy that the backward keeps, and the gradient it propagates:
// dy itself, or dy plus the error memory (then the memory is updated).
template <class T>
struct Selection {
    std::vector<std::int64_t> ids;  // what `sets` points into
    meprop::IndexSets sets;
    std::vector<T> corrected;     // B x n_out when error feedback is on
    meprop::ConstMatrix<T> grad;  // the gradient the kernels propagate
};

// Runs with the GIL released.
template <class T>
void select_entries(const BackwardArgs& a, Selection<T>& s) {
    const auto dy = view<T>(a.dy);
    s.grad = dy;
    std::optional<meprop::ErrorMemory<T>> memory;
    if (a.memory) {
        memory.emplace(meprop::ErrorMemory<T>{static_cast<T*>(const_cast<void*>(a.memory->data())), dy.cols,
                                              static_cast<T>(a.memory_decay)});
        s.corrected.resize(dy.rows * dy.cols);
        const meprop::Matrix<T> u{s.corrected.data(), dy.rows, dy.cols};
        s.grad = u;
        if (!a.indices) {
            s.ids = meprop::select_with_error_memory(dy, a.mode, a.k, *memory, u, s.sets, a.method);
            return;
        }
        meprop::add_error_memory(dy, *memory, u);
    }
    if (a.indices) {
        const auto* ids = static_cast<const std::int64_t*>(a.indices->data());
        s.ids.assign(ids, ids + a.indices->size());
        s.sets = {s.ids.data(), a.mode == meprop::BackwardMode::per_example ? dy.rows : 1, a.k};
        if (memory) meprop::update_error_memory(s.grad, s.sets, *memory);
        return;
    }
    s.ids = meprop::select_index_sets(dy, a.mode, a.k, s.sets, a.method);
}

BackwardArgs parse_backward_args(py::handle dy_obj, py::handle x_obj, py::handle W_obj,
                                 std::optional<std::int64_t> k, const std::string& mode,
                                 const std::string& bias, const std::string& method,
                                 bool indices_given = false) {
    BackwardArgs a;
    a.mode = meprop::parse_backward_mode(mode);
    a.bias = meprop::parse_bias_gradient(bias);
    a.method = meprop::parse_select_method(method);
    a.dy = as_input(dy_obj, "dy", 2);
    a.x = as_input(x_obj, "x", 2);
    a.W = as_input(W_obj, "W", 2);
    a.precision = precision_of(a.dy, "dy");
    if (precision_of(a.x, "x") != a.precision || precision_of(a.W, "W") != a.precision) {
        throw py::type_error("dy, x and W must share one dtype, got " + dtype_name(a.dy) + ", " +
                             dtype_name(a.x) + " and " + dtype_name(a.W));
    }
    const auto B = a.dy.shape(0), n_out = a.dy.shape(1);
    if (a.x.shape(0) != B) {
        throw py::value_error("x has " + std::to_string(a.x.shape(0)) + " rows but dy has " +
                              std::to_string(B));
    }
    if (a.W.shape(0) != n_out || a.W.shape(1) != a.x.shape(1)) {
        throw py::value_error("W must have shape (n_out, n_in) = (" + std::to_string(n_out) + ", " +
                              std::to_string(a.x.shape(1)) + "), got (" + std::to_string(a.W.shape(0)) +
                              ", " + std::to_string(a.W.shape(1)) + ")");
    }
    if (B == 0) throw py::value_error("dy has no rows (empty batch)");
    if (a.mode == meprop::BackwardMode::dense) {
        a.k = static_cast<std::size_t>(n_out);
    } else if (indices_given) {
        if (k) throw py::value_error("give k or indices, not both (indices fix k)");
    } else {
        if (!k) throw py::value_error("k is required for mode '" + mode + "'");
        a.k = checked_k(*k, static_cast<std::size_t>(n_out), "the number of columns of dy");
    }
    return a;
}

template <class T>
py::tuple backward_dense_dw(BackwardArgs& a, std::optional<py::array> dx_out, std::optional<py::array> dW_out,
                            std::optional<py::array> db_out, bool accumulate) {
    const auto B = a.dy.shape(0), n_out = a.dy.shape(1), n_in = a.x.shape(1);
    if (accumulate && (!dW_out || !db_out)) {
        throw py::value_error("accumulate=True needs dW_out and db_out to add into");
    }
    py::array dx = dx_out ? *dx_out : py::array(py::array_t<T>({B, n_in}));
    py::array dW = dW_out ? *dW_out : py::array(py::array_t<T>({n_out, n_in}));
    py::array db = db_out ? *db_out : py::array(py::array_t<T>(n_out));
    check_output(dx, "dx_out", a.precision, {B, n_in});
    check_output(dW, "dW_out", a.precision, {n_out, n_in});
    check_output(db, "db_out", a.precision, {n_out});
    for (const py::array* in : {&a.dy, &a.x, &a.W}) {
        if (overlaps(dx, *in) || overlaps(dW, *in) || overlaps(db, *in)) {
            throw py::value_error("output buffers must not overlap dy, x or W");
        }
    }
    if (overlaps(dx, dW) || overlaps(dx, db) || overlaps(dW, db)) {
        throw py::value_error("dx_out, dW_out and db_out must not overlap each other");
    }
    auto dxv = mutable_view<T>(dx);
    auto dWv = mutable_view<T>(dW);
    T* dbp = static_cast<T*>(db.mutable_data());
    {
        py::gil_scoped_release unlocked;
        meprop::IndexSets sets;
        const auto ids = meprop::select_index_sets(view<T>(a.dy), a.mode, a.k, sets, a.method);
        meprop::sparse_input_grad(view<T>(a.dy), view<T>(a.W), sets, dxv);
        if (!accumulate) std::fill(dWv.data, dWv.data + dWv.rows * dWv.cols, T(0));
        meprop::sparse_weight_grad_accumulate(view<T>(a.dy), view<T>(a.x), sets, dWv);
        meprop::bias_grad(view<T>(a.dy), &sets, a.bias, dbp, accumulate);
    }
    return py::make_tuple(dx, dW, db);
}

template <class T>
py::tuple backward_compact(BackwardArgs& a, bool input_grad, bool defer_weight_grad) {
    const auto B = a.dy.shape(0), n_in = a.x.shape(1), n_out = a.dy.shape(1);
    // A first layer needs no dx: skip its cost entirely.
    py::array_t<T> dx(std::vector<py::ssize_t>{input_grad ? B : 0, n_in});
    py::array_t<T> db(n_out);
    auto dxv = mutable_view<T>(dx);
    T* dbp = db.mutable_data();
    Selection<T> sel;
    std::optional<meprop::WeightGradPlan<T>> plan;
    {
        py::gil_scoped_release unlocked;
        select_entries(a, sel);
        if (a.counts) {
            meprop::count_selected(sel.sets, static_cast<std::size_t>(B), static_cast<std::size_t>(n_out),
                                   static_cast<std::int64_t*>(a.counts->mutable_data()));
        }
        if (input_grad) meprop::sparse_input_grad(sel.grad, view<T>(a.W), sel.sets, dxv);
        plan.emplace(sel.grad, sel.sets);
        // The dense bias gradient is the true one, memory or not.
        meprop::bias_grad(a.bias == meprop::BiasGradient::dense ? view<T>(a.dy) : sel.grad, &sel.sets, a.bias,
                          dbp, false);
    }
    py::object dx_or_none = input_grad ? py::object(dx) : py::object(py::none());
    if (defer_weight_grad) {
        WeightGradient deferred(std::move(*plan), a.x);
        py::array rows = deferred.rows();
        return py::make_tuple(dx_or_none, rows, py::cast(std::move(deferred)), db);
    }
    // The number of touched rows is known only now; numpy owns the buffer.
    const auto m = static_cast<py::ssize_t>(plan->rows().size());
    py::array_t<T> dW_rows({m, n_in});
    py::array_t<std::int64_t> rows(m);
    std::copy(plan->rows().begin(), plan->rows().end(), rows.mutable_data());
    auto out = mutable_view<T>(dW_rows);
    {
        py::gil_scoped_release unlocked;
        plan->compute(view<T>(a.x), out);
    }
    return py::make_tuple(dx_or_none, rows, dW_rows, db);
}

template <class T>
void forward_into(const py::array& x, const py::array& W, const std::optional<py::array>& b, py::array& y) {
    const T* bias = b ? static_cast<const T*>(b->data()) : nullptr;
    py::gil_scoped_release release;
    meprop::linear_forward<T>(view<T>(x), view<T>(W), bias, mutable_view<T>(y));
}

py::array linear_forward(py::handle x_obj, py::handle W_obj, py::handle b_obj, std::optional<py::array> out) {
    py::array x = as_input(x_obj, "x", 2);
    py::array W = as_input(W_obj, "W", 2);
    const Precision p = precision_of(x, "x");
    if (precision_of(W, "W") != p) throw py::type_error("x and W must have the same dtype");
    if (x.shape(1) != W.shape(1)) {
        throw py::value_error("x has " + std::to_string(x.shape(1)) + " columns but W has " +
                              std::to_string(W.shape(1)) + " (W must be (n_out, n_in))");
    }
    std::optional<py::array> b;
    if (!b_obj.is_none()) {
        b = as_input(b_obj, "b", 1);
        if (precision_of(*b, "b") != p) throw py::type_error("b must have the dtype of x");
        if (b->shape(0) != W.shape(0)) {
            throw py::value_error("b must have " + std::to_string(W.shape(0)) + " entries, got " +
                                  std::to_string(b->shape(0)));
        }
    }
    py::array y;
    if (out) {
        check_output(*out, "out", p, {x.shape(0), W.shape(0)});
        if (overlaps(*out, x) || overlaps(*out, W) || (b && overlaps(*out, *b))) {
            throw py::value_error("out must not overlap the inputs");
        }
        y = *out;
    } else {
        y = p == Precision::f32 ? py::array(py::array_t<float>({x.shape(0), W.shape(0)}))
                                : py::array(py::array_t<double>({x.shape(0), W.shape(0)}));
    }
    if (p == Precision::f32)
        forward_into<float>(x, W, b, y);
    else
        forward_into<double>(x, W, b, y);
    return y;
}

// ---- backward into caller-owned buffers ------------------------------------
// For callers that own every output (the PyTorch autograd function writes
// through NumPy views of its own tensors). Each output is optional: a missing
// one is not computed at all, so a first layer pays nothing for dx and a
// frozen weight nothing for dW. Every given output is overwritten; dW is zero
// in the rows no kept entry touches.

template <class T>
void backward_into(BackwardArgs& a, std::optional<py::array>& dx, std::optional<py::array>& dW,
                   std::optional<py::array>& db) {
    const auto B = a.dy.shape(0), n_out = a.dy.shape(1), n_in = a.x.shape(1);
    std::vector<const py::array*> outs;
    if (dx) {
        check_output(*dx, "dx_out", a.precision, {B, n_in});
        outs.push_back(&*dx);
    }
    if (dW) {
        check_output(*dW, "dW_out", a.precision, {n_out, n_in});
        outs.push_back(&*dW);
    }
    if (db) {
        check_output(*db, "db_out", a.precision, {n_out});
        outs.push_back(&*db);
    }
    for (std::size_t i = 0; i < outs.size(); ++i) {
        for (const py::array* in : {&a.dy, &a.x, &a.W}) {
            if (overlaps(*outs[i], *in)) {
                throw py::value_error("output buffers must not overlap dy, x or W");
            }
        }
        for (std::size_t j = i + 1; j < outs.size(); ++j) {
            if (overlaps(*outs[i], *outs[j])) {
                throw py::value_error("output buffers must not overlap each other");
            }
        }
    }
    if (outs.empty() && !a.memory) return;
    py::gil_scoped_release unlocked;
    Selection<T> sel;
    select_entries(a, sel);
    if (dx) meprop::sparse_input_grad(sel.grad, view<T>(a.W), sel.sets, mutable_view<T>(*dx));
    if (dW) {
        auto dWv = mutable_view<T>(*dW);
        std::fill(dWv.data, dWv.data + dWv.rows * dWv.cols, T(0));
        meprop::sparse_weight_grad_accumulate(sel.grad, view<T>(a.x), sel.sets, dWv);
    }
    if (db) {
        meprop::bias_grad(a.bias == meprop::BiasGradient::dense ? view<T>(a.dy) : sel.grad, &sel.sets, a.bias,
                          static_cast<T*>(db->mutable_data()), false);
    }
}

}  // namespace

void register_linear(py::module_& m) {
    m.def(
        "linear_backward",
        [](py::handle dy, py::handle x, py::handle W, std::optional<std::int64_t> k, const std::string& mode,
           const std::string& bias_grad, const std::string& method, std::optional<py::array> dx_out,
           std::optional<py::array> dW_out, std::optional<py::array> db_out, bool accumulate) {
            auto a = parse_backward_args(dy, x, W, k, mode, bias_grad, method);
            return a.precision == Precision::f32
                       ? backward_dense_dw<float>(a, dx_out, dW_out, db_out, accumulate)
                       : backward_dense_dw<double>(a, dx_out, dW_out, db_out, accumulate);
        },
        py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("k") = py::none(), py::arg("mode") = "per_example",
        py::kw_only(), py::arg("bias_grad") = "dense", py::arg("method") = "auto",
        py::arg("dx_out") = py::none(), py::arg("dW_out") = py::none(), py::arg("db_out") = py::none(),
        py::arg("accumulate") = false,
        "meProp backward of y = x W^T + b; returns (dx, dW, db) with dW dense.\n\n"
        "dy (B, n_out), x (B, n_in), W (n_out, n_in): all float32 or all float64.\n"
        "Returns dx (B, n_in), dW (n_out, n_in) (zero in rows no kept entry touches)\n"
        "and db (n_out,), in that dtype. dx_out/dW_out/db_out receive the results;\n"
        "accumulate=True adds into dW_out (its touched rows only) and db_out.");
    m.def(
        "linear_backward_compact",
        [](py::handle dy, py::handle x, py::handle W, std::optional<std::int64_t> k, const std::string& mode,
           bool input_grad, bool defer_weight_grad, const std::string& bias_grad, const std::string& method,
           std::optional<py::array> memory, double memory_decay, py::handle indices,
           std::optional<py::array> counts) {
            auto a = parse_backward_args(dy, x, W, k, mode, bias_grad, method, !indices.is_none());
            parse_selection_args(a, std::move(memory), memory_decay, indices, std::move(counts));
            return a.precision == Precision::f32 ? backward_compact<float>(a, input_grad, defer_weight_grad)
                                                 : backward_compact<double>(a, input_grad, defer_weight_grad);
        },
        // input_grad may come by position: keyword arguments cost about half a
        // microsecond a call, a tenth of a meProp layer's backward at batch 10.
        py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("k") = py::none(), py::arg("mode") = "per_example",
        py::arg("input_grad") = true, py::arg("defer_weight_grad") = false, py::kw_only(),
        py::arg("bias_grad") = "dense", py::arg("method") = "auto", py::arg("memory") = py::none(),
        py::arg("memory_decay") = 1.0, py::arg("indices") = py::none(), py::arg("counts") = py::none(),
        "meProp backward returning only the touched rows of dW: (dx, rows, dW_rows, db).\n\n"
        "dy (B, n_out), x (B, n_in), W (n_out, n_in): all float32 or all float64.\n"
        "Returns dx (B, n_in) or None (input_grad=False), rows (m,) int64 ascending,\n"
        "dW_rows (m, n_in) with dW[rows] = dW_rows, and db (n_out,).\n"
        "memory (n_out,): error feedback, updated in place (memory_decay in [0, 1]);\n"
        "indices: the kept entries, (B, k) per example or (k,) unified, instead of top-k.\n"
        "counts (n_out,) int64: adds to counts[j] the examples that kept column j (meSimp).\n"
        "defer_weight_grad=True returns a WeightGradient in place of dW_rows: the optimizers'\n"
        "fused updates compute each row while updating it (x must not change until then).");
    m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("W"), py::arg("b") = py::none(),
          py::kw_only(), py::arg("out") = py::none(),
          "y = x W^T + b for x (B, n_in), W (n_out, n_in), b (n_out,) or None: (B, n_out), "
          "on the library's threads (how it compares with BLAS: docs/benchmarks.md).");
    m.def("linear_forward_uses_avx512", &meprop::linear_forward_uses_avx512,
          "Whether linear_forward runs its AVX-512 register tile on this machine.");
    m.def(
        "linear_backward_into",
        [](py::handle dy, py::handle x, py::handle W, std::optional<std::int64_t> k, const std::string& mode,
           const std::string& bias_grad, const std::string& method, std::optional<py::array> dx_out,
           std::optional<py::array> dW_out, std::optional<py::array> db_out, std::optional<py::array> memory,
           double memory_decay, py::handle indices) {
            auto a = parse_backward_args(dy, x, W, k, mode, bias_grad, method, !indices.is_none());
            parse_selection_args(a, std::move(memory), memory_decay, indices);
            for (const auto* out : {&dx_out, &dW_out, &db_out}) {
                if (*out && a.memory && overlaps(**out, *a.memory)) {
                    throw py::value_error("output buffers must not overlap memory");
                }
            }
            if (a.precision == Precision::f32)
                backward_into<float>(a, dx_out, dW_out, db_out);
            else
                backward_into<double>(a, dx_out, dW_out, db_out);
        },
        py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("k") = py::none(), py::arg("mode") = "per_example",
        py::kw_only(), py::arg("bias_grad") = "dense", py::arg("method") = "auto",
        py::arg("dx_out") = py::none(), py::arg("dW_out") = py::none(), py::arg("db_out") = py::none(),
        py::arg("memory") = py::none(), py::arg("memory_decay") = 1.0, py::arg("indices") = py::none(),
        "meProp backward written into the given buffers (each optional: a missing one is "
        "skipped); dW_out gets zeros in untouched rows.");
}

}  // namespace meprop_bindings
