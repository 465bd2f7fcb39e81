// Every public entry point rejects bad arguments with std::invalid_argument
// before touching memory: null views, inconsistent shapes, hyper-parameters
// that would make the update NaN.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "harness.hpp"
#include "meprop/meprop.hpp"

using meprop::ConstMatrix;
using meprop::Matrix;

TEST(null_views_are_rejected) {
    std::vector<double> dy(4 * 6, 1.0), x(4 * 3, 1.0), W(6 * 3, 1.0), dx(4 * 3);
    const ConstMatrix<double> dy_v{dy.data(), 4, 6}, x_v{x.data(), 4, 3}, W_v{W.data(), 6, 3};
    const ConstMatrix<double> null_dy{nullptr, 4, 6}, null_x{nullptr, 4, 3}, null_W{nullptr, 6, 3};
    CHECK_THROWS(meprop::linear_backward(null_dy, x_v, W_v, 2));
    CHECK_THROWS(meprop::linear_backward(dy_v, null_x, W_v, 2));
    CHECK_THROWS(meprop::linear_backward(dy_v, x_v, null_W, 2));

    const std::int64_t ids[] = {1, 4};
    const meprop::IndexSets shared{ids, 1, 2};
    CHECK_THROWS(meprop::sparse_input_grad(dy_v, null_W, shared, Matrix<double>{dx.data(), 4, 3}));
    CHECK_THROWS(meprop::sparse_input_grad(dy_v, W_v, shared, Matrix<double>{nullptr, 4, 3}));
    CHECK_THROWS(meprop::sparse_weight_grad(null_dy, x_v, shared));
    CHECK_THROWS(meprop::sparse_weight_grad(dy_v, null_x, shared));
    CHECK_THROWS(meprop::sparse_weight_grad_accumulate(dy_v, x_v, shared, Matrix<double>{nullptr, 6, 3}));
    const meprop::WeightGradPlan<double> plan(dy_v, shared);
    CHECK_THROWS(plan.compute(x_v, Matrix<double>{nullptr, 2, 3}));
    CHECK_THROWS(plan.accumulate(null_x, Matrix<double>{W.data(), 6, 3}));
    std::vector<double> db(6);
    CHECK_THROWS(meprop::bias_grad(null_dy, &shared, meprop::BiasGradient::dense, db.data(), false));
    meprop::IndexSets sets;
    CHECK_THROWS(meprop::select_index_sets(null_dy, meprop::BackwardMode::per_example, 2, sets));
}

TEST(sparse_bias_gradient_needs_index_sets) {
    std::vector<float> dy(2 * 3, 1.0f), db(3);
    CHECK_THROWS(meprop::bias_grad(ConstMatrix<float>{dy.data(), 2, 3}, nullptr, meprop::BiasGradient::sparse,
                                   db.data(), false));
    // The dense bias gradient needs none.
    meprop::bias_grad(ConstMatrix<float>{dy.data(), 2, 3}, nullptr, meprop::BiasGradient::dense, db.data(),
                      false);
    CHECK(db[0] == 2.0f && db[2] == 2.0f);
}

TEST(topk_rows_checks_k_even_without_rows) {
    std::int64_t out = 0;
    CHECK_THROWS(meprop::topk_rows(ConstMatrix<double>{nullptr, 0, 5}, 0, &out));
    CHECK_THROWS(meprop::topk_rows(ConstMatrix<double>{nullptr, 0, 5}, 6, &out));
    meprop::topk_rows(ConstMatrix<double>{nullptr, 0, 5}, 3, nullptr);  // no rows: nothing to do
}

TEST(optimizers_reject_bad_arguments) {
    std::vector<double> p(3 * 2, 0.0), g(2, 1.0), m(3 * 2), v(3 * 2);
    const std::int64_t row[] = {1};
    const Matrix<double> param{p.data(), 3, 2};
    const meprop::RowGradientView one{row, 1};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();

    CHECK_THROWS(meprop::sgd_update(Matrix<double>{nullptr, 3, 2}, one, g.data(), {}));
    CHECK_THROWS(meprop::sgd_update(param, meprop::RowGradientView{nullptr, 1}, g.data(), {}));
    CHECK_THROWS(meprop::sgd_update(param, one, static_cast<const double*>(nullptr), {}));
    for (const double lr : {0.0, -0.1, nan, inf}) {
        CHECK_THROWS(meprop::sgd_update(param, one, g.data(), meprop::SgdConfig{lr, 0.0}));
        CHECK_THROWS(meprop::adagrad_update(param, one, g.data(), Matrix<double>{m.data(), 3, 2},
                                            meprop::AdagradConfig{lr, 1e-6, 0.0}));
    }
    for (const double clip : {-1.0, nan, inf}) {
        CHECK_THROWS(meprop::sgd_update(param, one, g.data(), meprop::SgdConfig{0.1, clip}));
    }
    for (const double eps : {0.0, -1e-8, nan}) {
        CHECK_THROWS(meprop::adagrad_update(param, one, g.data(), Matrix<double>{m.data(), 3, 2},
                                            meprop::AdagradConfig{0.1, eps, 0.0}));
    }
    const Matrix<double> m_v{m.data(), 3, 2}, v_v{v.data(), 3, 2};
    for (const double beta : {-0.1, 1.0, nan}) {
        meprop::AdamConfig c;
        c.beta1 = beta;
        CHECK_THROWS(meprop::adam_update(param, one, g.data(), m_v, v_v, 1, c, false));
        c = meprop::AdamConfig{};
        c.beta2 = beta;
        CHECK_THROWS(meprop::adam_update(param, one, g.data(), m_v, v_v, 1, c, false));
    }
    CHECK_THROWS(meprop::adam_update(param, one, g.data(), Matrix<double>{nullptr, 3, 2}, v_v, 1,
                                     meprop::AdamConfig{}, false));
    CHECK_THROWS(meprop::adam_update(param, one, g.data(), m_v, v_v, 0, meprop::AdamConfig{}, false));
    // None of the rejected calls moved the parameter.
    for (const double value : p) CHECK(value == 0.0);
    // A valid call does.
    meprop::sgd_update(param, one, g.data(), meprop::SgdConfig{0.5, 0.0});
    CHECK(p[2] == -0.5 && p[3] == -0.5 && p[0] == 0.0);
}
