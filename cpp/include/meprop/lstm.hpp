// An LSTM layer whose backward through time is meProp's.
//
// Shapes (h = hidden size, G = 4h gate rows, N = total steps of all sequences):
//   sequences are packed back to back; sequence b owns rows [offsets[b], offsets[b+1]).
//   input_gates (N, G) = x W_ih^T + b, computed by the caller in one GEMM.
//   W_hh (G, h) row-major; gate rows ordered i, f, g, o (PyTorch's order).
// Forward, per sequence, from h_{-1} = c_{-1} = 0:
//   z_t = input_gates[t] + W_hh h_{t-1}
//   i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
//   c_t = f * c_{t-1} + i * g;         h_t = o * tanh(c_t)
// Backward, per sequence, t = T-1 .. 0, with dh from the layer above:
//   the element-wise gate gradient dz_t (length G) is dense, as in the paper;
//   meProp keeps the k largest |dz_t| (the set S_t) for every matrix product:
//     dh_{t-1} += W_hh^T mask_S(dz_t)            (reads k rows of W_hh)
//   and afterwards, with every (t, S_t) recorded,
//     dW_hh = sum_t mask_S(dz_t) h_{t-1}^T,  dW_ih = sum_t mask_S(dz_t) x_t^T,
//     dx_t  = W_ih^T mask_S(dz_t)
//   which are the linear backward kernels of linear_backward.hpp with one
//   index set per step. k = G is ordinary (dense) backprop through the same code.
// Sequences run in parallel, each on one thread in step order, so results are
// bitwise identical for any thread count. Errors throw std::invalid_argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "meprop/linear_backward.hpp"
#include "meprop/matrix.hpp"
#include "meprop/topk.hpp"

namespace meprop {

// Packed sequences: count + 1 ascending offsets, offsets[0] == 0. Empty
// sequences are allowed (they produce nothing).
struct Sequences {
    const std::int64_t* offsets = nullptr;
    std::size_t count = 0;

    std::size_t begin(std::size_t b) const { return static_cast<std::size_t>(offsets[b]); }
    std::size_t end(std::size_t b) const { return static_cast<std::size_t>(offsets[b + 1]); }
    std::size_t total() const { return count == 0 ? 0 : end(count - 1); }
};

// Throws unless offsets start at 0, never decrease and end at `rows`.
void validate_sequences(Sequences s, std::size_t rows);

// What the forward keeps for the backward (all N x ...; written by lstm_forward).
template <class T>
struct LstmCache {
    Matrix<T> gates;      // N x G: activated i, f, g, o
    Matrix<T> cells;      // N x h: c_t
    Matrix<T> cell_tanh;  // N x h: tanh(c_t)
    Matrix<T> hidden;     // N x h: h_t, the layer's output
};

template <class T>
void lstm_forward(ConstMatrix<T> input_gates, ConstMatrix<T> W_hh, Sequences seqs, const LstmCache<T>& cache);

// Which entries of a step's gate gradient dz_t (4h entries) are kept.
enum class GateSelection {
    together,  // the k largest |dz_t| over all four gates
    per_gate,  // the k/4 largest of each gate's h entries (i, f, g, o), as an
               // LSTM built from one weight matrix per gate would select them
};

// The recurrent half of the backward. Writes dz (N x G, the dense gate
// pre-activation gradient) and, unless k == G (dense), the kept gate rows of
// every step to kept (N x k, ascending per step). With GateSelection::per_gate
// k must be a multiple of 4. Returns the seconds spent in the element-wise
// gate math, summed over sequences (the rest of its time is the top-k and the
// recurrent product: the "linear" part).
//
// memory_decay > 0 adds error feedback through time (error_feedback.hpp):
// going backwards through a sequence, the entries of dz_t that the selection
// drops, times memory_decay, are added to dz_{t-1} before its selection, and
// dz holds these corrected gradients. The memory starts empty at each
// sequence's last step and is per sequence, so the result stays independent
// of the thread count and needs no state between calls.
template <class T>
double lstm_backward_through_time(ConstMatrix<T> W_hh, Sequences seqs, ConstMatrix<T> gates,
                                  ConstMatrix<T> cells, ConstMatrix<T> cell_tanh, ConstMatrix<T> dhidden,
                                  std::size_t k, Matrix<T> dz, std::int64_t* kept,
                                  SelectMethod method = SelectMethod::automatic,
                                  GateSelection selection = GateSelection::together, T memory_decay = T(0));

// Row t of out = h_{t-1} of its sequence (zero at each sequence's first step):
// the inputs of the recurrent product, for its weight gradient.
template <class T>
void lstm_previous_hidden(ConstMatrix<T> hidden, Sequences seqs, Matrix<T> out);

// Everything at once, owning its results (for C++ callers and tests).
template <class T>
struct LstmGradients {
    std::vector<T> dx;               // N x n_in
    RowGradients<T> dW_ih;           // touched rows of dW_ih (the same rows as dW_hh)
    RowGradients<T> dW_hh;           // touched rows of dW_hh
    std::vector<T> db;               // G: dense sum of dz over steps, as the paper's bias
    std::vector<std::int64_t> kept;  // N x k kept gate rows (empty when dense)
};

template <class T>
LstmGradients<T> lstm_backward(ConstMatrix<T> x, ConstMatrix<T> W_ih, ConstMatrix<T> W_hh, Sequences seqs,
                               const LstmCache<T>& cache, ConstMatrix<T> dhidden, std::size_t k,
                               GateSelection selection = GateSelection::together);

}  // namespace meprop
