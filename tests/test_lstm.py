"""The LSTM layer: dense gradients against finite differences, meProp against
an independent NumPy reference with each step's gate gradient masked to its
top-k, variable lengths, dtypes, threads, and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_lstm

import meprop_native
from meprop_native import _core
from meprop_native.nn import LSTM, BiLSTM, Embedding, Selection, offsets_from_lengths


def make_layer(n_in, H, k, dtype, seed=0, per_gate=False):
    layer = LSTM(n_in, H, k, rng=np.random.default_rng(seed), dtype=dtype, per_gate=per_gate)
    # Larger weights than the default make the gates saturate unevenly, so
    # the top-k sets are not decided by ties.
    for p in layer.parameters():
        p.value[...] = np.random.default_rng(seed + 1).uniform(-0.8, 0.8, p.value.shape)
    return layer


def run_layer(layer, x, offsets, dh):
    h = layer.forward(x, offsets)
    dx = layer.backward(dh)
    return h, dx


TOL = {np.float64: 1e-10, np.float32: 2e-4}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "lengths,k",
    [([6], 1), ([6], 3), ([1], 2), ([5, 1, 7], 4), ([3, 4], 24), ([4, 2], None), ([2, 0, 3], 5)],
)
def test_matches_masked_reference(rng, dtype, lengths, k):
    n_in, H = 5, 6
    offsets = offsets_from_lengths(lengths)
    N = int(offsets[-1])
    layer = make_layer(n_in, H, k, dtype)
    x = rng.standard_normal((N, n_in)).astype(dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    h, dx = run_layer(layer, x, offsets, dh)
    ref = reference_lstm(
        x,
        layer.weight_ih.value,
        layer.weight_hh.value,
        layer.bias.value,
        offsets,
        dh,
        None if k is None or k >= 4 * H else k,
    )
    tol = TOL[dtype]
    assert h.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(h, ref[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, ref[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_ih.dense_grad(), ref[2], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_hh.dense_grad(), ref[3], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.bias.dense_grad(), ref[4], rtol=tol, atol=tol)
    # Only rows some step kept have a gradient row: the update is sparse.
    np.testing.assert_array_equal(layer.weight_hh.grad_rows, np.flatnonzero(ref[5].any(axis=0)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lengths,k", [([6], 1), ([5, 1, 7], 2), ([2, 0, 3], 5), ([3, 4], 6)])
def test_per_gate_selection_matches_masked_reference(rng, dtype, lengths, k):
    n_in, H = 5, 6
    offsets = offsets_from_lengths(lengths)
    N = int(offsets[-1])
    layer = make_layer(n_in, H, k, dtype, per_gate=True)
    x = rng.standard_normal((N, n_in)).astype(dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    _h, dx = run_layer(layer, x, offsets, dh)
    ref = reference_lstm(
        x,
        layer.weight_ih.value,
        layer.weight_hh.value,
        layer.bias.value,
        offsets,
        dh,
        None if k >= H else k,
        per_gate=True,
    )
    tol = TOL[dtype]
    np.testing.assert_allclose(dx, ref[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_ih.dense_grad(), ref[2], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_hh.dense_grad(), ref[3], rtol=tol, atol=tol)
    if k < H:  # every gate contributes exactly k rows a step
        assert (ref[5].reshape(N, 4, H).sum(axis=2) == k).all()
    with pytest.raises(ValueError, match="multiple of 4"):
        _core.lstm_backward(
            x,
            layer.weight_ih.value,
            layer.weight_hh.value,
            offsets,
            *_core.lstm_forward(x @ layer.weight_ih.value.T, layer.weight_hh.value, offsets),
            dh,
            3,
            per_gate=True,
        )


def test_dense_gradients_match_finite_differences(rng):
    n_in, H = 3, 4
    offsets = offsets_from_lengths([4, 2])
    N = int(offsets[-1])
    layer = make_layer(n_in, H, None, np.float64)
    x = rng.standard_normal((N, n_in))
    R = rng.standard_normal((N, H))  # loss = sum(R * h)

    def loss():
        return float(np.sum(R * layer.forward(x, offsets)))

    layer.forward(x, offsets)
    dx = layer.backward(R)
    analytic = {p.name: p.dense_grad() for p in layer.parameters()}
    eps = 1e-6
    for p in layer.parameters():
        flat = p.value.reshape(-1)
        for i in rng.choice(flat.size, size=min(flat.size, 12), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            assert abs((up - down) / (2 * eps) - analytic[p.name].reshape(-1)[i]) < 1e-6, p.name
    for t, j in [(0, 0), (3, 2), (5, 1)]:
        old = x[t, j]
        x[t, j] = old + eps
        up = loss()
        x[t, j] = old - eps
        down = loss()
        x[t, j] = old
        assert abs((up - down) / (2 * eps) - dx[t, j]) < 1e-6


def test_k_of_4h_is_dense_and_batches_equal_single_sentences(rng):
    n_in, H = 4, 5
    offsets = offsets_from_lengths([3, 5])
    x = rng.standard_normal((8, n_in))
    dh = rng.standard_normal((8, H))
    full = make_layer(n_in, H, 4 * H, np.float64)
    dense = make_layer(n_in, H, None, np.float64)
    run_layer(full, x, offsets, dh)
    run_layer(dense, x, offsets, dh)
    np.testing.assert_array_equal(full.weight_hh.dense_grad(), dense.weight_hh.dense_grad())
    # The second sequence alone gives the same states as inside the batch.
    meprop_layer = make_layer(n_in, H, 3, np.float64)
    h_batch, dx_batch = run_layer(meprop_layer, x, offsets, dh)
    h_one, dx_one = run_layer(meprop_layer, x[3:], None, dh[3:])
    np.testing.assert_array_equal(h_batch[3:], h_one)
    np.testing.assert_array_equal(dx_batch[3:], dx_one)


def test_results_do_not_depend_on_threads(rng):
    offsets = offsets_from_lengths([7, 3, 9, 1, 4, 6])
    x = rng.standard_normal((30, 8)).astype(np.float32)
    dh = rng.standard_normal((30, 16)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        meprop_native.set_num_threads(threads)
        layer = make_layer(8, 16, 5, np.float32)
        h, dx = run_layer(layer, x, offsets, dh)
        results.append((h, dx, layer.weight_hh.grad, layer.weight_ih.grad, layer.bias.grad))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()


def test_nan_gradient_is_kept(rng):
    layer = make_layer(3, 4, 2, np.float64)
    x = rng.standard_normal((3, 3))
    dh = rng.standard_normal((3, 4))
    dh[2, 1] = np.nan
    layer.forward(x)
    layer.backward(dh)
    assert np.isnan(layer.weight_ih.grad).any()


def test_bidirectional_is_two_lstms_on_reversed_sequences(rng):
    offsets = offsets_from_lengths([3, 4])
    x = rng.standard_normal((7, 3))
    dy = rng.standard_normal((7, 8))
    bi = BiLSTM(3, 4, k=2, rng=np.random.default_rng(3), dtype=np.float64)
    y = bi.forward(x, offsets)
    dx = bi.backward(dy)
    rev = np.array([2, 1, 0, 6, 5, 4, 3])
    ahead = reference_lstm(
        x,
        bi.forward_lstm.weight_ih.value,
        bi.forward_lstm.weight_hh.value,
        bi.forward_lstm.bias.value,
        offsets,
        dy[:, :4],
        2,
    )
    behind = reference_lstm(
        x[rev],
        bi.backward_lstm.weight_ih.value,
        bi.backward_lstm.weight_hh.value,
        bi.backward_lstm.bias.value,
        offsets,
        dy[:, 4:][rev],
        2,
    )
    np.testing.assert_allclose(y, np.concatenate([ahead[0], behind[0][rev]], axis=1), atol=1e-12)
    np.testing.assert_allclose(dx, ahead[1] + behind[1][rev], atol=1e-12)
    np.testing.assert_allclose(bi.backward_lstm.weight_hh.dense_grad(), behind[3], atol=1e-12)
    assert len(bi.parameters()) == 6 and bi.backward_seconds >= 0


def test_embedding_gradient_rows_sum_repeated_ids(rng):
    emb = Embedding(6, 3, rng=np.random.default_rng(0), dtype=np.float64)
    ids = np.array([4, 1, 4, 0])
    out = emb.forward(ids)
    np.testing.assert_array_equal(out, emb.weight.value[ids])
    dy = rng.standard_normal((4, 3))
    emb.backward(dy)
    np.testing.assert_array_equal(emb.weight.grad_rows, [0, 1, 4])
    np.testing.assert_allclose(emb.weight.grad, np.stack([dy[3], dy[1], dy[0] + dy[2]]))
    with pytest.raises(ValueError, match="ids must lie in"):
        emb.forward(np.array([6]))
    with pytest.raises(ValueError, match="integer array"):
        emb.forward(np.array([0.5]))
    with pytest.raises(ValueError, match="integer array"):
        emb.forward(np.array(3))
    with pytest.raises(ValueError, match="dy has 3 entries"):
        emb.backward(np.zeros(3))


def test_bad_input_raises_clear_errors(rng):
    layer = LSTM(3, 4, k=2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        layer.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="offsets end at 3 but there are 2 rows"):
        layer.forward(np.zeros((2, 3), np.float32), np.array([0, 3]))
    with pytest.raises(ValueError, match="decrease"):
        layer.forward(np.zeros((2, 3), np.float32), np.array([0, 2, 1, 2]))
    with pytest.raises(RuntimeError, match="before forward"):
        LSTM(3, 4).backward(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="k must be >= 1"):
        LSTM(3, 4, k=0)
    with pytest.raises(ValueError, match="lengths"):
        offsets_from_lengths([2, -1])
    with pytest.raises(ValueError, match="k must be >= 1"):
        LSTM(3, 4, k=2.5)
    with pytest.raises(ValueError, match="1-D integer array"):
        layer.forward(np.zeros((4, 3), np.float32), np.array([0, 1.7, 4]))
    with pytest.raises(ValueError, match="start at 0"):
        layer.forward(np.zeros((4, 3), np.float32), np.array([1, 4]))
    with pytest.raises(ValueError, match=r"decrease at sequence 1 \(3 -> 2\)"):
        BiLSTM(3, 4).forward(np.zeros((4, 3), np.float32), np.array([0, 3, 2, 4]))
    W_hh = np.zeros((16, 4), np.float32)
    with pytest.raises(ValueError, match=r"W_hh must have shape \(4h, h\)"):
        _core.lstm_forward(np.zeros((2, 15), np.float32), np.zeros((15, 4), np.float32), np.array([0, 2]))
    with pytest.raises(TypeError, match="share one dtype"):
        _core.lstm_forward(np.zeros((2, 16), np.float64), W_hh, np.array([0, 2]))
    with pytest.raises(TypeError, match="offsets must be a 1-D int64"):
        _core.lstm_forward(np.zeros((2, 16), np.float32), W_hh, np.array([0.0, 2.0]))
    gates, cells, tanhs, hidden = _core.lstm_forward(np.zeros((2, 16), np.float32), W_hh, np.array([0, 2]))
    args = (
        np.zeros((2, 3), np.float32),
        np.zeros((16, 3), np.float32),
        W_hh,
        np.array([0, 2]),
        gates,
        cells,
        tanhs,
        hidden,
        np.zeros((2, 4), np.float32),
    )
    with pytest.raises(ValueError, match=r"k must be in \[1, 16\]"):
        _core.lstm_backward(*args, 17)
    with pytest.raises(ValueError, match="dhidden must have shape"):
        _core.lstm_backward(*args[:-1], np.zeros((3, 4), np.float32), 2)
    with pytest.raises(ValueError, match="no rows"):
        _core.lstm_backward(
            np.zeros((0, 3), np.float32),
            args[1],
            W_hh,
            np.array([0, 0]),
            gates[:0],
            cells[:0],
            tanhs[:0],
            hidden[:0],
            np.zeros((0, 4), np.float32),
            2,
        )
    # Non-contiguous inputs are copied, not misread.
    x = np.asfortranarray(rng.standard_normal((5, 3)).astype(np.float32))
    h1 = LSTM(3, 4, k=2).forward(x)
    h2 = LSTM(3, 4, k=2).forward(np.ascontiguousarray(x))
    np.testing.assert_array_equal(h1, h2)


def test_offsets_changed_by_the_caller_after_forward_do_not_change_the_backward(rng):
    x = rng.standard_normal((6, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 4)).astype(np.float32)
    offsets = np.array([0, 3, 6], dtype=np.int64)
    layer = LSTM(3, 4, k=3)
    layer.forward(x, offsets)
    expected = layer.backward(dy)
    layer.forward(x, offsets)
    offsets[1] = 1
    np.testing.assert_array_equal(layer.backward(dy), expected)


def test_embedding_of_no_ids_gives_no_gradient_rows():
    emb = Embedding(5, 3)
    assert emb.forward(np.zeros(0, np.int64)).shape == (0, 3)
    emb.backward(np.zeros((0, 3), np.float32))
    assert emb.weight.grad_rows.shape == (0,) and emb.weight.grad.shape == (0, 3)


def test_initialisation_schemes():
    h, n_in = 300, 190
    pytorch = LSTM(n_in, h, rng=np.random.default_rng(4))
    bound = 1 / np.sqrt(h)
    for p in (pytorch.weight_ih, pytorch.weight_hh, pytorch.bias):
        assert np.all(np.abs(p.value) <= bound) and p.value.std() > bound / 3
    paper = LSTM(n_in, h, rng=np.random.default_rng(4), init="paper")
    assert abs(paper.weight_ih.value.std() / np.sqrt(6 / (n_in + h)) - 1) < 0.01
    assert abs(paper.weight_hh.value.std() / np.sqrt(6 / (2 * h)) - 1) < 0.01
    np.testing.assert_array_equal(paper.bias.value, 0.0)
    both = BiLSTM(n_in, 20, rng=np.random.default_rng(4), init="paper")
    for lstm in (both.forward_lstm, both.backward_lstm):
        np.testing.assert_array_equal(lstm.bias.value, 0.0)
    with pytest.raises(ValueError, match="init must be one of"):
        LSTM(n_in, h, init="orthogonal")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("per_gate", [False, True])
@pytest.mark.parametrize("decay", [0.5, 1.0])
@pytest.mark.parametrize("lengths,k", [([6], 1), ([5, 1, 7], 2), ([2, 0, 3], 3)])
def test_error_feedback_through_time_matches_reference(rng, dtype, per_gate, decay, lengths, k):
    n_in, H = 5, 6
    offsets = offsets_from_lengths(lengths)
    N = int(offsets[-1])
    layer = LSTM(n_in, H, k, rng=np.random.default_rng(0), dtype=dtype, per_gate=per_gate, memory_decay=decay)
    for p in layer.parameters():
        p.value[...] = np.random.default_rng(1).uniform(-0.8, 0.8, p.value.shape)
    x = rng.standard_normal((N, n_in)).astype(dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    _, dx = run_layer(layer, x, offsets, dh)
    ref = reference_lstm(
        x,
        layer.weight_ih.value,
        layer.weight_hh.value,
        layer.bias.value,
        offsets,
        dh,
        k,
        per_gate=per_gate,
        memory_decay=decay,
    )
    plain = reference_lstm(
        x, layer.weight_ih.value, layer.weight_hh.value, layer.bias.value, offsets, dh, k, per_gate=per_gate
    )
    tol = TOL[dtype]
    np.testing.assert_allclose(dx, ref[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_ih.dense_grad(), ref[2], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.weight_hh.dense_grad(), ref[3], rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.bias.dense_grad(), ref[4], rtol=tol, atol=tol)
    if max(lengths) > 1:  # the memory changed something
        assert not np.allclose(ref[2], plain[2])
    kept = layer.selection.kept_fraction
    assert kept == pytest.approx((4 * k if per_gate else k) / (4 * H))


def test_error_feedback_decay_is_checked(rng):
    with pytest.raises(ValueError, match="memory_decay"):
        LSTM(3, 4, 2, memory_decay=1.5)
    layer = LSTM(3, 4, 2)
    x, offsets = rng.standard_normal((3, 3)).astype(np.float32), offsets_from_lengths([3])
    layer.forward(x, offsets)
    with pytest.raises(ValueError, match="memory_decay"):
        _core.lstm_backward(
            x,
            layer.weight_ih.value,
            layer.weight_hh.value,
            offsets,
            *layer._cache[2:],
            np.ones((3, 4), np.float32),
            2,
            memory_decay=-1.0,
        )


def test_bad_method_and_dtype_are_refused_at_construction():
    with pytest.raises(ValueError, match="method"):
        LSTM(3, 4, 2, method="xx")
    with pytest.raises(TypeError, match="dtype"):
        LSTM(3, 4, 2, dtype=np.int32)


def layer_gradients(layer, x, offsets, dh):
    dx = layer.backward(dh) if layer.forward(x, offsets) is not None else None
    return [dx, layer.weight_ih.dense_grad(), layer.weight_hh.dense_grad(), layer.bias.dense_grad()]


@pytest.mark.parametrize("per_gate", [False, True])
def test_dense_warm_up_steps_are_dense_then_k_applies(rng, per_gate):
    n_in, H, k, warm = 4, 5, 2, 3
    offsets = offsets_from_lengths([4, 3])
    x = rng.standard_normal((7, n_in))
    warming = make_layer(n_in, H, k, np.float64, per_gate=per_gate)
    warming.selection.warmup_steps, warming.selection.warmup = warm, "dense"
    dense, sparse = make_layer(n_in, H, None, np.float64), make_layer(n_in, H, k, np.float64, per_gate=per_gate)
    for step in range(warm + 2):
        dh = rng.standard_normal((7, H))
        want = layer_gradients(dense if step < warm else sparse, x, offsets, dh)
        for got, expected in zip(layer_gradients(warming, x, offsets, dh), want):
            np.testing.assert_array_equal(got, expected)
    kept = (4 * k if per_gate else k) / (4 * H)
    assert warming.selection.kept_fraction == pytest.approx((warm + 2 * kept) / (warm + 2))


@pytest.mark.parametrize("per_gate", [False, True])
def test_ramp_warm_up_keeps_the_selection_schedule(rng, per_gate):
    n_in, H, k, warm = 3, 8, 1, 6
    layer = LSTM(n_in, H, k, rng=np.random.default_rng(0), dtype=np.float64, per_gate=per_gate, warmup_steps=warm)
    schedule = Selection(4 * H, layer.kept_per_step, warmup_steps=warm)
    offsets = offsets_from_lengths([5])
    for _ in range(warm + 2):
        expected = schedule.step_k(np.empty(0))
        if per_gate:
            expected = max(4, expected - expected % 4)
        before = layer.selection.kept
        layer.forward(rng.standard_normal((5, n_in)), offsets)
        layer.backward(rng.standard_normal((5, H)))
        assert (layer.selection.kept - before) / 5 == min(expected, 4 * H)
    assert layer.selection.steps == warm + 2
    with pytest.raises(ValueError, match="warmup must be one of"):
        LSTM(n_in, H, k, warmup="slow")
