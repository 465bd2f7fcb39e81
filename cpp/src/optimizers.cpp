#include "meprop/optimizers.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "check.hpp"
#include "flush_subnormals.hpp"
#include "multiversion.hpp"
#include "threads_for.hpp"

namespace meprop {
namespace {

constexpr std::size_t parallel_min_elements = 1 << 15;

void check_rows(RowGradientView rows, std::size_t n_rows) {
    if (rows.rows == nullptr && rows.count > 0) detail::fail("gradient row ids are a null pointer");
    for (std::size_t i = 0; i < rows.count; ++i) {
        if (rows.rows[i] < 0 || static_cast<std::size_t>(rows.rows[i]) >= n_rows) {
            detail::fail("gradient row id ", rows.rows[i], " outside [0, ", n_rows, ")");
        }
        if (i > 0 && rows.rows[i] <= rows.rows[i - 1]) {
            detail::fail("gradient row ids must be strictly ascending (position ", i, ")");
        }
    }
}

// Where an update's gradient rows come from: stored rows, or a plan that
// computes them (a fused update). Either way `rows` lists their ids.
template <class T>
struct GradRows {
    RowGradientView rows;
    const T* stored = nullptr;
    PlannedGradient<T> planned;
};

// The parameter, the row ids and the gradient rows; every update starts here.
template <class T>
GradRows<T> check_update(Matrix<T> param, RowGradientView rows, const T* grad_rows) {
    detail::check_view(param, "param");
    check_rows(rows, param.rows);
    if (grad_rows == nullptr && rows.count > 0 && param.cols > 0) {
        detail::fail("gradient rows are a null pointer");
    }
    return {rows, grad_rows, {}};
}

template <class T>
GradRows<T> check_update(Matrix<T> param, const PlannedGradient<T>& g) {
    detail::check_view(param, "param");
    if (g.plan == nullptr) detail::fail("the planned gradient has no plan (a null pointer)");
    detail::check_view(g.x, "x");
    if (g.x.rows != g.plan->batch() || g.x.cols != param.cols) {
        detail::fail("x must be ", g.plan->batch(), " x ", param.cols,
                     " (the plan's batch x param's columns), got ", g.x.rows, " x ", g.x.cols);
    }
    const RowGradientView rows{g.plan->rows().data(), g.plan->rows().size()};
    check_rows(rows, param.rows);
    return {rows, nullptr, g};
}

// Hands out gradient rows by position in the list. Stored rows are read in
// place; planned ones are computed a chunk of consecutive rows at a time into
// this thread's buffer (a chunk stops at `end`, the end of the thread's part).
template <class T>
class RowSource {
  public:
    RowSource(const GradRows<T>& g, std::size_t cols) : g_(g), cols_(cols) {
        if (g.stored == nullptr && g.rows.count > 0) {
            // About 16 KB: the chunk stays in L1 beside the rows being updated.
            chunk_ = std::clamp<std::size_t>(16384 / std::max<std::size_t>(cols * sizeof(T), 1), 1, 16);
            buffer_.resize(chunk_ * cols);
        }
    }

    const T* row(std::size_t p, std::size_t end) {
        if (g_.stored != nullptr) return g_.stored + p * cols_;
        if (p < first_ || p >= last_) {
            first_ = p;
            last_ = std::min(end, p + chunk_);
            g_.planned.plan->compute_rows(g_.planned.x, first_, last_,
                                          Matrix<T>{buffer_.data(), last_ - first_, cols_});
        }
        return buffer_.data() + (p - first_) * cols_;
    }

  private:
    const GradRows<T>& g_;
    std::size_t cols_;
    std::size_t chunk_ = 0, first_ = 0, last_ = 0;
    std::vector<T> buffer_;
};

// Hyper-parameters that would turn the update into NaN or inf, or move the
// parameters the wrong way, are errors rather than silent garbage.
void check_lr_clip(double lr, double clip) {
    if (!(std::isfinite(lr) && lr > 0)) detail::fail("learning rate must be finite and > 0, got ", lr);
    if (!(std::isfinite(clip) && clip >= 0)) {
        detail::fail("clip must be finite and >= 0 (0 disables clipping), got ", clip);
    }
}

void check_eps(double eps) {
    if (!(std::isfinite(eps) && eps > 0)) detail::fail("eps must be finite and > 0, got ", eps);
}

template <class T>
void check_state(Matrix<T> param, Matrix<T> state, const char* name) {
    detail::check_view(state, name);
    if (state.rows != param.rows || state.cols != param.cols) {
        detail::fail(name, " must be ", param.rows, " x ", param.cols, ", got ", state.rows, " x ",
                     state.cols);
    }
}

template <class T>
inline T clipped(T g, T clip) {
    if (clip > T(0)) g = g > clip ? clip : (g < -clip ? -clip : g);
    return g;
}

// Calls fn(row, grad_row or nullptr) for the rows to update, in parallel.
// Every row (lazy false) or only listed rows (lazy true). Each thread takes
// a contiguous part of the rows, so a fused update computes consecutive
// gradient rows together. Subnormals are flushed to zero meanwhile (see
// flush_subnormals.hpp): decaying moments reach them, and they halve the
// speed of the update.
template <class T, class Fn>
void for_each_row(Matrix<T> param, const GradRows<T>& g, bool lazy, Fn&& fn) {
    const std::size_t cols = param.cols;
    const RowGradientView rows = g.rows;
    const std::size_t n_rows = lazy ? rows.count : param.rows;
    const int threads = detail::threads_for(n_rows * cols, parallel_min_elements);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        const detail::FlushSubnormals flush;
        const auto t = static_cast<std::size_t>(omp_get_thread_num());
        const auto nt = static_cast<std::size_t>(omp_get_num_threads());
        RowSource<T> source(g, cols);
        if (lazy) {
            const std::size_t p0 = rows.count * t / nt, p1 = rows.count * (t + 1) / nt;
            for (std::size_t p = p0; p < p1; ++p)
                fn(static_cast<std::size_t>(rows.rows[p]), source.row(p, p1));
        } else {
            // Row r's gradient is at position p(r) in the ascending list, if
            // present: each thread walks its own range of rows with a cursor.
            const std::size_t r0 = param.rows * t / nt, r1 = param.rows * (t + 1) / nt;
            const auto* begin = rows.rows;
            const auto* end = rows.rows + rows.count;
            std::size_t p =
                static_cast<std::size_t>(std::lower_bound(begin, end, static_cast<std::int64_t>(r0)) - begin);
            const std::size_t p1 =
                static_cast<std::size_t>(std::lower_bound(begin, end, static_cast<std::int64_t>(r1)) - begin);
            for (std::size_t r = r0; r < r1; ++r) {
                const bool has = p < p1 && static_cast<std::size_t>(rows.rows[p]) == r;
                fn(r, has ? source.row(p, p1) : nullptr);
                p += has;
            }
        }
    }
}

// The per-row loops, with restrict so that they vectorise (sqrt and divide
// included) and clones for the wider ISAs.
// One row of Adam. cm and cv multiply the stored moments: b1 and b2, or with a
// deferred decay b1 * beta1_power and b2 * beta2_power. A null g is a zero
// gradient with the moments decayed in place.
template <class T>
[[gnu::always_inline]] inline void adam_row(T* __restrict p, T* __restrict m, T* __restrict v,
                                            const T* __restrict g, std::size_t n, T cm, T cv, T b1, T b2,
                                            T step_size, T inv_sqrt_bc2, T eps, T clip) {
    if (g == nullptr) {  // zero gradient: the moments decay, the row still moves
        for (std::size_t i = 0; i < n; ++i) {
            m[i] = b1 * m[i];
            v[i] = b2 * v[i];
            p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
        }
        return;
    }
    for (std::size_t i = 0; i < n; ++i) {
        const T gi = clipped(g[i], clip);
        m[i] = cm * m[i] + (T(1) - b1) * gi;
        v[i] = cv * v[i] + (T(1) - b2) * gi * gi;
        p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
}

// A row without gradient whose moments' decay is deferred: m and v are read,
// not written; step_m folds the pending decay of m into the step size and
// scale_v that of v (its square root) into the bias correction.
template <class T>
[[gnu::always_inline]] inline void adam_row_deferred(T* __restrict p, const T* __restrict m,
                                                     const T* __restrict v, std::size_t n, T step_m,
                                                     T scale_v, T eps) {
    for (std::size_t i = 0; i < n; ++i) p[i] -= step_m * m[i] / (std::sqrt(v[i]) * scale_v + eps);
}

MEPROP_ISA_KERNEL(adam_row_any, adam_row,
                  (T * p, T* m, T* v, const T* g, std::size_t n, T cm, T cv, T b1, T b2, T s, T ib, T eps,
                   T clip),
                  (p, m, v, g, n, cm, cv, b1, b2, s, ib, eps, clip))

MEPROP_ISA_KERNEL(adam_row_deferred_any, adam_row_deferred,
                  (T * p, const T* m, const T* v, std::size_t n, T step_m, T scale_v, T eps),
                  (p, m, v, n, step_m, scale_v, eps))

template <class T>
[[gnu::always_inline]] inline void adagrad_row(T* __restrict p, T* __restrict s, const T* __restrict g,
                                               std::size_t n, T lr, T eps, T clip) {
    for (std::size_t i = 0; i < n; ++i) {
        const T gi = clipped(g[i], clip);
        s[i] += gi * gi;
        p[i] -= lr * gi / (std::sqrt(s[i]) + eps);
    }
}
MEPROP_ISA_KERNEL(adagrad_row_any, adagrad_row, (T * p, T* s, const T* g, std::size_t n, T lr, T eps, T clip),
                  (p, s, g, n, lr, eps, clip))

template <class T>
void sgd_rows(Matrix<T> param, const GradRows<T>& g, const SgdConfig& c) {
    check_lr_clip(c.lr, c.clip);
    const T lr = static_cast<T>(c.lr), clip = static_cast<T>(c.clip);
    const std::size_t cols = param.cols;
    for_each_row(param, g, true, [&](std::size_t r, const T* grad) {
        T* p = param.row(r);
        for (std::size_t i = 0; i < cols; ++i) p[i] -= lr * clipped(grad[i], clip);
    });
}

template <class T>
void adagrad_rows(Matrix<T> param, const GradRows<T>& g, Matrix<T> sum_sq, const AdagradConfig& c) {
    check_state(param, sum_sq, "AdaGrad state");
    check_lr_clip(c.lr, c.clip);
    check_eps(c.eps);
    const T lr = static_cast<T>(c.lr), eps = static_cast<T>(c.eps), clip = static_cast<T>(c.clip);
    const std::size_t cols = param.cols;
    for_each_row(param, g, true, [&](std::size_t r, const T* grad) {
        adagrad_row_any(param.row(r), sum_sq.row(r), grad, cols, lr, eps, clip);
    });
}

template <class T>
void adam_rows(Matrix<T> param, const GradRows<T>& grad, Matrix<T> m, Matrix<T> v, std::int64_t step,
               const AdamConfig& c, bool lazy, AdamRowDecay decay) {
    check_state(param, m, "Adam first moment");
    check_state(param, v, "Adam second moment");
    if (step < 1) detail::fail("Adam step must be >= 1, got ", step);
    check_lr_clip(c.lr, c.clip);
    check_eps(c.eps);
    for (const double beta : {c.beta1, c.beta2}) {
        if (!(beta >= 0 && beta < 1)) detail::fail("Adam betas must be in [0, 1), got ", beta);
    }
    const bool deferred = decay.beta1_power != nullptr;
    if (deferred != (decay.beta2_power != nullptr)) {
        detail::fail("Adam's deferred decay needs both factor arrays or neither");
    }
    for (std::size_t r = 0; deferred && r < param.rows; ++r) {
        const double f1 = decay.beta1_power[r], f2 = decay.beta2_power[r];
        if (!(f1 >= 0 && f1 <= 1 && f2 >= 0 && f2 <= 1)) {
            detail::fail("Adam's decay factors must lie in [0, 1]; row ", r, " has ", f1, " and ", f2);
        }
    }
    const T b1 = static_cast<T>(c.beta1), b2 = static_cast<T>(c.beta2);
    const T eps = static_cast<T>(c.eps), clip = static_cast<T>(c.clip);
    const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
    const double step_size = c.lr / bc1;
    const double inv_sqrt_bc2 = 1.0 / std::sqrt(bc2);
    const T step_size_t = static_cast<T>(step_size), inv_sqrt_bc2_t = static_cast<T>(inv_sqrt_bc2);
    const std::size_t cols = param.cols;
    for_each_row(param, grad, lazy, [&](std::size_t r, const T* g) {
        if (!deferred) {
            adam_row_any(param.row(r), m.row(r), v.row(r), g, cols, b1, b2, b1, b2, step_size_t,
                         inv_sqrt_bc2_t, eps, clip);
            return;
        }
        double& d1 = decay.beta1_power[r];
        double& d2 = decay.beta2_power[r];
        if (g == nullptr) {
            // Below the smallest normal double the factor would creep through
            // denormals forever; its moment stopped mattering long before.
            d1 = d1 * c.beta1 >= std::numeric_limits<double>::min() ? d1 * c.beta1 : 0.0;
            d2 = d2 * c.beta2 >= std::numeric_limits<double>::min() ? d2 * c.beta2 : 0.0;
            const T step_m = static_cast<T>(step_size * d1);
            // A step factor under T's normal range reads as zero while the
            // update runs (flush_subnormals.hpp), so the row would not move:
            // skip its pass. In a meProp run these are the units top-k has
            // not picked for a thousand steps or so -- half the rows or more.
            // (Unlike the pass, the skip leaves a -0.0 weight as -0.0, and a
            // row whose stored moments are already NaN or inf unchanged.)
            if (detail::flushes_subnormals && !(step_m >= std::numeric_limits<T>::min())) return;
            adam_row_deferred_any(param.row(r), m.row(r), v.row(r), cols, step_m,
                                  static_cast<T>(std::sqrt(d2) * inv_sqrt_bc2), eps);
            return;
        }
        // The pending decay joins the factors on the stored moments; with none
        // pending (d1 = d2 = 1) they are b1 and b2, as without deferral.
        const T cm = static_cast<T>(c.beta1 * d1), cv = static_cast<T>(c.beta2 * d2);
        d1 = 1.0;
        d2 = 1.0;
        adam_row_any(param.row(r), m.row(r), v.row(r), g, cols, cm, cv, b1, b2, step_size_t, inv_sqrt_bc2_t,
                     eps, clip);
    });
}

}  // namespace

template <class T>
void sgd_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, const SgdConfig& c) {
    sgd_rows(param, check_update(param, rows, grad_rows), c);
}

template <class T>
void sgd_update(Matrix<T> param, const PlannedGradient<T>& grad, const SgdConfig& c) {
    sgd_rows(param, check_update(param, grad), c);
}

template <class T>
void adagrad_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, Matrix<T> sum_sq,
                    const AdagradConfig& c) {
    adagrad_rows(param, check_update(param, rows, grad_rows), sum_sq, c);
}

template <class T>
void adagrad_update(Matrix<T> param, const PlannedGradient<T>& grad, Matrix<T> sum_sq,
                    const AdagradConfig& c) {
    adagrad_rows(param, check_update(param, grad), sum_sq, c);
}

template <class T>
void adam_update(Matrix<T> param, RowGradientView rows, const T* grad_rows, Matrix<T> m, Matrix<T> v,
                 std::int64_t step, const AdamConfig& c, bool lazy, AdamRowDecay decay) {
    adam_rows(param, check_update(param, rows, grad_rows), m, v, step, c, lazy, decay);
}

template <class T>
void adam_update(Matrix<T> param, const PlannedGradient<T>& grad, Matrix<T> m, Matrix<T> v, std::int64_t step,
                 const AdamConfig& c, bool lazy, AdamRowDecay decay) {
    adam_rows(param, check_update(param, grad), m, v, step, c, lazy, decay);
}

#define MEPROP_INSTANTIATE_OPTIMIZERS(T)                                                                    \
    template void sgd_update<T>(Matrix<T>, RowGradientView, const T*, const SgdConfig&);                    \
    template void adagrad_update<T>(Matrix<T>, RowGradientView, const T*, Matrix<T>, const AdagradConfig&); \
    template void adam_update<T>(Matrix<T>, RowGradientView, const T*, Matrix<T>, Matrix<T>, std::int64_t,  \
                                 const AdamConfig&, bool, AdamRowDecay);                                    \
    template void sgd_update<T>(Matrix<T>, const PlannedGradient<T>&, const SgdConfig&);                    \
    template void adagrad_update<T>(Matrix<T>, const PlannedGradient<T>&, Matrix<T>, const AdagradConfig&); \
    template void adam_update<T>(Matrix<T>, const PlannedGradient<T>&, Matrix<T>, Matrix<T>, std::int64_t,  \
                                 const AdamConfig&, bool, AdamRowDecay);

MEPROP_INSTANTIATE_OPTIMIZERS(float)
MEPROP_INSTANTIATE_OPTIMIZERS(double)

}  // namespace meprop
