// Trains one linear layer y = x W^T + b with meProp through the installed
// meprop library, and checks every step against a plain dense computation.
//
// The task: fit a fixed random "teacher" layer; the loss of a batch is
// mean_b 0.5 * |y_b - t_b|^2. Every step
//   1. runs the forward pass (dense, plain loops: the library does backward),
//   2. forms dy = dL/dy and lets meprop::linear_backward keep the k largest
//      |dy| of each example (the paper's meProp),
//   3. compares the library's indices, dx, touched rows of dW and db with a
//      naive computation: top-k by sorting, then the dense products with every
//      other entry of dy set to zero,
//   4. applies the touched rows of dW, and db, with meprop::sgd_update.
// It prints the loss on a fixed held-out batch as it falls, and exits 1 on any
// mismatch or if the loss does not fall.

#include <meprop/meprop.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

namespace {

constexpr std::size_t batch = 16, n_in = 32, n_out = 64, k = 8;
constexpr int steps = 200;
constexpr double lr = 0.05;

using Vec = std::vector<double>;
using Ids = std::vector<std::int64_t>;

// Counts mismatches and reports the first few.
struct Checker {
    int failures = 0;

    void expect(bool ok, int step, const char* what) {
        if (ok) return;
        if (++failures <= 5) std::fprintf(stderr, "MISMATCH at step %d: %s\n", step, what);
    }

    // Relative to the size of the numbers: the library and the loops below
    // may add the same terms in a different order.
    static bool close(const double* got, const double* want, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            if (!(std::abs(got[i] - want[i]) <= 1e-12 * (1.0 + std::abs(want[i])))) return false;
        }
        return true;
    }
};

Vec random_matrix(std::mt19937_64& gen, std::size_t rows, std::size_t cols, double scale) {
    std::normal_distribution<double> normal(0.0, scale);
    Vec m(rows * cols);
    for (double& v : m) v = normal(gen);
    return m;
}

// y = x W^T + b, x (rows x n_in), W (n_out x n_in): (rows x n_out).
Vec forward(const Vec& x, const Vec& W, const Vec& b) {
    const std::size_t rows = x.size() / n_in;
    Vec y(rows * n_out);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t j = 0; j < n_out; ++j) {
            double s = b[j];
            for (std::size_t i = 0; i < n_in; ++i) s += x[r * n_in + i] * W[j * n_in + i];
            y[r * n_out + j] = s;
        }
    }
    return y;
}

// mean_b 0.5 |y_b - t_b|^2, and its gradient dy (rows x n_out) if asked.
double loss(const Vec& y, const Vec& t, Vec* dy) {
    const std::size_t rows = y.size() / n_out;
    double total = 0.0;
    if (dy) dy->resize(y.size());
    for (std::size_t e = 0; e < y.size(); ++e) {
        const double d = y[e] - t[e];
        total += 0.5 * d * d;
        if (dy) (*dy)[e] = d / static_cast<double>(rows);
    }
    return total / static_cast<double>(rows);
}

// The k largest |v[j]|, ties to the lower index, in ascending index order.
Ids naive_topk(const double* v, std::size_t n) {
    Ids order(n);
    std::iota(order.begin(), order.end(), std::int64_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int64_t a, std::int64_t b) { return std::abs(v[a]) > std::abs(v[b]); });
    order.resize(k);
    std::sort(order.begin(), order.end());
    return order;
}

// One step's checks: the library's gradients against the naive ones.
void check_gradients(const Vec& dy, const Vec& x, const Vec& W, const meprop::LinearGradients<double>& g,
                     int step, Checker& check) {
    // Which entries of dy meProp keeps, and dy with all others set to zero.
    Vec masked(batch * n_out, 0.0);
    std::vector<bool> touched(n_out, false);
    for (std::size_t b = 0; b < batch; ++b) {
        const Ids ids = naive_topk(&dy[b * n_out], n_out);
        check.expect(std::equal(ids.begin(), ids.end(), g.indices.begin() + b * k), step,
                     "top-k indices differ from sorting");
        for (const std::int64_t j : ids) {
            masked[b * n_out + j] = dy[b * n_out + j];
            touched[j] = true;
        }
    }
    // The dense products of the masked dy.
    Vec dx(batch * n_in, 0.0), dW(n_out * n_in, 0.0), db(n_out, 0.0);
    for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t j = 0; j < n_out; ++j) {
            const double m = masked[b * n_out + j];
            for (std::size_t i = 0; i < n_in; ++i) {
                dx[b * n_in + i] += m * W[j * n_in + i];
                dW[j * n_in + i] += m * x[b * n_in + i];
            }
            db[j] += dy[b * n_out + j];  // the bias gradient stays dense (default)
        }
    }
    check.expect(g.dx.size() == dx.size() && Checker::close(g.dx.data(), dx.data(), dx.size()), step,
                 "dx differs from the dense product");
    check.expect(g.db.size() == db.size() && Checker::close(g.db.data(), db.data(), db.size()), step,
                 "db differs from the column sums of dy");
    Ids want_rows;
    for (std::size_t j = 0; j < n_out; ++j) {
        if (touched[j]) want_rows.push_back(static_cast<std::int64_t>(j));
    }
    check.expect(g.dW.rows == want_rows && g.dW.cols == n_in, step,
                 "touched rows of dW differ from the union of the top-k sets");
    if (g.dW.rows != want_rows) return;
    for (std::size_t r = 0; r < want_rows.size(); ++r) {
        check.expect(Checker::close(&g.dW.grads[r * n_in], &dW[want_rows[r] * n_in], n_in), step,
                     "a row of dW differs from the dense product");
    }
}

}  // namespace

int main() {
    std::printf("meprop %s, %d threads; layer %zu -> %zu, batch %zu, k = %zu\n", meprop::version,
                meprop::num_threads(), n_in, n_out, batch, k);
    std::mt19937_64 gen(2017);
    const Vec teacher_W = random_matrix(gen, n_out, n_in, 1.0 / std::sqrt(double(n_in)));
    const Vec teacher_b = random_matrix(gen, 1, n_out, 0.1);
    Vec W = random_matrix(gen, n_out, n_in, 0.01);
    Vec b(n_out, 0.0);
    const Vec eval_x = random_matrix(gen, 256, n_in, 1.0);
    const Vec eval_t = forward(eval_x, teacher_W, teacher_b);

    Checker check;
    const double first_loss = loss(forward(eval_x, W, b), eval_t, nullptr);
    double last_loss = first_loss;
    std::printf("step %4d  held-out loss %9.5f\n", 0, first_loss);
    for (int step = 1; step <= steps; ++step) {
        const Vec x = random_matrix(gen, batch, n_in, 1.0);
        Vec dy;
        loss(forward(x, W, b), forward(x, teacher_W, teacher_b), &dy);

        // The views only point at our vectors: the library never owns them.
        const meprop::ConstMatrix<double> dy_view{dy.data(), batch, n_out};
        const meprop::ConstMatrix<double> x_view{x.data(), batch, n_in};
        const meprop::ConstMatrix<double> W_view{W.data(), n_out, n_in};

        // Top-k on its own, then the whole backward (which selects again).
        Ids ids(batch * k);
        meprop::topk_rows(dy_view, k, ids.data());
        const auto g = meprop::linear_backward(dy_view, x_view, W_view, k);
        check.expect(ids == g.indices, step, "topk_rows and linear_backward chose different sets");
        check_gradients(dy, x, W, g, step, check);

        // SGD on the touched rows of W only, and on b (one row of n_out).
        const Vec W_before = W;
        meprop::sgd_update(meprop::Matrix<double>{W.data(), n_out, n_in},
                           meprop::RowGradientView{g.dW.rows.data(), g.dW.rows.size()}, g.dW.grads.data(),
                           meprop::SgdConfig{lr, 0.0});
        const std::int64_t bias_row = 0;
        meprop::sgd_update(meprop::Matrix<double>{b.data(), 1, n_out}, meprop::RowGradientView{&bias_row, 1},
                           g.db.data(), meprop::SgdConfig{lr, 0.0});
        const std::size_t first = static_cast<std::size_t>(g.dW.rows.front());
        check.expect(std::abs(W[first * n_in] - (W_before[first * n_in] - lr * g.dW.grads[0])) <=
                         1e-15 * (1.0 + std::abs(W[first * n_in])),
                     step, "sgd_update did not apply W -= lr * dW");

        if (step % 25 == 0) {
            last_loss = loss(forward(eval_x, W, b), eval_t, nullptr);
            std::printf("step %4d  held-out loss %9.5f\n", step, last_loss);
        }
    }

    // Bad arguments are exceptions, never silent: k must lie in [1, n].
    try {
        std::int64_t out = 0;
        const double v[3] = {1.0, -2.0, 3.0};
        meprop::topk(v, 3, 0, &out);
        check.expect(false, steps, "topk accepted k = 0");
    } catch (const std::invalid_argument& e) {
        std::printf("bad input is rejected: %s\n", e.what());
    }

    check.expect(last_loss < 0.1 * first_loss, steps, "the held-out loss did not fall tenfold");
    if (check.failures > 0) {
        std::fprintf(stderr, "FAILED: %d mismatches\n", check.failures);
        return 1;
    }
    std::printf("OK: %d steps matched the dense reference; loss %.5f -> %.5f\n", steps, first_loss,
                last_loss);
    return 0;
}
