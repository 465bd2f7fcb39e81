"""Row-sparse weight gradients of meprop_native.torch.Linear and the native Adam
that takes them (meprop_native.torch.optim.Adam), against torch's own Adam."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import meprop_native.torch as mt


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp(sparse: bool, dtype=torch.float32, k=4, memory_decay=0.0, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        mt.Linear(12, 16, k=k, memory_decay=memory_decay, sparse_grad=sparse, dtype=dtype),
        torch.nn.ReLU(),
        mt.Linear(16, 9, k=k, memory_decay=memory_decay, sparse_grad=sparse, dtype=dtype),
        torch.nn.ReLU(),
        torch.nn.Linear(9, 3, dtype=dtype),
    )


def batch(seed, dtype=torch.float32, rows=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 12, generator=g, dtype=dtype), torch.randint(0, 3, (rows,), generator=g)


def loss_of(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["per_example", "unified", "dense"])
@pytest.mark.parametrize("memory_decay", [0.0, 1.0])
def test_sparse_gradients_equal_the_dense_ones(dtype, mode, memory_decay):
    dense, sparse = mlp(False, dtype, memory_decay=memory_decay), mlp(True, dtype, memory_decay=memory_decay)
    for layer in (dense[0], dense[2], sparse[0], sparse[2]):
        layer.mode = mode
    for step in range(2):  # the second step sees the error memory the first left
        x, y = batch(step, dtype)
        for model in (dense, sparse):
            model.zero_grad(set_to_none=True)
            loss_of(model, x, y).backward()
        for a, b in zip(dense.parameters(), sparse.parameters()):
            assert b.grad is not None
            if b.grad.is_sparse:
                assert b.grad.sparse_dim() == 1
                rows = b.grad._indices()[0]
                assert (rows[1:] > rows[:-1]).all()  # the touched rows, ascending: coalesced
                got = b.grad.to_dense()
            else:
                got = b.grad
            torch.testing.assert_close(got, a.grad, rtol=0, atol=0)
    assert sparse[0].weight.grad.is_sparse and not sparse[0].bias.grad.is_sparse
    assert not sparse[4].weight.grad.is_sparse  # torch.nn.Linear keeps dense gradients


def test_a_first_layer_and_gradient_accumulation():
    model = mlp(True)
    x, y = batch(0)
    loss_of(model, x, y).backward()
    once = model[0].weight.grad.to_dense().clone()
    loss_of(model, x, y).backward()  # accumulated: an uncoalesced sum of two sparse gradients
    torch.testing.assert_close(model[0].weight.grad.to_dense(), 2 * once)
    opt = mt.optim.Adam(model.parameters())
    opt.step()  # coalesces what it is given


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_row_adam_follows_torch_adam(dtype):
    """lazy=False: every row moves every step, as torch.optim.Adam with the dense gradient."""
    ours, theirs = mlp(True, dtype), mlp(False, dtype)
    opt_ours = mt.optim.Adam(ours.parameters(), lr=0.01, lazy=False)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=0.01)
    for step in range(6):
        x, y = batch(step, dtype)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad(set_to_none=True)
            loss_of(model, x, y).backward()
            opt.step()
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_lazy_adam_moves_only_the_rows_with_gradient():
    model = mlp(True, torch.float64)
    opt = mt.optim.Adam(model.parameters(), lr=0.01)  # lazy by default
    x, y = batch(0, torch.float64)
    loss_of(model, x, y).backward()
    opt.step()
    before = model[0].weight.detach().clone()
    opt.zero_grad(set_to_none=True)
    x, y = batch(1, torch.float64)
    loss_of(model, x, y).backward()
    touched = set(model[0].weight.grad.coalesce().indices()[0].tolist())
    opt.step()
    moved = set(torch.nonzero((model[0].weight.detach() != before).any(dim=1)).flatten().tolist())
    assert moved == touched and len(touched) < 16
    # a lazy row's moments are those of a NumPy Adam over only the steps it got gradient
    state = opt.state[model[0].weight]
    assert state["step"] == 2 and state["decay1"].eq(1).all()


def test_state_dict_round_trip_continues_identically():
    a, b = mlp(True, torch.float64), mlp(True, torch.float64)
    opt_a = mt.optim.Adam(a.parameters(), lr=0.01, lazy=False)
    for step in range(3):
        x, y = batch(step, torch.float64)
        opt_a.zero_grad(set_to_none=True)
        loss_of(a, x, y).backward()
        opt_a.step()
    b.load_state_dict(a.state_dict())
    opt_b = mt.optim.Adam(b.parameters(), lr=0.01, lazy=False)
    # as through torch.save and torch.load (torch's loading shares tensors it need not cast)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for model, opt in ((a, opt_a), (b, opt_b)):
        x, y = batch(9, torch.float64)
        opt.zero_grad(set_to_none=True)
        loss_of(model, x, y).backward()
        opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"betas": (0.9, 1.0)}, ValueError, "betas"),
        ({"eps": -1.0}, ValueError, "eps"),
    ],
)
def test_bad_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        mt.optim.Adam(mlp(True).parameters(), **kwargs)


def test_unsupported_parameters_are_refused():
    with pytest.raises(TypeError, match="float32 and float64"):
        mt.optim.Adam([torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))])
    with pytest.raises(ValueError, match="contiguous"):
        mt.optim.Adam([torch.nn.Parameter(torch.zeros(4, 3).t())])
    p = torch.nn.Parameter(torch.zeros(4, 3))
    p.grad = torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 2]]), torch.ones(2), (4, 3), check_invariants=True)
    with pytest.raises(ValueError, match="row-sparse"):
        mt.optim.Adam([p]).step()


def test_repr_and_an_empty_batch():
    layer = mt.Linear(5, 7, k=2, sparse_grad=True)
    assert "sparse_grad=True" in repr(layer)
    x = torch.zeros(0, 5, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad.is_sparse and layer.weight.grad._nnz() == 0
    mt.optim.Adam(layer.parameters()).step()
