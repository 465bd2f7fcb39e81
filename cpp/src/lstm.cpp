#include "meprop/lstm.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "check.hpp"
#include "combine_rows.hpp"
#include "multiversion.hpp"
#include "threads_for.hpp"

namespace meprop {

void validate_sequences(Sequences s, std::size_t rows) {
    if (s.offsets == nullptr) detail::fail("sequence offsets are a null pointer");
    if (s.offsets[0] != 0) detail::fail("sequence offsets must start at 0, got ", s.offsets[0]);
    for (std::size_t b = 0; b < s.count; ++b) {
        if (s.offsets[b + 1] < s.offsets[b]) {
            detail::fail("sequence offsets decrease at sequence ", b, " (", s.offsets[b], " -> ",
                         s.offsets[b + 1], ")");
        }
    }
    if (s.total() != rows) {
        detail::fail("sequence offsets end at ", s.total(), " but there are ", rows, " rows");
    }
}

namespace {

// ---- small dense kernels, compiled for several ISAs -------------------------

// out[j] += W[j, :] . v for every row j. Four rows share each load of v; the
// simd reduction lets the compiler vectorise the sums in a fixed lane order,
// so results do not depend on threads (only on the ISA clone chosen).
template <class T>
[[gnu::always_inline]] inline void gemv_add(const T* __restrict W, std::size_t rows, std::size_t cols,
                                            const T* __restrict v, T* __restrict out) {
    std::size_t j = 0;
    for (; j + 4 <= rows; j += 4) {
        const T* w0 = W + j * cols;
        const T* w1 = w0 + cols;
        const T* w2 = w1 + cols;
        const T* w3 = w2 + cols;
        T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
        for (std::size_t c = 0; c < cols; ++c) {
            a0 += w0[c] * v[c];
            a1 += w1[c] * v[c];
            a2 += w2[c] * v[c];
            a3 += w3[c] * v[c];
        }
        out[j] += a0;
        out[j + 1] += a1;
        out[j + 2] += a2;
        out[j + 3] += a3;
    }
    for (; j < rows; ++j) {
        const T* w = W + j * cols;
        T a = 0;
#pragma omp simd reduction(+ : a)
        for (std::size_t c = 0; c < cols; ++c) a += w[c] * v[c];
        out[j] += a;
    }
}

MEPROP_ISA_KERNEL(gemv_add_any, gemv_add, (const T* W, std::size_t r, std::size_t c, const T* v, T* out),
                  (W, r, c, v, out))

template <class T>
T sigmoid(T z) {
    return T(1) / (T(1) + std::exp(-z));
}

// One thread per sequence when there are several; a single sequence runs
// alone, since its steps depend on each other.
int sequence_threads(Sequences seqs) {
    return detail::threads_for_tasks(seqs.count);
}

template <class T>
void check_rows(ConstMatrix<T> m, std::size_t rows, std::size_t cols, const char* name) {
    if (m.rows != rows || m.cols != cols) {
        detail::fail(name, " must be ", rows, " x ", cols, ", got ", m.rows, " x ", m.cols);
    }
    if (m.data == nullptr && rows * cols > 0) detail::fail(name, " is a null pointer");
}

// h from W_hh (G x h), checking G == 4h.
template <class T>
std::size_t hidden_size(ConstMatrix<T> W_hh) {
    if (W_hh.cols == 0 || W_hh.rows != 4 * W_hh.cols) {
        detail::fail("W_hh must be 4h x h with h >= 1, got ", W_hh.rows, " x ", W_hh.cols);
    }
    detail::check_view(W_hh, "W_hh");
    return W_hh.cols;
}

using Clock = std::chrono::steady_clock;

}  // namespace

template <class T>
void lstm_forward(ConstMatrix<T> input_gates, ConstMatrix<T> W_hh, Sequences seqs,
                  const LstmCache<T>& cache) {
    const std::size_t h = hidden_size(W_hh), G = 4 * h, N = input_gates.rows;
    validate_sequences(seqs, N);
    check_rows(input_gates, N, G, "input_gates");
    check_rows<T>(cache.gates, N, G, "gates");
    check_rows<T>(cache.cells, N, h, "cells");
    check_rows<T>(cache.cell_tanh, N, h, "cell_tanh");
    check_rows<T>(cache.hidden, N, h, "hidden");
    const int threads = sequence_threads(seqs);

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (std::int64_t sb = 0; sb < static_cast<std::int64_t>(seqs.count); ++sb) {
        const auto b = static_cast<std::size_t>(sb);
        for (std::size_t t = seqs.begin(b); t < seqs.end(b); ++t) {
            T* z = cache.gates.row(t);
            std::copy(input_gates.row(t), input_gates.row(t) + G, z);
            const bool first = t == seqs.begin(b);
            if (!first) gemv_add_any(W_hh.data, G, h, cache.hidden.row(t - 1), z);
            const T* c_prev = first ? nullptr : cache.cells.row(t - 1);
            T* c = cache.cells.row(t);
            T* tc = cache.cell_tanh.row(t);
            T* hid = cache.hidden.row(t);
            for (std::size_t u = 0; u < h; ++u) {
                const T i = sigmoid(z[u]);
                const T f = sigmoid(z[h + u]);
                const T g = std::tanh(z[2 * h + u]);
                const T o = sigmoid(z[3 * h + u]);
                z[u] = i;
                z[h + u] = f;
                z[2 * h + u] = g;
                z[3 * h + u] = o;
                c[u] = (first ? T(0) : f * c_prev[u]) + i * g;
                tc[u] = std::tanh(c[u]);
                hid[u] = o * tc[u];
            }
        }
    }
}

template <class T>
double lstm_backward_through_time(ConstMatrix<T> W_hh, Sequences seqs, ConstMatrix<T> gates,
                                  ConstMatrix<T> cells, ConstMatrix<T> cell_tanh, ConstMatrix<T> dhidden,
                                  std::size_t k, Matrix<T> dz, std::int64_t* kept, SelectMethod method,
                                  GateSelection selection, T memory_decay) {
    const std::size_t h = hidden_size(W_hh), G = 4 * h, N = gates.rows;
    if (!(memory_decay >= T(0) && memory_decay <= T(1))) {
        detail::fail("memory_decay must be in [0, 1], got ", memory_decay);
    }
    validate_sequences(seqs, N);
    check_rows(gates, N, G, "gates");
    check_rows(cells, N, h, "cells");
    check_rows(cell_tanh, N, h, "cell_tanh");
    check_rows(dhidden, N, h, "dhidden");
    check_rows<T>(dz, N, G, "dz");
    if (k < 1 || k > G) detail::fail("k must be in [1, ", G, "] (4 x hidden size), got ", k);
    const bool per_gate = selection == GateSelection::per_gate;
    if (per_gate && k % 4 != 0) detail::fail("k must be a multiple of 4 to keep k/4 per gate, got ", k);
    const bool dense = k == G;
    if (!dense && kept == nullptr && N > 0) detail::fail("kept is a null pointer");
    const int threads = sequence_threads(seqs);
    std::vector<std::int64_t> all_rows(dense ? G : 0);
    std::iota(all_rows.begin(), all_rows.end(), std::int64_t{0});
    double gate_seconds = 0.0;

#pragma omp parallel num_threads(threads) if (threads > 1) reduction(+ : gate_seconds)
    {
        const bool feedback = !dense && memory_decay > T(0);
        std::vector<T> dh_next(h), dc_next(h), coefs(dense ? 0 : k), memory(feedback ? G : 0);
        std::vector<char> is_kept(feedback ? G : 0);
#pragma omp for schedule(dynamic, 1)
        for (std::int64_t sb = 0; sb < static_cast<std::int64_t>(seqs.count); ++sb) {
            const auto b = static_cast<std::size_t>(sb);
            std::fill(dh_next.begin(), dh_next.end(), T(0));
            std::fill(dc_next.begin(), dc_next.end(), T(0));
            std::fill(memory.begin(), memory.end(), T(0));
            for (std::size_t t = seqs.end(b); t-- > seqs.begin(b);) {
                const auto start = Clock::now();
                const bool first = t == seqs.begin(b);
                const T* a = gates.row(t);
                const T* c_prev = first ? nullptr : cells.row(t - 1);
                const T* tc = cell_tanh.row(t);
                const T* dh_out = dhidden.row(t);
                T* d = dz.row(t);
                // Element-wise gate gradients: dense, as in the paper.
                for (std::size_t u = 0; u < h; ++u) {
                    const T i = a[u], f = a[h + u], g = a[2 * h + u], o = a[3 * h + u];
                    const T dh = dh_out[u] + dh_next[u];
                    const T dc = dc_next[u] + dh * o * (T(1) - tc[u] * tc[u]);
                    d[u] = dc * g * i * (T(1) - i);
                    d[h + u] = first ? T(0) : dc * c_prev[u] * f * (T(1) - f);
                    d[2 * h + u] = dc * i * (T(1) - g * g);
                    d[3 * h + u] = dh * tc[u] * o * (T(1) - o);
                    dc_next[u] = dc * f;
                }
                gate_seconds += std::chrono::duration<double>(Clock::now() - start).count();
                // The matrix products see only the kept rows of dz_t.
                const std::int64_t* rows = all_rows.data();
                const T* values = d;
                std::size_t n = G;
                if (!dense) {
                    // Error feedback through time: what the later step (run
                    // first) dropped joins this step's gradient before the
                    // selection; dz_t then holds the corrected gradient, which
                    // the weight gradients use. A sequence starts with none.
                    if (feedback) {
                        for (std::size_t j = 0; j < G; ++j) d[j] += memory[j];
                    }
                    std::int64_t* ids = kept + t * k;
                    if (per_gate) {
                        // Gate blocks in order, each ascending: the whole set ascends.
                        const std::size_t per = k / 4;
                        for (std::size_t gate = 0; gate < 4; ++gate) {
                            std::int64_t* block = ids + gate * per;
                            topk(d + gate * h, h, per, block, method);
                            for (std::size_t e = 0; e < per; ++e)
                                block[e] += static_cast<std::int64_t>(gate * h);
                        }
                    } else {
                        topk(d, G, k, ids, method);
                    }
                    for (std::size_t e = 0; e < k; ++e) coefs[e] = d[ids[e]];
                    if (feedback) {
                        std::fill(is_kept.begin(), is_kept.end(), 0);
                        for (std::size_t e = 0; e < k; ++e) is_kept[ids[e]] = 1;
                        for (std::size_t j = 0; j < G; ++j) {
                            const T left = is_kept[j] ? T(0) : memory_decay * d[j];
                            memory[j] = std::isfinite(left) ? left : T(0);
                        }
                    }
                    rows = ids;
                    values = coefs.data();
                    n = k;
                }
                // h_{-1} is the constant zero: the first step sends nothing back.
                if (!first) {
                    const std::size_t entries[2] = {0, n};
                    const detail::RowCombination<T> plan{1, entries, rows, values};
                    detail::combine_rows_here(plan, W_hh, Matrix<T>{dh_next.data(), 1, h}, nullptr, false);
                }
            }
        }
    }
    return gate_seconds;
}

template <class T>
void lstm_previous_hidden(ConstMatrix<T> hidden, Sequences seqs, Matrix<T> out) {
    validate_sequences(seqs, hidden.rows);
    detail::check_view(hidden, "hidden");
    check_rows<T>(out, hidden.rows, hidden.cols, "previous hidden");
    for (std::size_t b = 0; b < seqs.count; ++b) {
        for (std::size_t t = seqs.begin(b); t < seqs.end(b); ++t) {
            if (t == seqs.begin(b))
                std::fill(out.row(t), out.row(t) + out.cols, T(0));
            else
                std::copy(hidden.row(t - 1), hidden.row(t - 1) + out.cols, out.row(t));
        }
    }
}

template <class T>
LstmGradients<T> lstm_backward(ConstMatrix<T> x, ConstMatrix<T> W_ih, ConstMatrix<T> W_hh, Sequences seqs,
                               const LstmCache<T>& cache, ConstMatrix<T> dhidden, std::size_t k,
                               GateSelection selection) {
    const std::size_t h = hidden_size(W_hh), G = 4 * h, N = x.rows;
    check_rows(W_ih, G, x.cols, "W_ih");
    const bool dense = k == G;
    LstmGradients<T> g;
    std::vector<T> dz(N * G);
    if (!dense && k >= 1 && k <= G) g.kept.resize(N * k);
    lstm_backward_through_time<T>(W_hh, seqs, cache.gates, cache.cells, cache.cell_tanh, dhidden, k,
                                  Matrix<T>{dz.data(), N, G}, g.kept.data(), SelectMethod::automatic,
                                  selection);
    std::vector<std::int64_t> all_rows(G);
    std::iota(all_rows.begin(), all_rows.end(), std::int64_t{0});
    const IndexSets sets = dense ? IndexSets{all_rows.data(), 1, G} : IndexSets{g.kept.data(), N, k};
    const ConstMatrix<T> dzv{dz.data(), N, G};
    g.dx.resize(N * x.cols);
    sparse_input_grad(dzv, W_ih, sets, Matrix<T>{g.dx.data(), N, x.cols});
    std::vector<T> h_prev(N * h);
    lstm_previous_hidden<T>(cache.hidden, seqs, Matrix<T>{h_prev.data(), N, h});
    const WeightGradPlan<T> plan(dzv, sets);
    for (auto [grads, src] :
         {std::pair{&g.dW_ih, x}, std::pair{&g.dW_hh, ConstMatrix<T>{h_prev.data(), N, h}}}) {
        grads->rows = plan.rows();
        grads->cols = src.cols;
        grads->grads.resize(grads->rows.size() * src.cols);
        plan.compute(src, Matrix<T>{grads->grads.data(), grads->rows.size(), src.cols});
    }
    g.db.resize(G);
    bias_grad(dzv, nullptr, BiasGradient::dense, g.db.data(), false);
    return g;
}

#define MEPROP_INSTANTIATE_LSTM(T)                                                                           \
    template void lstm_forward<T>(ConstMatrix<T>, ConstMatrix<T>, Sequences, const LstmCache<T>&);           \
    template double lstm_backward_through_time<T>(ConstMatrix<T>, Sequences, ConstMatrix<T>, ConstMatrix<T>, \
                                                  ConstMatrix<T>, ConstMatrix<T>, std::size_t, Matrix<T>,    \
                                                  std::int64_t*, SelectMethod, GateSelection, T);            \
    template void lstm_previous_hidden<T>(ConstMatrix<T>, Sequences, Matrix<T>);                             \
    template LstmGradients<T> lstm_backward<T>(ConstMatrix<T>, ConstMatrix<T>, ConstMatrix<T>, Sequences,    \
                                               const LstmCache<T>&, ConstMatrix<T>, std::size_t,             \
                                               GateSelection);

MEPROP_INSTANTIATE_LSTM(float)
MEPROP_INSTANTIATE_LSTM(double)

}  // namespace meprop
