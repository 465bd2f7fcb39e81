#include <cmath>
#include <stdexcept>

#include "harness.hpp"
#include "meprop/meprop.hpp"
#include "reference.hpp"

using meprop::BackwardMode;
using meprop::ConstMatrix;

namespace {

struct Problem {
    std::size_t B, n_in, n_out, k;
    std::vector<double> dy, x, W;
};

Problem make_problem(std::size_t B, std::size_t n_in, std::size_t n_out, std::size_t k, unsigned seed) {
    std::mt19937 gen(seed);
    return {B,
            n_in,
            n_out,
            k,
            meprop_test::random_vector<double>(B * n_out, gen),
            meprop_test::random_vector<double>(B * n_in, gen),
            meprop_test::random_vector<double>(n_out * n_in, gen)};
}

// dy with everything outside the mode's kept entries set to zero.
std::vector<double> masked_dy(const Problem& p, BackwardMode mode) {
    std::vector<double> mask(p.dy.size(), 0.0);
    if (mode == BackwardMode::dense) return p.dy;
    if (mode == BackwardMode::per_example) {
        for (std::size_t b = 0; b < p.B; ++b) {
            std::vector<double> row(p.dy.begin() + b * p.n_out, p.dy.begin() + (b + 1) * p.n_out);
            for (auto j : meprop_test::reference_topk(row, p.k)) {
                mask[b * p.n_out + j] = p.dy[b * p.n_out + j];
            }
        }
    } else {
        std::vector<double> sums(p.n_out, 0.0);
        for (std::size_t b = 0; b < p.B; ++b)
            for (std::size_t j = 0; j < p.n_out; ++j) sums[j] += std::fabs(p.dy[b * p.n_out + j]);
        for (auto j : meprop_test::reference_topk(sums, p.k))
            for (std::size_t b = 0; b < p.B; ++b) mask[b * p.n_out + j] = p.dy[b * p.n_out + j];
    }
    return mask;
}

bool close(double a, double b) {
    return std::fabs(a - b) <= 1e-10 * (1.0 + std::fabs(b));
}

void check_against_reference(const Problem& p, BackwardMode mode) {
    const auto m = masked_dy(p, mode);
    const auto g = meprop::linear_backward(
        ConstMatrix<double>{p.dy.data(), p.B, p.n_out}, ConstMatrix<double>{p.x.data(), p.B, p.n_in},
        ConstMatrix<double>{p.W.data(), p.n_out, p.n_in}, p.k, mode, meprop::BiasGradient::sparse);
    for (std::size_t b = 0; b < p.B; ++b) {
        for (std::size_t i = 0; i < p.n_in; ++i) {
            double expected = 0.0;
            for (std::size_t j = 0; j < p.n_out; ++j) expected += m[b * p.n_out + j] * p.W[j * p.n_in + i];
            CHECK(close(g.dx[b * p.n_in + i], expected));
        }
    }
    std::vector<double> dW(p.n_out * p.n_in, 0.0);
    for (std::size_t r = 0; r < g.dW.rows.size(); ++r) {
        std::copy(g.dW.grads.begin() + r * p.n_in, g.dW.grads.begin() + (r + 1) * p.n_in,
                  dW.begin() + g.dW.rows[r] * p.n_in);
    }
    for (std::size_t j = 0; j < p.n_out; ++j) {
        double db = 0.0;
        for (std::size_t b = 0; b < p.B; ++b) db += m[b * p.n_out + j];
        CHECK(close(g.db[j], db));
        for (std::size_t i = 0; i < p.n_in; ++i) {
            double expected = 0.0;
            for (std::size_t b = 0; b < p.B; ++b) expected += m[b * p.n_out + j] * p.x[b * p.n_in + i];
            CHECK(close(dW[j * p.n_in + i], expected));
        }
    }
}

}  // namespace

TEST(linear_backward_matches_masked_dense_reference) {
    unsigned seed = 1;
    for (auto mode : {BackwardMode::per_example, BackwardMode::unified, BackwardMode::dense}) {
        check_against_reference(make_problem(1, 13, 9, 1, seed++), mode);
        check_against_reference(make_problem(1, 784, 50, 5, seed++), mode);
        check_against_reference(make_problem(7, 600, 40, 40, seed++), mode);
        check_against_reference(make_problem(32, 37, 100, 10, seed++), mode);
    }
}

// A large batch with long per-unit lists (1,200 examples per unit over 9 MB
// of x, the parser's regime) matches too, whatever the thread count.
TEST(linear_backward_large_batch_matches_reference) {
    const auto p = make_problem(3000, 400, 50, 20, 11);
    check_against_reference(p, BackwardMode::per_example);
    const int before = meprop::num_threads();
    auto run = [&](int threads) {
        meprop::set_num_threads(threads);
        return meprop::linear_backward(ConstMatrix<double>{p.dy.data(), p.B, p.n_out},
                                       ConstMatrix<double>{p.x.data(), p.B, p.n_in},
                                       ConstMatrix<double>{p.W.data(), p.n_out, p.n_in}, p.k);
    };
    const auto one = run(1), three = run(3);
    CHECK(one.dW.grads == three.dW.grads);
    CHECK(one.dx == three.dx);
    meprop::set_num_threads(before);
}

TEST(weight_grad_accumulate_leaves_untouched_rows) {
    const auto p = make_problem(4, 8, 30, 2, 5);
    ConstMatrix<double> dy{p.dy.data(), p.B, p.n_out}, x{p.x.data(), p.B, p.n_in};
    meprop::IndexSets sets;
    const auto ids = meprop::select_index_sets(dy, BackwardMode::per_example, p.k, sets);
    const auto rows = meprop::sparse_weight_grad(dy, x, sets);
    std::vector<double> dW(p.n_out * p.n_in, 1.0);
    meprop::sparse_weight_grad_accumulate(dy, x, sets, meprop::Matrix<double>{dW.data(), p.n_out, p.n_in});
    std::vector<bool> touched(p.n_out, false);
    for (std::size_t r = 0; r < rows.rows.size(); ++r) {
        touched[rows.rows[r]] = true;
        for (std::size_t i = 0; i < p.n_in; ++i)
            CHECK(close(dW[rows.rows[r] * p.n_in + i], 1.0 + rows.grads[r * p.n_in + i]));
    }
    for (std::size_t j = 0; j < p.n_out; ++j)
        if (!touched[j])
            for (std::size_t i = 0; i < p.n_in; ++i) CHECK(dW[j * p.n_in + i] == 1.0);
}

TEST(linear_backward_independent_of_thread_count) {
    // Large enough for the parallel path; 500 columns leave a ragged edge tile.
    const auto p = make_problem(128, 500, 300, 20, 9);
    const int before = meprop::num_threads();
    for (auto mode : {BackwardMode::per_example, BackwardMode::unified, BackwardMode::dense}) {
        auto run = [&](int threads) {
            meprop::set_num_threads(threads);
            return meprop::linear_backward(ConstMatrix<double>{p.dy.data(), p.B, p.n_out},
                                           ConstMatrix<double>{p.x.data(), p.B, p.n_in},
                                           ConstMatrix<double>{p.W.data(), p.n_out, p.n_in}, p.k, mode);
        };
        const auto one = run(1), three = run(3);
        CHECK(one.dx == three.dx);
        CHECK(one.dW.rows == three.dW.rows);
        CHECK(one.dW.grads == three.dW.grads);
    }
    meprop::set_num_threads(before);
}

TEST(index_sets_are_validated) {
    const std::int64_t unsorted[] = {3, 1};
    const std::int64_t out_of_range[] = {0, 10};
    CHECK_THROWS(meprop::validate_index_sets({unsorted, 1, 2}, 4, 10));
    CHECK_THROWS(meprop::validate_index_sets({out_of_range, 1, 2}, 4, 10));
    CHECK_THROWS(meprop::validate_index_sets({out_of_range, 2, 1}, 4, 10));
    CHECK_THROWS(meprop::parse_backward_mode("sparse"));
    std::vector<double> dy(4 * 10), x(4 * 3), W(9 * 3);
    CHECK_THROWS(meprop::linear_backward(ConstMatrix<double>{dy.data(), 4, 10},
                                         ConstMatrix<double>{x.data(), 4, 3},
                                         ConstMatrix<double>{W.data(), 9, 3}, 2));
    CHECK_THROWS(meprop::linear_backward(ConstMatrix<double>{dy.data(), 4, 10},
                                         ConstMatrix<double>{x.data(), 4, 3},
                                         ConstMatrix<double>{W.data(), 10, 3}, 11));
}

TEST(count_selected_adds_one_per_example_that_kept_a_unit) {
    // Two examples with their own sets, then one set shared by three examples.
    const std::int64_t per_example[] = {0, 3, 3, 4};
    std::vector<std::int64_t> counts(5, 1);
    meprop::count_selected({per_example, 2, 2}, 2, 5, counts.data());
    CHECK((counts == std::vector<std::int64_t>{2, 1, 1, 3, 2}));
    const std::int64_t shared[] = {1, 2};
    meprop::count_selected({shared, 1, 2}, 3, 5, counts.data());
    CHECK((counts == std::vector<std::int64_t>{2, 4, 4, 3, 2}));
    const std::int64_t unsorted[] = {2, 1};
    CHECK_THROWS(meprop::count_selected({unsorted, 1, 2}, 3, 5, counts.data()));
    CHECK_THROWS(meprop::count_selected({shared, 1, 2}, 3, 5, nullptr));
}
