// The LSTM kernels against a plain step-by-step reference written from the
// equations in lstm.hpp: forward, and backward with dz masked to the top-k.
#include <cmath>
#include <stdexcept>

#include "harness.hpp"
#include "meprop/meprop.hpp"
#include "reference.hpp"

using meprop::ConstMatrix;
using meprop::Matrix;

namespace {

struct LstmProblem {
    std::size_t n_in, h, k;
    std::vector<std::int64_t> offsets;
    std::vector<double> x, W_ih, W_hh, b, dh;
    bool per_gate = false;  // keep k/4 of each gate's entries instead of k of all
    std::size_t N() const { return static_cast<std::size_t>(offsets.back()); }
};

LstmProblem make_lstm(std::vector<std::int64_t> lengths, std::size_t n_in, std::size_t h, std::size_t k,
                      unsigned seed) {
    std::mt19937 gen(seed);
    LstmProblem p{n_in, h, k, {0}, {}, {}, {}, {}, {}};
    for (auto n : lengths) p.offsets.push_back(p.offsets.back() + n);
    const std::size_t N = p.N(), G = 4 * h;
    p.x = meprop_test::random_vector<double>(N * n_in, gen);
    p.W_ih = meprop_test::random_vector<double>(G * n_in, gen);
    p.W_hh = meprop_test::random_vector<double>(G * h, gen);
    p.b = meprop_test::random_vector<double>(G, gen);
    p.dh = meprop_test::random_vector<double>(N * h, gen);
    for (auto& w : p.W_ih) w /= std::sqrt(double(n_in));
    for (auto& w : p.W_hh) w /= std::sqrt(double(h));
    return p;
}

double sig(double z) {
    return 1.0 / (1.0 + std::exp(-z));
}

// Reference forward + masked backward; returns (dx, dW_ih, dW_hh, db) dense.
struct RefGrads {
    std::vector<double> hidden, dx, dW_ih, dW_hh, db;
};

RefGrads reference(const LstmProblem& p) {
    const std::size_t N = p.N(), h = p.h, G = 4 * h, n_in = p.n_in;
    std::vector<double> a(N * G), c(N * h), hid(N * h);
    for (std::size_t s = 0; s + 1 < p.offsets.size(); ++s) {
        for (auto t = std::size_t(p.offsets[s]); t < std::size_t(p.offsets[s + 1]); ++t) {
            const bool first = t == std::size_t(p.offsets[s]);
            for (std::size_t j = 0; j < G; ++j) {
                double z = p.b[j];
                for (std::size_t i = 0; i < n_in; ++i) z += p.W_ih[j * n_in + i] * p.x[t * n_in + i];
                if (!first)
                    for (std::size_t i = 0; i < h; ++i) z += p.W_hh[j * h + i] * hid[(t - 1) * h + i];
                a[t * G + j] = (j >= 2 * h && j < 3 * h) ? std::tanh(z) : sig(z);
            }
            for (std::size_t u = 0; u < h; ++u) {
                const double cp = first ? 0.0 : c[(t - 1) * h + u];
                c[t * h + u] = a[t * G + h + u] * cp + a[t * G + u] * a[t * G + 2 * h + u];
                hid[t * h + u] = a[t * G + 3 * h + u] * std::tanh(c[t * h + u]);
            }
        }
    }
    RefGrads r{hid, std::vector<double>(N * n_in), std::vector<double>(G * n_in), std::vector<double>(G * h),
               std::vector<double>(G)};
    for (std::size_t s = 0; s + 1 < p.offsets.size(); ++s) {
        std::vector<double> dh_next(h, 0.0), dc_next(h, 0.0);
        for (auto t = std::size_t(p.offsets[s + 1]); t-- > std::size_t(p.offsets[s]);) {
            const bool first = t == std::size_t(p.offsets[s]);
            std::vector<double> dz(G);
            for (std::size_t u = 0; u < h; ++u) {
                const double i = a[t * G + u], f = a[t * G + h + u], g = a[t * G + 2 * h + u],
                             o = a[t * G + 3 * h + u], tc = std::tanh(c[t * h + u]);
                const double dh = p.dh[t * h + u] + dh_next[u];
                const double dc = dc_next[u] + dh * o * (1 - tc * tc);
                const double cp = first ? 0.0 : c[(t - 1) * h + u];
                dz[u] = dc * g * i * (1 - i);
                dz[h + u] = dc * cp * f * (1 - f);
                dz[2 * h + u] = dc * i * (1 - g * g);
                dz[3 * h + u] = dh * tc * o * (1 - o);
                dc_next[u] = dc * f;
            }
            for (std::size_t j = 0; j < G; ++j) r.db[j] += dz[j];  // dense bias gradient
            std::vector<double> m(G, 0.0);
            if (p.per_gate) {
                for (std::size_t gate = 0; gate < 4; ++gate) {
                    const std::vector<double> block(dz.begin() + gate * h, dz.begin() + (gate + 1) * h);
                    for (auto j : meprop_test::reference_topk(block, p.k / 4)) m[gate * h + j] = block[j];
                }
            } else {
                for (auto j : meprop_test::reference_topk(dz, p.k)) m[j] = dz[j];
            }
            std::fill(dh_next.begin(), dh_next.end(), 0.0);
            for (std::size_t j = 0; j < G; ++j) {
                if (m[j] == 0.0) continue;
                for (std::size_t i = 0; i < n_in; ++i) {
                    r.dx[t * n_in + i] += m[j] * p.W_ih[j * n_in + i];
                    r.dW_ih[j * n_in + i] += m[j] * p.x[t * n_in + i];
                }
                for (std::size_t i = 0; i < h; ++i) {
                    dh_next[i] += m[j] * p.W_hh[j * h + i];
                    if (!first) r.dW_hh[j * h + i] += m[j] * hid[(t - 1) * h + i];
                }
            }
        }
    }
    return r;
}

struct Run {
    std::vector<double> hidden;
    meprop::LstmGradients<double> g;
};

Run run(const LstmProblem& p) {
    const std::size_t N = p.N(), h = p.h, G = 4 * h, n_in = p.n_in;
    std::vector<double> in(N * G), gates(N * G), cells(N * h), tanhs(N * h), hid(N * h);
    for (std::size_t t = 0; t < N; ++t)
        for (std::size_t j = 0; j < G; ++j) {
            double z = p.b[j];
            for (std::size_t i = 0; i < n_in; ++i) z += p.W_ih[j * n_in + i] * p.x[t * n_in + i];
            in[t * G + j] = z;
        }
    const meprop::Sequences seqs{p.offsets.data(), p.offsets.size() - 1};
    const meprop::LstmCache<double> cache{
        {gates.data(), N, G}, {cells.data(), N, h}, {tanhs.data(), N, h}, {hid.data(), N, h}};
    const ConstMatrix<double> W_hh{p.W_hh.data(), G, h};
    meprop::lstm_forward<double>({in.data(), N, G}, W_hh, seqs, cache);
    auto g = meprop::lstm_backward<double>(
        {p.x.data(), N, n_in}, {p.W_ih.data(), G, n_in}, W_hh, seqs, cache, {p.dh.data(), N, h}, p.k,
        p.per_gate ? meprop::GateSelection::per_gate : meprop::GateSelection::together);
    return {hid, std::move(g)};
}

bool near(double a, double b) {
    return std::fabs(a - b) <= 1e-9 * (1.0 + std::fabs(b));
}

void check_rows(const meprop::RowGradients<double>& got, const std::vector<double>& ref) {
    std::vector<double> dense(ref.size(), 0.0);
    for (std::size_t r = 0; r < got.rows.size(); ++r)
        for (std::size_t c = 0; c < got.cols; ++c)
            dense[std::size_t(got.rows[r]) * got.cols + c] = got.grads[r * got.cols + c];
    for (std::size_t i = 0; i < ref.size(); ++i) CHECK(near(dense[i], ref[i]));
}

void check_problem(const LstmProblem& p) {
    const auto r = reference(p);
    const auto got = run(p);
    for (std::size_t i = 0; i < r.hidden.size(); ++i) CHECK(near(got.hidden[i], r.hidden[i]));
    for (std::size_t i = 0; i < r.dx.size(); ++i) CHECK(near(got.g.dx[i], r.dx[i]));
    for (std::size_t i = 0; i < r.db.size(); ++i) CHECK(near(got.g.db[i], r.db[i]));
    check_rows(got.g.dW_ih, r.dW_ih);
    check_rows(got.g.dW_hh, r.dW_hh);
}

}  // namespace

TEST(lstm_matches_masked_reference) {
    for (std::size_t k : {1, 3, 8, 16}) check_problem(make_lstm({5}, 3, 4, k, 1 + unsigned(k)));
    check_problem(make_lstm({1}, 2, 3, 2, 7));
    check_problem(make_lstm({3, 0, 6, 1}, 5, 6, 4, 11));  // variable lengths, an empty one
    check_problem(make_lstm({4, 2}, 3, 5, 20, 13));       // k = 4h: dense
}

TEST(lstm_per_gate_selection_matches_masked_reference) {
    for (std::size_t k : {4, 8, 12, 24}) {  // 24 = 4h: dense
        auto p = make_lstm({5, 2}, 3, 6, k, 31 + unsigned(k));
        p.per_gate = true;
        check_problem(p);
    }
    auto p = make_lstm({3}, 2, 4, 6, 5);  // not a multiple of 4
    p.per_gate = true;
    bool threw = false;
    try {
        run(p);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
}

TEST(lstm_results_do_not_depend_on_threads) {
    const auto p = make_lstm({7, 3, 9, 1, 4}, 6, 8, 5, 17);
    meprop::set_num_threads(1);
    const auto one = run(p);
    meprop::set_num_threads(3);
    const auto three = run(p);
    CHECK(one.g.dx == three.g.dx);
    CHECK(one.g.dW_hh.grads == three.g.dW_hh.grads);
    CHECK(one.g.kept == three.g.kept);
    CHECK(one.hidden == three.hidden);
}

TEST(lstm_rejects_bad_input) {
    auto p = make_lstm({3}, 2, 4, 17, 19);  // k > 4h
    bool threw = false;
    try {
        run(p);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
    p = make_lstm({3}, 2, 4, 2, 19);
    p.offsets = {0, 2, 1, 3};  // decreasing
    threw = false;
    try {
        run(p);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
}

TEST(lstm_rejects_null_weights_and_hidden) {
    const std::size_t h = 2, G = 4 * h, N = 3;
    std::vector<float> input_gates(N * G), gates(N * G), cells(N * h), tanhs(N * h), hidden(N * h);
    const std::vector<std::int64_t> offsets = {0, 3};
    const meprop::Sequences seqs{offsets.data(), 1};
    const meprop::LstmCache<float> cache{
        {gates.data(), N, G}, {cells.data(), N, h}, {tanhs.data(), N, h}, {hidden.data(), N, h}};
    bool threw = false;
    try {
        meprop::lstm_forward<float>({input_gates.data(), N, G}, {nullptr, G, h}, seqs, cache);
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
    threw = false;
    std::vector<float> out(N * h);
    try {
        meprop::lstm_previous_hidden<float>({nullptr, N, h}, seqs, {out.data(), N, h});
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw);
}
