// The only source that knows Python: converts and checks arrays, releases the
// GIL, and calls the C++ core. C++ std::invalid_argument surfaces as ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "meprop/meprop.hpp"

namespace py = pybind11;

namespace {

enum class Precision { f32, f64 };

std::string dtype_name(const py::array& a) {
    return py::str(a.dtype()).cast<std::string>();
}

Precision precision_of(const py::array& a, const char* name) {
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
py::array as_input(py::handle obj, const char* name, py::ssize_t ndim) {
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
void check_output(const py::array& out, const char* name, Precision want, std::vector<py::ssize_t> shape) {
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

bool overlaps(const py::array& a, const py::array& b) {
    const auto* a0 = static_cast<const char*>(a.data());
    const auto* b0 = static_cast<const char*>(b.data());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

std::size_t checked_k(std::int64_t k, std::size_t n, const char* what) {
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

// ---- top-k ----------------------------------------------------------------

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

// ---- linear backward -------------------------------------------------------

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
};

// memory= and indices= of the backward entry points, checked against the
// other arguments: the memory is written in place, so it is an output buffer.
void parse_selection_args(BackwardArgs& a, std::optional<py::array> memory, double memory_decay,
                          py::handle indices) {
    const auto B = a.dy.shape(0), n_out = a.dy.shape(1);
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
py::tuple backward_compact(BackwardArgs& a, bool input_grad) {
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
        if (input_grad) meprop::sparse_input_grad(sel.grad, view<T>(a.W), sel.sets, dxv);
        plan.emplace(sel.grad, sel.sets);
        // The dense bias gradient is the true one, memory or not.
        meprop::bias_grad(a.bias == meprop::BiasGradient::dense ? view<T>(a.dy) : sel.grad, &sel.sets, a.bias,
                          dbp, false);
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
    return py::make_tuple(input_grad ? py::object(dx) : py::object(py::none()), rows, dW_rows, db);
}

// ---- optimizers ------------------------------------------------------------

// A parameter (1-D or 2-D) with its gradient rows and state buffers, checked.
struct UpdateArgs {
    Precision precision;
    py::array rows;       // int64 (m,)
    py::array grad_rows;  // (m, cols)
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

void sgd_update(py::array param, py::handle rows, py::handle grad_rows, double lr, double clip) {
    auto u = parse_update(param, rows, grad_rows, {}, {});
    const meprop::SgdConfig c{lr, clip};
    py::gil_scoped_release unlocked;
    if (u.precision == Precision::f32) {
        meprop::sgd_update(mutable_view<float>(param), row_view<float>(u),
                           static_cast<const float*>(u.grad_rows.data()), c);
    } else {
        meprop::sgd_update(mutable_view<double>(param), row_view<double>(u),
                           static_cast<const double*>(u.grad_rows.data()), c);
    }
}

void adagrad_update(py::array param, py::handle rows, py::handle grad_rows, py::array sum_sq, double lr,
                    double eps, double clip) {
    auto u = parse_update(param, rows, grad_rows, {&sum_sq}, {"sum_sq"});
    const meprop::AdagradConfig c{lr, eps, clip};
    py::gil_scoped_release unlocked;
    if (u.precision == Precision::f32) {
        meprop::adagrad_update(mutable_view<float>(param), row_view<float>(u),
                               static_cast<const float*>(u.grad_rows.data()), mutable_view<float>(sum_sq), c);
    } else {
        meprop::adagrad_update(mutable_view<double>(param), row_view<double>(u),
                               static_cast<const double*>(u.grad_rows.data()), mutable_view<double>(sum_sq),
                               c);
    }
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
    if (u.precision == Precision::f32) {
        meprop::adam_update(mutable_view<float>(param), row_view<float>(u),
                            static_cast<const float*>(u.grad_rows.data()), mutable_view<float>(m),
                            mutable_view<float>(v), step, c, lazy, decay);
    } else {
        meprop::adam_update(mutable_view<double>(param), row_view<double>(u),
                            static_cast<const double*>(u.grad_rows.data()), mutable_view<double>(m),
                            mutable_view<double>(v), step, c, lazy, decay);
    }
}

// ---- linear forward -----------------------------------------------------------

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

// ---- LSTM ------------------------------------------------------------------

namespace lstm {

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

void register_functions(py::module_& m) {
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

}  // namespace lstm

PYBIND11_MODULE(_core, m) {
    m.doc() = "meprop-native compiled core: top-k selection and sparse linear backward.";
    m.attr("__version__") = meprop::version;

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
           bool input_grad, const std::string& bias_grad, const std::string& method,
           std::optional<py::array> memory, double memory_decay, py::handle indices) {
            auto a = parse_backward_args(dy, x, W, k, mode, bias_grad, method, !indices.is_none());
            parse_selection_args(a, std::move(memory), memory_decay, indices);
            return a.precision == Precision::f32 ? backward_compact<float>(a, input_grad)
                                                 : backward_compact<double>(a, input_grad);
        },
        // input_grad may come by position: keyword arguments cost about half a
        // microsecond a call, a tenth of a meProp layer's backward at batch 10.
        py::arg("dy"), py::arg("x"), py::arg("W"), py::arg("k") = py::none(), py::arg("mode") = "per_example",
        py::arg("input_grad") = true, py::kw_only(), py::arg("bias_grad") = "dense",
        py::arg("method") = "auto", py::arg("memory") = py::none(), py::arg("memory_decay") = 1.0,
        py::arg("indices") = py::none(),
        "meProp backward returning only the touched rows of dW: (dx, rows, dW_rows, db).\n\n"
        "dy (B, n_out), x (B, n_in), W (n_out, n_in): all float32 or all float64.\n"
        "Returns dx (B, n_in) or None (input_grad=False), rows (m,) int64 ascending,\n"
        "dW_rows (m, n_in) with dW[rows] = dW_rows, and db (n_out,).\n"
        "memory (n_out,): error feedback, updated in place (memory_decay in [0, 1]);\n"
        "indices: the kept entries, (B, k) per example or (k,) unified, instead of top-k.");
    m.def("linear_forward", &linear_forward, py::arg("x"), py::arg("W"), py::arg("b") = py::none(),
          py::kw_only(), py::arg("out") = py::none(),
          "y = x W^T + b for x (B, n_in), W (n_out, n_in), b (n_out,) or None: (B, n_out), "
          "on the library's threads (how it compares with BLAS: docs/benchmarks.md).");
    m.def("isa_target", &meprop::isa_target,
          "The instruction-set build of the hot loops that runs here: x86-64-v4, x86-64-v3, baseline or "
          "native.");
    m.def("linear_forward_uses_avx512", &meprop::linear_forward_uses_avx512,
          "Whether linear_forward runs its AVX-512 register tile on this machine.");
    m.def("sgd_update", &sgd_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"), py::arg("lr"),
          py::arg("clip") = 0.0,
          "In place: param[rows] -= lr * grad_rows (gradient clipped to +-clip when clip > 0).");
    m.def("adagrad_update", &adagrad_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"),
          py::arg("sum_sq"), py::arg("lr"), py::arg("eps") = 1e-6, py::arg("clip") = 0.0,
          "In place AdaGrad step on the given rows.");
    m.def("adam_update", &adam_update, py::arg("param"), py::arg("rows"), py::arg("grad_rows"), py::arg("m"),
          py::arg("v"), py::arg("step"), py::arg("lr") = 1e-3, py::arg("beta1") = 0.9,
          py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("clip") = 0.0, py::arg("lazy") = false,
          py::arg("decay1") = py::none(), py::arg("decay2") = py::none(),
          "In place Adam step; lazy=False also moves rows without gradient (zero gradient). "
          "decay1/decay2: float64 per-row factors for deferring the moments' decay.");
    m.def(
        "select_method_for",
        [](std::size_t n, std::size_t k) {
            return std::string(meprop::select_method_name(meprop::select_method_for(n, k)));
        },
        py::arg("n"), py::arg("k"), "The method 'auto' picks for a row of n entries.");
    m.def("set_num_threads", &meprop::set_num_threads, py::arg("n"),
          "Sets the number of OpenMP threads the kernels use.");
    m.def("get_num_threads", &meprop::num_threads, "The number of threads the kernels use.");
    lstm::register_functions(m);
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
