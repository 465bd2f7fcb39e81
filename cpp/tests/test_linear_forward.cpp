#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "harness.hpp"
#include "meprop/meprop.hpp"
#include "reference.hpp"

using meprop::ConstMatrix;
using meprop::Matrix;

namespace {

// y = x W^T + b against a plain triple loop, over shapes that exercise every
// tile remainder (B and n_out not multiples of the tile, n_in below and above
// one vector) and the parallel path.
template <class T>
void check_shape(std::size_t B, std::size_t n_in, std::size_t n_out, bool with_bias, double tol) {
    std::mt19937 gen(static_cast<unsigned>(B * 1000 + n_in * 10 + n_out));
    const auto x = meprop_test::random_vector<T>(B * n_in, gen);
    const auto W = meprop_test::random_vector<T>(n_out * n_in, gen);
    const auto b = meprop_test::random_vector<T>(n_out, gen);
    std::vector<T> y(B * n_out, T(-7));
    meprop::linear_forward<T>({x.data(), B, n_in}, {W.data(), n_out, n_in}, with_bias ? b.data() : nullptr,
                              {y.data(), B, n_out});
    for (std::size_t r = 0; r < B; ++r) {
        for (std::size_t j = 0; j < n_out; ++j) {
            double expected = with_bias ? double(b[j]) : 0.0, scale = std::fabs(expected);
            for (std::size_t i = 0; i < n_in; ++i) {
                expected += double(x[r * n_in + i]) * double(W[j * n_in + i]);
                scale += std::fabs(double(x[r * n_in + i]) * double(W[j * n_in + i]));
            }
            CHECK(std::fabs(double(y[r * n_out + j]) - expected) <= tol * (1.0 + scale));
        }
    }
}

}  // namespace

TEST(linear_forward_matches_the_reference) {
    const std::size_t shapes[][3] = {{1, 1, 1},     {1, 784, 500}, {10, 784, 500}, {3, 7, 5},  {5, 17, 3},
                                     {33, 100, 17}, {64, 65, 9},   {70, 9, 33},    {4, 16, 2}, {2, 31, 1}};
    for (const auto& s : shapes) {
        for (bool bias : {true, false}) {
            check_shape<float>(s[0], s[1], s[2], bias, 1e-5);
            check_shape<double>(s[0], s[1], s[2], bias, 1e-13);
        }
    }
}

TEST(linear_forward_is_thread_count_independent) {
    std::mt19937 gen(5);
    const std::size_t B = 40, n_in = 300, n_out = 200;  // above the parallel threshold
    const auto x = meprop_test::random_vector<float>(B * n_in, gen);
    const auto W = meprop_test::random_vector<float>(n_out * n_in, gen);
    std::vector<float> one(B * n_out), many(B * n_out);
    const int before = meprop::num_threads();
    meprop::set_num_threads(1);
    meprop::linear_forward<float>({x.data(), B, n_in}, {W.data(), n_out, n_in}, nullptr,
                                  {one.data(), B, n_out});
    meprop::set_num_threads(3);
    meprop::linear_forward<float>({x.data(), B, n_in}, {W.data(), n_out, n_in}, nullptr,
                                  {many.data(), B, n_out});
    meprop::set_num_threads(before);
    CHECK(one == many);
}

TEST(linear_forward_rejects_mismatched_shapes) {
    std::vector<float> x(6), W(6), y(4);
    bool threw = false;
    try {
        meprop::linear_forward<float>({x.data(), 2, 3}, {W.data(), 3, 2}, nullptr, {y.data(), 2, 2});
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
    threw = false;
    try {
        meprop::linear_forward<float>({x.data(), 2, 3}, {W.data(), 2, 3}, nullptr, {y.data(), 1, 4});
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
}
