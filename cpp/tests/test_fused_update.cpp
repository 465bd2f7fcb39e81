// Fused updates: gradient rows computed from a WeightGradPlan while updating,
// bit for bit the update from the computed rows.
#include <cmath>
#include <random>
#include <vector>

#include "harness.hpp"
#include "meprop/meprop.hpp"

using meprop::ConstMatrix;
using meprop::Matrix;

namespace {

template <class T>
std::vector<T> normal(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> dist;
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(dist(gen));
    return v;
}

// One update of each kind from the rows and from the plan; true when param and
// state end the same, bit for bit.
template <class T>
bool fused_matches(std::size_t batch, std::size_t n_in, std::size_t n_out, std::size_t k) {
    const auto x = normal<T>(batch * n_in, 1), dy = normal<T>(batch * n_out, 2),
               W = normal<T>(n_out * n_in, 3);
    const ConstMatrix<T> dyv{dy.data(), batch, n_out}, xv{x.data(), batch, n_in};
    meprop::IndexSets sets;
    const auto ids = meprop::select_index_sets(dyv, meprop::BackwardMode::per_example, k, sets);
    const meprop::WeightGradPlan<T> plan(dyv, sets);
    std::vector<T> rows(plan.rows().size() * n_in);
    plan.compute(xv, Matrix<T>{rows.data(), plan.rows().size(), n_in});
    const meprop::RowGradientView view{plan.rows().data(), plan.rows().size()};
    const meprop::PlannedGradient<T> planned{&plan, xv};
    bool same = true;
    for (int kind = 0; kind < 3; ++kind) {
        std::vector<T> p1 = W, p2 = W, s1(W.size(), T(0.5)), s2 = s1, m1(W.size(), T(0.1)), m2 = m1;
        std::vector<double> d1(n_out, 0.7), d2 = d1, e1 = d1, e2 = d1;
        const Matrix<T> P1{p1.data(), n_out, n_in}, P2{p2.data(), n_out, n_in};
        if (kind == 0) {
            meprop::sgd_update(P1, view, rows.data(), {0.1, 0.5});
            meprop::sgd_update(P2, planned, {0.1, 0.5});
        } else if (kind == 1) {
            meprop::adagrad_update(P1, view, rows.data(), Matrix<T>{s1.data(), n_out, n_in},
                                   {0.1, 1e-6, 0.0});
            meprop::adagrad_update(P2, planned, Matrix<T>{s2.data(), n_out, n_in}, {0.1, 1e-6, 0.0});
        } else {
            const meprop::AdamConfig c{0.01, 0.9, 0.999, 1e-8, 0.0};
            meprop::adam_update(P1, view, rows.data(), Matrix<T>{m1.data(), n_out, n_in},
                                Matrix<T>{s1.data(), n_out, n_in}, 4, c, false, {d1.data(), e1.data()});
            meprop::adam_update(P2, planned, Matrix<T>{m2.data(), n_out, n_in},
                                Matrix<T>{s2.data(), n_out, n_in}, 4, c, false, {d2.data(), e2.data()});
        }
        same = same && p1 == p2 && s1 == s2 && m1 == m2 && d1 == d2 && e1 == e2;
    }
    return same;
}

}  // namespace

TEST(fused_updates_equal_updates_from_computed_rows) {
    CHECK(fused_matches<float>(10, 333, 50, 7));
    CHECK(fused_matches<double>(10, 333, 50, 7));
    CHECK(fused_matches<float>(1, 5, 4, 1));
    CHECK(fused_matches<double>(4, 3000, 20, 3));  // one row a chunk
    CHECK(fused_matches<float>(8, 64, 16, 16));    // k = n
}

TEST(fused_update_rejects_x_of_another_shape) {
    const std::size_t B = 3, n_in = 4, n_out = 5;
    const auto x = normal<float>(B * n_in, 1), dy = normal<float>(B * n_out, 2);
    std::vector<float> W(n_out * n_in), wide_x((B + 1) * n_in);
    meprop::IndexSets sets;
    const auto ids = meprop::select_index_sets(ConstMatrix<float>{dy.data(), B, n_out},
                                               meprop::BackwardMode::per_example, 2, sets);
    const meprop::WeightGradPlan<float> plan(ConstMatrix<float>{dy.data(), B, n_out}, sets);
    const Matrix<float> P{W.data(), n_out, n_in};
    CHECK_THROWS(
        meprop::sgd_update(P, meprop::PlannedGradient<float>{&plan, {wide_x.data(), B + 1, n_in}}, {0.1, 0}));
    CHECK_THROWS(
        meprop::sgd_update(P, meprop::PlannedGradient<float>{nullptr, {x.data(), B, n_in}}, {0.1, 0}));
    // x's columns must be param's
    CHECK_THROWS(meprop::sgd_update(Matrix<float>{W.data(), n_out, n_in - 1},
                                    meprop::PlannedGradient<float>{&plan, {x.data(), B, n_in}}, {0.1, 0}));
}

TEST(pointwise_layers) {
    std::vector<float> x{-1.0f, -0.0f, 2.5f, 0.0f}, y(4), dy{1.0f, -2.0f, 3.0f, -4.0f}, dx(4);
    meprop::relu_forward<float>({x.data(), 1, 4}, {y.data(), 1, 4});
    CHECK(y[0] == 0.0f && y[1] == 0.0f && !std::signbit(y[1]) && y[2] == 2.5f && y[3] == 0.0f);
    meprop::relu_backward<float>({dy.data(), 1, 4}, {y.data(), 1, 4}, {dx.data(), 1, 4});
    CHECK(dx[0] == 0.0f && dx[2] == 3.0f && std::signbit(dx[1]) && std::signbit(dx[3]));
    std::vector<double> logits{0.0, 0.0, 1000.0, 1.0, 2.0, 3.0}, grad(6);
    const std::int64_t labels[] = {2, 0};
    const double loss =
        meprop::softmax_cross_entropy<double>({logits.data(), 2, 3}, labels, {grad.data(), 2, 3}, 2.0);
    const double row2 = std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0) + 2.0;
    CHECK(std::abs(loss - row2 / 2) < 1e-12);
    CHECK(std::abs(grad[2]) < 1e-12 && std::abs(grad[0]) < 1e-12);
    double row_sum = 0;
    for (int j = 3; j < 6; ++j) row_sum += grad[j];
    CHECK(std::abs(row_sum) < 1e-12);
    const std::int64_t bad[] = {3, 0};
    CHECK_THROWS(meprop::softmax_cross_entropy<double>({logits.data(), 2, 3}, bad, {grad.data(), 2, 3}, 2.0));
}
