// Error feedback against a plain loop over the definition in error_feedback.hpp.
#include <cmath>
#include <random>
#include <vector>

#include "harness.hpp"
#include "meprop/meprop.hpp"
#include "reference.hpp"

using meprop::BackwardMode;
using meprop::ConstMatrix;
using meprop::Matrix;

namespace {

// u = dy + memory / B; the kept sets of u by mode; memory' = decay * dropped sums.
struct Expected {
    std::vector<double> u, memory;
    std::vector<std::vector<std::size_t>> kept;  // per example
};

Expected reference_step(const std::vector<double>& dy, std::size_t B, std::size_t n,
                        const std::vector<double>& memory, std::size_t k, BackwardMode mode, double decay) {
    Expected e;
    e.u = dy;
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t j = 0; j < n; ++j) e.u[b * n + j] += memory[j] / static_cast<double>(B);
    e.kept.resize(B);
    if (mode == BackwardMode::per_example) {
        for (std::size_t b = 0; b < B; ++b) {
            std::vector<double> row(e.u.begin() + b * n, e.u.begin() + (b + 1) * n);
            for (auto j : meprop_test::reference_topk(row, k)) e.kept[b].push_back(j);
        }
    } else {
        std::vector<double> sums(n, 0.0);
        for (std::size_t b = 0; b < B; ++b)
            for (std::size_t j = 0; j < n; ++j) sums[j] += std::fabs(e.u[b * n + j]);
        const auto cols = meprop_test::reference_topk(sums, k);
        for (std::size_t b = 0; b < B; ++b)
            for (auto j : cols) e.kept[b].push_back(j);
    }
    e.memory.assign(n, 0.0);
    for (std::size_t b = 0; b < B; ++b) {
        std::vector<bool> keep(n, false);
        for (auto j : e.kept[b]) keep[j] = true;
        for (std::size_t j = 0; j < n; ++j)
            if (!keep[j]) e.memory[j] += e.u[b * n + j];
    }
    for (auto& m : e.memory) m *= decay;
    return e;
}

bool close(double a, double b) {
    return std::fabs(a - b) <= 1e-12 * (1.0 + std::fabs(b));
}

void check_steps(std::size_t B, std::size_t n, std::size_t k, BackwardMode mode, double decay,
                 unsigned seed) {
    std::mt19937 gen(seed);
    std::vector<double> memory(n, 0.0), expected_memory(n, 0.0);
    for (int step = 0; step < 4; ++step) {  // the memory carries over steps
        const auto dy = meprop_test::random_vector<double>(B * n, gen);
        const auto e = reference_step(dy, B, n, expected_memory, k, mode, decay);
        std::vector<double> corrected(B * n);
        meprop::ErrorMemory<double> mem{memory.data(), n, decay};
        meprop::IndexSets sets;
        const auto ids = meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), B, n}, mode, k, mem,
                                                          Matrix<double>{corrected.data(), B, n}, sets);
        for (std::size_t i = 0; i < B * n; ++i) CHECK(close(corrected[i], e.u[i]));
        for (std::size_t b = 0; b < B; ++b) {
            const auto* s = sets.set(b);
            CHECK(sets.k == e.kept[b].size());
            for (std::size_t t = 0; t < sets.k; ++t) CHECK(static_cast<std::size_t>(s[t]) == e.kept[b][t]);
        }
        for (std::size_t j = 0; j < n; ++j) CHECK(close(memory[j], e.memory[j]));
        expected_memory = e.memory;
    }
}

}  // namespace

TEST(error_feedback_matches_reference_per_example) {
    check_steps(5, 17, 3, BackwardMode::per_example, 0.8, 1);
    check_steps(1, 9, 1, BackwardMode::per_example, 1.0, 2);  // B = 1, k = 1
    check_steps(3, 8, 8, BackwardMode::per_example, 0.5, 3);  // k = n: nothing dropped
}

TEST(error_feedback_matches_reference_unified) {
    check_steps(6, 20, 4, BackwardMode::unified, 0.8, 4);
    check_steps(2, 5, 5, BackwardMode::unified, 1.0, 5);
}

TEST(error_feedback_dense_mode_empties_the_memory) {
    std::vector<double> dy{1, -2, 3, 4, 5, -6}, memory{0.5, -1, 2}, corrected(6);
    meprop::ErrorMemory<double> mem{memory.data(), 3, 1.0};
    meprop::IndexSets sets;
    meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3}, BackwardMode::dense, 3, mem,
                                     Matrix<double>{corrected.data(), 2, 3}, sets);
    for (double m : memory) CHECK(m == 0.0);
    CHECK(corrected[0] == 1.25 && corrected[5] == -5.0);
}

TEST(error_feedback_decay_zero_is_plain_topk) {
    std::mt19937 gen(7);
    const auto dy = meprop_test::random_vector<float>(4 * 12, gen);
    std::vector<float> memory(12, 0.0f), corrected(4 * 12);
    meprop::ErrorMemory<float> mem{memory.data(), 12, 0.0f};
    meprop::IndexSets sets, plain;
    const auto ids =
        meprop::select_with_error_memory(ConstMatrix<float>{dy.data(), 4, 12}, BackwardMode::per_example, 3,
                                         mem, Matrix<float>{corrected.data(), 4, 12}, sets);
    const auto plain_ids =
        meprop::select_index_sets(ConstMatrix<float>{dy.data(), 4, 12}, BackwardMode::per_example, 3, plain);
    CHECK(ids == plain_ids);
    for (float m : memory) CHECK(m == 0.0f);
}

TEST(error_feedback_forgets_non_finite_gradients) {
    std::vector<double> dy{NAN, 1.0, 2.0, INFINITY, 0.5, 0.25}, memory(3, 0.0), corrected(6);
    meprop::ErrorMemory<double> mem{memory.data(), 3, 1.0};
    meprop::IndexSets sets;
    meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3}, BackwardMode::per_example, 1, mem,
                                     Matrix<double>{corrected.data(), 2, 3}, sets);
    for (double m : memory) CHECK(std::isfinite(m));
}

TEST(error_feedback_rejects_bad_memory) {
    std::vector<double> dy(6, 1.0), memory(3, 0.0), corrected(6);
    meprop::IndexSets sets;
    meprop::ErrorMemory<double> short_memory{memory.data(), 2, 1.0};
    CHECK_THROWS(meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3},
                                                  BackwardMode::per_example, 1, short_memory,
                                                  Matrix<double>{corrected.data(), 2, 3}, sets));
    meprop::ErrorMemory<double> bad_decay{memory.data(), 3, 1.5};
    CHECK_THROWS(meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3},
                                                  BackwardMode::per_example, 1, bad_decay,
                                                  Matrix<double>{corrected.data(), 2, 3}, sets));
    meprop::ErrorMemory<double> nan_decay{memory.data(), 3, NAN};
    CHECK_THROWS(meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3},
                                                  BackwardMode::per_example, 1, nan_decay,
                                                  Matrix<double>{corrected.data(), 2, 3}, sets));
    meprop::ErrorMemory<double> ok{memory.data(), 3, 1.0};
    CHECK_THROWS(meprop::select_with_error_memory(ConstMatrix<double>{dy.data(), 2, 3},
                                                  BackwardMode::per_example, 1, ok,
                                                  Matrix<double>{corrected.data(), 1, 3}, sets));
}
