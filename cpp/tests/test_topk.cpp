#include <cmath>
#include <limits>
#include <stdexcept>

#include "harness.hpp"
#include "meprop/meprop.hpp"
#include "reference.hpp"

using meprop::SelectMethod;
using meprop_test::reference_topk;

namespace {

template <class T>
void check_all_methods(const std::vector<T>& a, std::size_t k) {
    const auto expected = reference_topk(a, k);
    for (auto method :
         {SelectMethod::automatic, SelectMethod::heap, SelectMethod::radix, SelectMethod::threshold}) {
        std::vector<std::int64_t> got(k);
        meprop::topk(a.data(), a.size(), k, got.data(), method);
        CHECK(got == expected);
    }
}

template <class T>
void random_shapes() {
    std::mt19937 gen(7);
    for (std::size_t n : {1, 2, 7, 64, 255, 500, 1000, 4096}) {
        for (std::size_t k : {std::size_t{1}, std::size_t{5}, std::size_t{17}, std::size_t{32},
                              std::size_t{33}, std::size_t{40}, std::size_t{64}, std::size_t{65}, n}) {
            if (k > n) continue;
            check_all_methods(meprop_test::random_vector<T>(n, gen), k);
            check_all_methods(meprop_test::random_vector<T>(n, gen, 5), k);  // many ties
        }
    }
}

}  // namespace

TEST(topk_matches_reference_float) {
    random_shapes<float>();
}
TEST(topk_matches_reference_double) {
    random_shapes<double>();
}

TEST(topk_nan_ranks_above_inf) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> a(600, 1.0f);
    a[3] = inf;
    a[500] = nan;
    a[501] = -nan;
    check_all_methods(a, 1);  // {500}
    check_all_methods(a, 2);  // {500, 501}
    check_all_methods(a, 3);  // {3, 500, 501}
    std::vector<std::int64_t> got(1);
    meprop::topk(a.data(), a.size(), 1, got.data(), SelectMethod::radix);
    CHECK(got[0] == 500);
}

TEST(topk_signed_zero_ties) {
    std::vector<double> a = {0.0, -0.0, 0.0, -0.0, 0.0};
    check_all_methods(a, 2);
    std::vector<std::int64_t> got(2);
    meprop::topk(a.data(), a.size(), 2, got.data(), SelectMethod::heap);
    CHECK(got[0] == 0 && got[1] == 1);
}

TEST(topk_rejects_bad_k) {
    std::vector<float> a(10, 1.0f);
    std::vector<std::int64_t> out(11);
    CHECK_THROWS(meprop::topk(a.data(), a.size(), 0, out.data()));
    CHECK_THROWS(meprop::topk(a.data(), a.size(), 11, out.data()));
    CHECK_THROWS(meprop::parse_select_method("quick"));
}

TEST(topk_rows_and_unified_match_reference) {
    std::mt19937 gen(11);
    const std::size_t B = 64, n = 700, k = 20;
    const auto a = meprop_test::random_vector<float>(B * n, gen);
    std::vector<std::int64_t> rows(B * k);
    meprop::topk_rows(meprop::ConstMatrix<float>{a.data(), B, n}, k, rows.data());
    std::vector<double> sums(n, 0.0);
    for (std::size_t b = 0; b < B; ++b) {
        const std::vector<float> row(a.begin() + b * n, a.begin() + (b + 1) * n);
        const auto expected = reference_topk(row, k);
        CHECK(std::equal(expected.begin(), expected.end(), rows.begin() + b * k));
    }
    // Integer-valued entries make the float sums exact, so the reference can
    // sum in double and still see the same ties.
    const auto ints = meprop_test::random_vector<float>(B * n, gen, 9);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t j = 0; j < n; ++j) sums[j] += std::fabs(ints[b * n + j]);
    std::vector<std::int64_t> unified(k);
    meprop::topk_unified(meprop::ConstMatrix<float>{ints.data(), B, n}, k, unified.data());
    CHECK(unified == reference_topk(sums, k));
}

TEST(topk_rows_independent_of_thread_count) {
    std::mt19937 gen(3);
    const std::size_t B = 256, n = 1000, k = 33;
    const auto a = meprop_test::random_vector<double>(B * n, gen);
    std::vector<std::int64_t> one(B * k), many(B * k);
    meprop::set_num_threads(1);
    meprop::topk_rows(meprop::ConstMatrix<double>{a.data(), B, n}, k, one.data());
    meprop::set_num_threads(3);
    meprop::topk_rows(meprop::ConstMatrix<double>{a.data(), B, n}, k, many.data());
    CHECK(one == many);
    CHECK_THROWS(meprop::set_num_threads(0));
}
