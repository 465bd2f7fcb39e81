// Slow, obvious references the kernels are checked against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace meprop_test {

// Rank by (NaN first, then larger |v|, then lower index); keep k; sort ids.
template <class T>
std::vector<std::int64_t> reference_topk(const std::vector<T>& a, std::size_t k) {
    std::vector<std::int64_t> ids(a.size());
    std::iota(ids.begin(), ids.end(), 0);
    auto rank = [&](std::int64_t i) {
        const T v = a[static_cast<std::size_t>(i)];
        return std::isnan(v) ? INFINITY : static_cast<double>(std::fabs(v));
    };
    std::stable_sort(ids.begin(), ids.end(), [&](std::int64_t l, std::int64_t r) {
        const bool ln = std::isnan(a[l]), rn = std::isnan(a[r]);
        if (ln != rn) return ln;
        return rank(l) > rank(r);
    });
    ids.resize(k);
    std::sort(ids.begin(), ids.end());
    return ids;
}

template <class T>
std::vector<T> random_vector(std::size_t n, std::mt19937& gen, int distinct_values = 0) {
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int> pick(0, std::max(distinct_values - 1, 0));
    std::vector<T> v(n);
    for (auto& x : v) {
        x = distinct_values > 0 ? static_cast<T>(pick(gen) - distinct_values / 2)
                                : static_cast<T>(normal(gen));
    }
    return v;
}

}  // namespace meprop_test
