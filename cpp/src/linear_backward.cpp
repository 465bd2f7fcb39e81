#include "meprop/linear_backward.hpp"

#include <algorithm>
#include <numeric>

#include "check.hpp"
#include "combine_rows.hpp"

namespace meprop {

BackwardMode parse_backward_mode(std::string_view name) {
    if (name == "per_example") return BackwardMode::per_example;
    if (name == "unified") return BackwardMode::unified;
    if (name == "dense") return BackwardMode::dense;
    detail::fail("unknown mode '", name, "' (expected 'per_example', 'unified' or 'dense')");
}

BiasGradient parse_bias_gradient(std::string_view name) {
    if (name == "dense") return BiasGradient::dense;
    if (name == "sparse") return BiasGradient::sparse;
    detail::fail("unknown bias gradient '", name, "' (expected 'dense' or 'sparse')");
}

void validate_index_sets(IndexSets s, std::size_t batch, std::size_t n_out) {
    if (s.ids == nullptr && s.sets * s.k > 0) detail::fail("index sets have a null pointer");
    if (s.sets != 1 && s.sets != batch) {
        detail::fail("expected 1 shared index set or one per example (", batch, "), got ", s.sets);
    }
    if (s.k < 1 || s.k > n_out) detail::fail("index sets must hold 1..", n_out, " ids, got ", s.k);
    for (std::size_t r = 0; r < s.sets; ++r) {
        const std::int64_t* ids = s.ids + r * s.k;
        for (std::size_t t = 0; t < s.k; ++t) {
            if (ids[t] < 0 || static_cast<std::size_t>(ids[t]) >= n_out) {
                detail::fail("index set ", r, " holds id ", ids[t], " outside [0, ", n_out, ")");
            }
            if (t > 0 && ids[t] <= ids[t - 1]) {
                detail::fail("index set ", r, " is not strictly ascending at position ", t);
            }
        }
    }
}

void count_selected(IndexSets s, std::size_t batch, std::size_t n_out, std::int64_t* counts) {
    validate_index_sets(s, batch, n_out);
    if (counts == nullptr) detail::fail("count_selected: counts is a null pointer");
    const auto per_set = static_cast<std::int64_t>(s.sets == 1 ? batch : 1);
    for (std::size_t r = 0; r < s.sets; ++r) {
        const std::int64_t* ids = s.ids + r * s.k;
        for (std::size_t t = 0; t < s.k; ++t) counts[ids[t]] += per_set;
    }
}

namespace {

// The entries of mask_S(dy) grouped by example: row b holds (S_b[t], dy[b, S_b[t]]).
template <class T>
struct EntriesByExample {
    std::vector<std::size_t> row_begin;
    std::vector<std::int64_t> cols;
    std::vector<T> values;
};

template <class T>
EntriesByExample<T> entries_by_example(ConstMatrix<T> dy, IndexSets s) {
    const std::size_t B = dy.rows, k = s.k;
    EntriesByExample<T> e;
    e.row_begin.resize(B + 1);
    e.cols.resize(B * k);
    e.values.resize(B * k);
    for (std::size_t b = 0; b < B; ++b) {
        e.row_begin[b] = b * k;
        const std::int64_t* ids = s.set(b);
        const T* row = dy.row(b);
        for (std::size_t t = 0; t < k; ++t) {
            e.cols[b * k + t] = ids[t];
            e.values[b * k + t] = row[ids[t]];
        }
    }
    e.row_begin[B] = B * k;
    return e;
}

}  // namespace

template <class T>
void sparse_input_grad(ConstMatrix<T> dy, ConstMatrix<T> W, IndexSets s, Matrix<T> dx) {
    detail::check_view(dy, "dy");
    detail::check_view(W, "W");
    detail::check_view(dx, "dx");
    if (W.rows != dy.cols) detail::fail("W has ", W.rows, " rows but dy has ", dy.cols, " columns");
    if (dx.rows != dy.rows || dx.cols != W.cols) {
        detail::fail("dx must be ", dy.rows, " x ", W.cols, ", got ", dx.rows, " x ", dx.cols);
    }
    validate_index_sets(s, dy.rows, dy.cols);
    if (dy.rows == 0 || W.cols == 0) return;
    const auto e = entries_by_example(dy, s);
    const detail::RowCombination<T> plan{dy.rows, e.row_begin.data(), e.cols.data(), e.values.data(),
                                         s.sets == 1};
    detail::combine_rows(plan, W, dx, nullptr, false);
}

template <class T>
WeightGradPlan<T>::WeightGradPlan(ConstMatrix<T> dy, IndexSets s) : batch_(dy.rows) {
    detail::check_view(dy, "dy");
    validate_index_sets(s, dy.rows, dy.cols);
    const std::size_t B = dy.rows, k = s.k, n_out = dy.cols;
    examples_.resize(B * k);
    values_.resize(B * k);
    if (s.sets == 1) {  // every example shares the units: a dense k x B block
        shared_ = true;
        units_.assign(s.ids, s.ids + k);
        row_begin_.resize(k + 1);
        for (std::size_t t = 0; t < k; ++t) {
            row_begin_[t] = t * B;
            for (std::size_t b = 0; b < B; ++b) {
                examples_[t * B + b] = static_cast<std::int64_t>(b);
                values_[t * B + b] = dy.row(b)[s.ids[t]];
            }
        }
        row_begin_[k] = k * B;
        return;
    }
    // Counting sort by unit; a stable fill keeps examples in ascending order,
    // which fixes the summation order of every gradient row.
    const std::size_t most_units = std::min(B * k, n_out);
    units_.reserve(most_units);
    row_begin_.reserve(most_units + 1);
    std::vector<std::size_t> slot(n_out, 0);
    for (std::size_t i = 0; i < B * k; ++i) ++slot[static_cast<std::size_t>(s.ids[i])];
    std::size_t offset = 0;
    for (std::size_t j = 0; j < n_out; ++j) {
        const std::size_t count = slot[j];
        if (count == 0) continue;
        units_.push_back(static_cast<std::int64_t>(j));
        row_begin_.push_back(offset);
        slot[j] = offset;
        offset += count;
    }
    row_begin_.push_back(offset);
    for (std::size_t b = 0; b < B; ++b) {
        const std::int64_t* ids = s.set(b);
        const T* row = dy.row(b);
        for (std::size_t t = 0; t < k; ++t) {
            const std::size_t at = slot[static_cast<std::size_t>(ids[t])]++;
            examples_[at] = static_cast<std::int64_t>(b);
            values_[at] = row[ids[t]];
        }
    }
}

template <class T>
void WeightGradPlan<T>::compute(ConstMatrix<T> x, Matrix<T> out) const {
    detail::check_view(x, "x");
    detail::check_view(out, "gradient rows");
    if (x.rows != batch_) detail::fail("x has ", x.rows, " rows but dy has ", batch_);
    if (out.rows != units_.size() || out.cols != x.cols) {
        detail::fail("gradient rows must be ", units_.size(), " x ", x.cols, ", got ", out.rows, " x ",
                     out.cols);
    }
    if (units_.empty() || x.cols == 0) return;
    const detail::RowCombination<T> plan{units_.size(), row_begin_.data(), examples_.data(), values_.data(),
                                         shared_};
    detail::combine_rows(plan, x, out, nullptr, false);
}

template <class T>
void WeightGradPlan<T>::compute_rows(ConstMatrix<T> x, std::size_t first, std::size_t last,
                                     Matrix<T> out) const {
    if (first > last || last > units_.size()) {
        detail::fail("gradient rows [", first, ", ", last, ") outside the plan's ", units_.size());
    }
    if (out.rows != last - first || out.cols != x.cols) {
        detail::fail("gradient rows must be ", last - first, " x ", x.cols, ", got ", out.rows, " x ",
                     out.cols);
    }
    if (first == last || x.cols == 0) return;
    // Offsets into the entries stay absolute: the sub-plan starts at row `first`.
    const detail::RowCombination<T> plan{last - first, row_begin_.data() + first, examples_.data(),
                                         values_.data(), shared_};
    detail::combine_rows_here(plan, x, out, nullptr, false);
}

template <class T>
void WeightGradPlan<T>::accumulate(ConstMatrix<T> x, Matrix<T> dW) const {
    detail::check_view(x, "x");
    detail::check_view(dW, "dW");
    if (x.rows != batch_) detail::fail("x has ", x.rows, " rows but dy has ", batch_);
    if (dW.cols != x.cols || (!units_.empty() && static_cast<std::size_t>(units_.back()) >= dW.rows)) {
        detail::fail("dW must have ", x.cols, " columns and a row for every touched unit");
    }
    if (units_.empty() || x.cols == 0) return;
    const detail::RowCombination<T> plan{units_.size(), row_begin_.data(), examples_.data(), values_.data(),
                                         shared_};
    detail::combine_rows(plan, x, dW, units_.data(), true);
}

template <class T>
RowGradients<T> sparse_weight_grad(ConstMatrix<T> dy, ConstMatrix<T> x, IndexSets s) {
    const WeightGradPlan<T> plan(dy, s);
    RowGradients<T> result;
    result.cols = x.cols;
    result.rows = plan.rows();
    result.grads.resize(result.rows.size() * x.cols);
    plan.compute(x, Matrix<T>{result.grads.data(), result.rows.size(), x.cols});
    return result;
}

template <class T>
void sparse_weight_grad_accumulate(ConstMatrix<T> dy, ConstMatrix<T> x, IndexSets s, Matrix<T> dW) {
    if (dW.rows != dy.cols || dW.cols != x.cols) {
        detail::fail("dW must be ", dy.cols, " x ", x.cols, ", got ", dW.rows, " x ", dW.cols);
    }
    WeightGradPlan<T>(dy, s).accumulate(x, dW);
}

template <class T>
void bias_grad(ConstMatrix<T> dy, const IndexSets* s, BiasGradient kind, T* db, bool accumulate) {
    detail::check_view(dy, "dy");
    if (db == nullptr && dy.cols > 0) detail::fail("db is a null pointer");
    if (kind == BiasGradient::sparse && s == nullptr) {
        detail::fail("a sparse bias gradient needs the index sets (got a null pointer)");
    }
    std::vector<T> sums(dy.cols, T(0));
    if (kind == BiasGradient::dense || s == nullptr) {
        for (std::size_t b = 0; b < dy.rows; ++b) {
            const T* row = dy.row(b);
            for (std::size_t j = 0; j < dy.cols; ++j) sums[j] += row[j];
        }
    } else {
        validate_index_sets(*s, dy.rows, dy.cols);
        for (std::size_t b = 0; b < dy.rows; ++b) {
            const std::int64_t* ids = s->set(b);
            for (std::size_t t = 0; t < s->k; ++t) sums[ids[t]] += dy.row(b)[ids[t]];
        }
    }
    for (std::size_t j = 0; j < dy.cols; ++j) db[j] = accumulate ? db[j] + sums[j] : sums[j];
}

template <class T>
std::vector<std::int64_t> select_index_sets(ConstMatrix<T> dy, BackwardMode mode, std::size_t k,
                                            IndexSets& sets, SelectMethod method) {
    detail::check_view(dy, "dy");
    std::vector<std::int64_t> ids;
    switch (mode) {
        case BackwardMode::per_example:
            if (dy.rows == 0) detail::fail("dy has no rows");
            if (k < 1 || k > dy.cols) detail::fail("k must be in [1, ", dy.cols, "], got ", k);
            ids.resize(dy.rows * k);
            topk_rows(dy, k, ids.data(), method);
            sets = {ids.data(), dy.rows, k};
            break;
        case BackwardMode::unified:
            if (k < 1 || k > dy.cols) detail::fail("k must be in [1, ", dy.cols, "], got ", k);
            ids.resize(k);
            topk_unified(dy, k, ids.data(), method);
            sets = {ids.data(), 1, k};
            break;
        case BackwardMode::dense:
            ids.resize(dy.cols);
            std::iota(ids.begin(), ids.end(), std::int64_t{0});
            sets = {ids.data(), 1, dy.cols};
            break;
        default: detail::fail("unknown backward mode ", static_cast<int>(mode));
    }
    return ids;
}

template <class T>
LinearGradients<T> linear_backward(ConstMatrix<T> dy, ConstMatrix<T> x, ConstMatrix<T> W, std::size_t k,
                                   BackwardMode mode, BiasGradient bias) {
    detail::check_view(dy, "dy");
    detail::check_view(x, "x");
    detail::check_view(W, "W");
    if (x.rows != dy.rows) detail::fail("x has ", x.rows, " rows but dy has ", dy.rows);
    if (W.rows != dy.cols || W.cols != x.cols) {
        detail::fail("W must be ", dy.cols, " x ", x.cols, ", got ", W.rows, " x ", W.cols);
    }
    LinearGradients<T> g;
    IndexSets sets;
    g.indices = select_index_sets(dy, mode, k, sets, SelectMethod::automatic);
    g.dx.resize(dy.rows * W.cols);
    sparse_input_grad(dy, W, sets, Matrix<T>{g.dx.data(), dy.rows, W.cols});
    g.dW = sparse_weight_grad(dy, x, sets);
    g.db.resize(dy.cols);
    bias_grad(dy, &sets, bias, g.db.data(), false);
    return g;
}

#define MEPROP_INSTANTIATE_BACKWARD(T)                                                                    \
    template class WeightGradPlan<T>;                                                                     \
    template void sparse_input_grad<T>(ConstMatrix<T>, ConstMatrix<T>, IndexSets, Matrix<T>);             \
    template RowGradients<T> sparse_weight_grad<T>(ConstMatrix<T>, ConstMatrix<T>, IndexSets);            \
    template void sparse_weight_grad_accumulate<T>(ConstMatrix<T>, ConstMatrix<T>, IndexSets, Matrix<T>); \
    template void bias_grad<T>(ConstMatrix<T>, const IndexSets*, BiasGradient, T*, bool);                 \
    template std::vector<std::int64_t> select_index_sets<T>(ConstMatrix<T>, BackwardMode, std::size_t,    \
                                                            IndexSets&, SelectMethod);                    \
    template LinearGradients<T> linear_backward<T>(ConstMatrix<T>, ConstMatrix<T>, ConstMatrix<T>,        \
                                                   std::size_t, BackwardMode, BiasGradient);

MEPROP_INSTANTIATE_BACKWARD(float)
MEPROP_INSTANTIATE_BACKWARD(double)

}  // namespace meprop
