// Adam's deferred decay against decaying the moments in place.
#include <cmath>
#include <random>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

#include "harness.hpp"
#include "meprop/meprop.hpp"

using meprop::Matrix;

namespace {

template <class T>
struct AdamRun {
    std::vector<T> p, m, v;
    std::vector<double> d1, d2;

    AdamRun(std::size_t rows, std::size_t cols, T start)
        : p(rows * cols, start), m(rows * cols), v(rows * cols), d1(rows, 1.0), d2(rows, 1.0) {}

    void step(std::size_t rows, std::size_t cols, const std::vector<std::int64_t>& ids,
              const std::vector<T>& g, std::int64_t t, bool deferred) {
        const meprop::AdamConfig c{0.01, 0.9, 0.999, 1e-8, 2.0};
        const meprop::AdamRowDecay decay =
            deferred ? meprop::AdamRowDecay{d1.data(), d2.data()} : meprop::AdamRowDecay{};
        meprop::adam_update(Matrix<T>{p.data(), rows, cols}, meprop::RowGradientView{ids.data(), ids.size()},
                            g.data(), Matrix<T>{m.data(), rows, cols}, Matrix<T>{v.data(), rows, cols}, t, c,
                            false, decay);
    }
};

template <class T>
void deferred_matches_in_place(double tol) {
    const std::size_t rows = 9, cols = 5;
    std::mt19937 gen(3);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> unit;
    AdamRun<T> eager(rows, cols, T(0.5)), lazy_decay(rows, cols, T(0.5));
    for (std::int64_t t = 1; t <= 400; ++t) {
        std::vector<std::int64_t> ids;
        for (std::size_t r = 0; r < rows; ++r) {
            if (unit(gen) < 1.0 / static_cast<double>(1 + r * r)) ids.push_back(static_cast<std::int64_t>(r));
        }
        std::vector<T> g(ids.size() * cols);
        for (auto& x : g) x = static_cast<T>(3 * normal(gen));
        eager.step(rows, cols, ids, g, t, false);
        lazy_decay.step(rows, cols, ids, g, t, true);
    }
    for (std::size_t i = 0; i < rows * cols; ++i) {
        const std::size_t r = i / cols;
        CHECK(std::abs(eager.p[i] - lazy_decay.p[i]) <= tol * (1 + std::abs(eager.p[i])));
        const double m = lazy_decay.d1[r] * lazy_decay.m[i], v = lazy_decay.d2[r] * lazy_decay.v[i];
        CHECK(std::abs(eager.m[i] - m) <= 10 * tol * (1e-30 + std::abs(eager.m[i])));
        CHECK(std::abs(eager.v[i] - v) <= 10 * tol * (1e-30 + std::abs(eager.v[i])));
    }
    CHECK(lazy_decay.d1[0] == 1.0);  // row 0 gets a gradient every step
}

}  // namespace

TEST(adam_deferred_decay_matches_in_place_double) {
    deferred_matches_in_place<double>(1e-11);
}
TEST(adam_deferred_decay_matches_in_place_float) {
    deferred_matches_in_place<float>(1e-5);
}

TEST(adam_deferred_decay_needs_both_arrays) {
    std::vector<double> p(4, 0.0), m(4), v(4), d(2, 1.0), g(2, 1.0);
    const std::int64_t row[] = {1};
    CHECK_THROWS(meprop::adam_update(Matrix<double>{p.data(), 2, 2}, meprop::RowGradientView{row, 1},
                                     g.data(), Matrix<double>{m.data(), 2, 2}, Matrix<double>{v.data(), 2, 2},
                                     1, meprop::AdamConfig{}, false,
                                     meprop::AdamRowDecay{d.data(), nullptr}));
    for (const double value : p) CHECK(value == 0.0);
}

#if defined(__x86_64__) || defined(_M_X64)
// Moments below float's normal range count as zero while an update runs (they
// would halve its speed), and the caller's floating-point mode is restored.
TEST(adam_update_flushes_subnormal_moments) {
    const float tiny = 1e-40f;  // subnormal
    std::vector<float> p = {1.0f, 1.0f}, m = {tiny, tiny}, v = {1e-4f, 1e-4f}, g = {0.0f, 0.0f};
    const std::int64_t row[] = {0};
    meprop::adam_update(Matrix<float>{p.data(), 2, 1}, meprop::RowGradientView{row, 1}, g.data(),
                        Matrix<float>{m.data(), 2, 1}, Matrix<float>{v.data(), 2, 1}, 1, meprop::AdamConfig{},
                        false);
    CHECK(m[0] == 0.0f);  // 0.9 * tiny + 0.1 * 0, flushed
    CHECK(m[1] == 0.0f);  // the row without gradient decays in place: flushed too
    CHECK(p[0] == 1.0f && p[1] == 1.0f);
    volatile float smallest_normal = 1.1754944e-38f;
    CHECK(smallest_normal * 0.5f != 0.0f);  // the caller still gets subnormals
}

// Exception flags raised during an update stay raised for the caller (only
// the control bits are restored).
TEST(adam_update_keeps_exception_flags_raised_meanwhile) {
    std::vector<float> p = {1.0f}, m = {0.0f}, v = {0.0f}, g = {0.3f};
    const std::int64_t row[] = {0};
    _mm_setcsr(_mm_getcsr() & ~0x3fu);  // clear the sticky flags
    meprop::adam_update(Matrix<float>{p.data(), 1, 1}, meprop::RowGradientView{row, 1}, g.data(),
                        Matrix<float>{m.data(), 1, 1}, Matrix<float>{v.data(), 1, 1}, 1, meprop::AdamConfig{},
                        false);
    CHECK((_mm_getcsr() & 0x20u) != 0);    // inexact: 0.1 * 0.3 is not exact in float
    CHECK((_mm_getcsr() & 0x8040u) == 0);  // and no flushing left on
}
#endif

// A row left without gradient long enough that its pending step factor falls
// under float's normal range stops moving, exactly as decaying its moments in
// place (where the first moment is flushed to zero) does.
TEST(adam_rows_idle_for_long_stop_moving) {
    const std::size_t rows = 2, cols = 3;
    AdamRun<float> eager(rows, cols, 0.5f), deferred(rows, cols, 0.5f);
    const std::vector<std::int64_t> both = {0, 1}, first = {0};
    const std::vector<float> g_both = {1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 0.25f};
    const std::vector<float> g_first = {0.1f, 0.2f, -0.3f};
    eager.step(rows, cols, both, g_both, 1, false);
    deferred.step(rows, cols, both, g_both, 1, true);
    std::vector<float> idle_row_before;
    for (std::int64_t t = 2; t <= 1200; ++t) {
        if (t == 1100) idle_row_before.assign(deferred.p.begin() + cols, deferred.p.end());
        eager.step(rows, cols, first, g_first, t, false);
        deferred.step(rows, cols, first, g_first, t, true);
    }
    // 0.9^1100 * lr is far below 1.2e-38: row 1 has not moved since.
    for (std::size_t i = 0; i < cols; ++i) CHECK(deferred.p[cols + i] == idle_row_before[i]);
    for (std::size_t i = 0; i < rows * cols; ++i) {
        CHECK(std::abs(eager.p[i] - deferred.p[i]) <= 1e-5f * (1 + std::abs(eager.p[i])));
    }
    CHECK(deferred.p[cols] != 0.5f);  // it did move while its moments mattered
}
