"""meprop_native.torch: autograd function and Linear layer against independent references."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import Reference, assert_close

torch = pytest.importorskip("torch")

import meprop_native.torch as mt
from meprop_native.torch import functional

MODES = ("per_example", "unified", "dense")
DTYPES = (torch.float32, torch.float64)
NUMPY_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests of values on small tensors: one thread, so a loaded machine cannot stall them.

    (With more threads than free cores, every OpenMP barrier of torch's tiny
    operators waits for a descheduled thread; the 40 steps of the training
    test took 5 s instead of 0.05 s on a busy 2-core machine.) The thread
    count's effect is checked by `test_thread_count_does_not_change_gradients`.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gen(request):
    """A torch generator seeded from the test's id."""
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


def torch_mask(dy: torch.Tensor, k: int | None, mode: str) -> torch.Tensor:
    """The entries of dy (rows = all leading dims flattened) meProp keeps, by torch.topk.

    Independent of the library: only used where magnitudes have no ties.
    """
    rows = dy.reshape(-1, dy.shape[-1]).abs()
    mask = torch.zeros_like(rows, dtype=torch.bool)
    if mode == "dense" or k is None or k >= rows.shape[1]:
        mask[:] = True
    elif mode == "per_example":
        mask.scatter_(1, rows.topk(k, dim=1).indices, True)
    else:
        mask[:, rows.sum(0).topk(k).indices] = True
    return mask.reshape(dy.shape)


# ---- gradcheck ---------------------------------------------------------------
#
# meProp's gradient is not the gradient of the forward function: it drops all
# but the top-k entries of dy (for dx and dW; the bias gradient stays dense).
# So gradcheck is run on a surrogate V whose true gradient meProp's is, at the
# point checked. With L = 1/2 sum(y^2), dy = y and meProp back-propagates
# mask * y to x and W, and all of y to b. V = 1/2 sum(mask * y^2) + T(b), with
# the mask held fixed and T(b) = sum((1 - mask) * (b^2 / 2 + b * x0 W0^T)) for
# the unperturbed x0, W0, has exactly those derivatives at (x0, W0, b0).
# `surrogate` returns V's value while its autograd graph runs through the meProp
# function on L; finite differences of V then match meProp's analytic gradient
# if the top-k set does not change under gradcheck's perturbations (eps = 1e-6).
# The inputs are built so that it does not: every row of y has magnitudes a
# whole unit apart (for the unified mode the columns keep one order in every
# row, so their sums are well apart too), far beyond what a 1e-6 step moves
# them. gradcheck's probe is the single scalar output with a dense dy, so the
# masking is really exercised (per-output one-hot probes of a vector function
# keep their one nonzero entry under any top-k and never test it; that check,
# `test_gradcheck_jacobian`, covers only the plumbing).


def separated_problem(lead, n_in, n_out, mode, bias, gen):
    """x (*lead, n_in), W, b (float64) with y = x W^T + b of well-separated magnitudes."""
    rows = int(np.prod(lead))
    assert n_in >= rows, "x must have full row rank to hit the target outputs exactly"
    if mode == "unified":
        order = torch.randperm(n_out, generator=gen)
        mags = order.double() + 1 + 0.25 * torch.rand(rows, n_out, generator=gen, dtype=torch.float64)
    else:
        mags = torch.stack([torch.randperm(n_out, generator=gen) for _ in range(rows)]).double() + 1
    signs = torch.randint(0, 2, (rows, n_out), generator=gen).double() * 2 - 1
    target = mags * signs
    x = torch.randn(rows, n_in, generator=gen, dtype=torch.float64)
    b = torch.randn(n_out, generator=gen, dtype=torch.float64) if bias else None
    # W^T = pinv(x) (target - b): x W^T = target - b exactly (x has full row rank).
    W = (torch.linalg.pinv(x) @ (target - (b if bias else 0))).T.contiguous()
    return x.reshape(*lead, n_in), W, b


def surrogate(k, mode, x0, W0, linear=mt.meprop_linear):
    def f(x, W, b):
        y = linear(x, W, b, k, mode)
        with torch.no_grad():
            dense = torch.nn.functional.linear(x, W, b)
            mask = torch_mask(dense, k, mode)
            value = 0.5 * (dense.pow(2) * mask).sum()
            if b is not None:
                value += ((~mask) * (0.5 * b.pow(2) + b * (x0 @ W0.T))).sum()
            correction = value - 0.5 * dense.pow(2).sum()
        return 0.5 * y.pow(2).sum() + correction

    return f


# (leading dims, n_in, n_out, k)
GRADCHECK_CASES = [
    ((1,), 3, 5, 1),  # B = 1, k = 1
    ((1,), 4, 6, 6),  # k = n
    ((4,), 6, 7, 3),
    ((5,), 8, 9, 1),
    ((2, 3), 8, 6, 2),  # leading dims
    ((3,), 5, 8, None),  # k = None: dense
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: f"lead{c[0]}_in{c[1]}_out{c[2]}_k{c[3]}")
def test_gradcheck_masked_surrogate(case, mode, bias, gen):
    lead, n_in, n_out, k = case
    x, W, b = separated_problem(lead, n_in, n_out, mode, bias, gen)
    inputs = tuple(t.requires_grad_() for t in (x, W, b) if t is not None)
    f = surrogate(k, mode, x.detach().clone(), W.detach().clone())
    fn = (lambda x, W, b: f(x, W, b)) if bias else (lambda x, W: f(x, W, None))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=False)


def test_gradcheck_surrogate_sees_the_mask(gen):
    """Control: the same check of a dense backward fails, so the check above can fail."""
    x, W, b = separated_problem((4,), 6, 7, "per_example", True, gen)
    f = surrogate(3, "per_example", x.clone(), W.clone(), lambda x, W, b, k, mode: torch.nn.functional.linear(x, W, b))
    inputs = (x.requires_grad_(), W.requires_grad_(), b.requires_grad_())
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=False)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_jacobian(mode, gen):
    """Full Jacobian probes (one-hot dy): the plumbing of shapes, transposes and leading dims."""
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    W = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, W, b: mt.meprop_linear(x, W, b, 2, mode), (x, W, b), fast_mode=False)


# ---- against the masked dense reference ------------------------------------------

# (leading dims, n_in, n_out, k)
REFERENCE_CASES = [
    ((1,), 1, 1, 1),
    ((1,), 7, 5, 1),
    ((3,), 13, 17, 17),
    ((32,), 784, 500, 20),
    ((2, 5), 33, 31, 4),
    ((2, 3, 4), 9, 12, 3),
    ((), 10, 8, 2),  # unbatched input, as nn.Linear accepts
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: f"lead{c[0]}_in{c[1]}_out{c[2]}_k{c[3]}")
def test_against_masked_dense_reference(case, mode, dtype, rng):
    lead, n_in, n_out, k = case
    layer = mt.Linear(n_in, n_out, k=k, mode=mode, dtype=dtype)
    x = torch.from_numpy(rng.standard_normal((*lead, n_in))).to(dtype).requires_grad_()
    dy = torch.from_numpy(rng.standard_normal((*lead, n_out))).to(dtype)
    y = layer(x)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, layer.weight, layer.bias))
    y.backward(dy)

    np_dtype = NUMPY_DTYPE[dtype]
    dy2 = dy.reshape(-1, n_out).numpy()
    x2 = x.detach().reshape(-1, n_in).numpy()
    ref = Reference(dy2, x2, layer.weight.detach().numpy(), k, mode)
    assert x.grad.shape == x.shape and x.grad.dtype == dtype
    assert_close(x.grad.reshape(-1, n_in).numpy(), ref.dx, ref.dx_scale, np_dtype, "dx")
    assert_close(layer.weight.grad.numpy(), ref.dW, ref.dW_scale, np_dtype, "dW")
    assert_close(layer.bias.grad.numpy(), ref.db, ref.db_scale, np_dtype, "db")


@pytest.mark.parametrize("mode", ["per_example", "unified"])
def test_torch_reference_agrees(mode, gen):
    """A second, torch-only reference: autograd of F.linear with dy masked by torch.topk."""
    x = torch.randn(16, 40, generator=gen, requires_grad=True)
    W = torch.randn(30, 40, generator=gen, requires_grad=True)
    b = torch.randn(30, generator=gen, requires_grad=True)
    dy = torch.randn(16, 30, generator=gen)
    mt.meprop_linear(x, W, b, 5, mode).backward(dy)
    got = [t.grad.clone() for t in (x, W, b)]
    for t in (x, W, b):
        t.grad = None
    y = torch.nn.functional.linear(x, W, b)
    # Masked dx and dW, dense db: back-propagate the masked dy and add the dropped part to b only.
    masked = dy * torch_mask(dy, 5, mode)
    y.backward(masked)
    b.grad += (dy - masked).sum(0)
    for g, t in zip(got, (x, W, b)):
        torch.testing.assert_close(g, t.grad, rtol=1e-5, atol=1e-5)


def test_non_contiguous_input_and_expanded_gradient(rng):
    """Fallback copies: a transposed x and the stride-0 gradient of y.sum()."""
    base = torch.from_numpy(rng.standard_normal((12, 6))).requires_grad_()
    x = base.t()  # (6, 12), not contiguous
    assert not x.is_contiguous()
    W = torch.from_numpy(rng.standard_normal((12, 9))).t().requires_grad_()  # (9, 12), not contiguous
    mt.meprop_linear(x, W, None, 9).sum().backward()
    ones = np.ones((6, 9))
    x_np, W_np = x.detach().numpy(), W.detach().numpy()
    np.testing.assert_allclose(base.grad.t().numpy(), ones @ W_np, rtol=1e-12)
    np.testing.assert_allclose(W.grad.numpy(), ones.T @ x_np, rtol=1e-12)


def test_empty_batch_gives_zero_gradients():
    layer = mt.Linear(4, 3, k=1)
    x = torch.zeros(0, 4, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.shape == (0, 4)
    assert torch.count_nonzero(layer.weight.grad) == 0 and torch.count_nonzero(layer.bias.grad) == 0


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # torch's own init says so
@pytest.mark.parametrize("n_in, n_out", [(4, 0), (0, 4)])
def test_layers_without_inputs_or_outputs_match_nn_linear(n_in, n_out):
    layer = mt.Linear(n_in, n_out, k=1)
    reference = torch.nn.Linear(n_in, n_out)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(3, n_in, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    (layer(x) * 2).sum().backward()
    (reference(x_ref) * 2).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad)


# ---- which gradients are computed ------------------------------------------------


class KernelSpy:
    """Stands in for the compiled module and records which outputs each backward asked for."""

    def __init__(self, core):
        self.core = core
        self.calls: list[dict] = []

    def linear_backward_into(self, *args, **kwargs):
        self.calls.append({name: kwargs[name] is not None for name in ("dx_out", "dW_out", "db_out")})
        return self.core.linear_backward_into(*args, **kwargs)


@pytest.fixture
def spy(monkeypatch):
    s = KernelSpy(functional._core)
    monkeypatch.setattr(functional, "_core", s)
    return s


@pytest.mark.parametrize(
    "x_grad, w_grad, b_grad",
    [(False, True, True), (True, False, True), (True, True, False), (False, False, True), (True, False, False)],
)
def test_needs_input_grad(x_grad, w_grad, b_grad, spy, rng):
    layer = mt.Linear(20, 10, k=3)
    layer.weight.requires_grad_(w_grad)
    layer.bias.requires_grad_(b_grad)
    x = torch.from_numpy(rng.standard_normal((4, 20)).astype(np.float32)).requires_grad_(x_grad)
    dy = torch.from_numpy(rng.standard_normal((4, 10)).astype(np.float32))
    layer(x).backward(dy)
    assert spy.calls == [{"dx_out": x_grad, "dW_out": w_grad, "db_out": b_grad}]
    assert (x.grad is not None) == x_grad
    assert (layer.weight.grad is not None) == w_grad
    assert (layer.bias.grad is not None) == b_grad
    ref = Reference(dy.numpy(), x.detach().numpy(), layer.weight.detach().numpy(), 3)
    if x_grad:
        assert_close(x.grad.numpy(), ref.dx, ref.dx_scale, np.float32, "dx")
    if w_grad:
        assert_close(layer.weight.grad.numpy(), ref.dW, ref.dW_scale, np.float32, "dW")
    if b_grad:
        assert_close(layer.bias.grad.numpy(), ref.db, ref.db_scale, np.float32, "db")


def test_no_bias_layer(spy, rng):
    layer = mt.Linear(5, 4, bias=False, k=2)
    assert layer.bias is None
    layer(torch.randn(3, 5)).sum().backward()
    assert spy.calls == [{"dx_out": False, "dW_out": True, "db_out": False}]


def test_no_grad_needed_is_plain_linear(spy):
    """Inference runs F.linear on any dtype and builds no meProp node."""
    layer = mt.Linear(5, 4, k=2, dtype=torch.bfloat16)
    with torch.no_grad():
        y = layer(torch.randn(3, 5, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.grad_fn is None
    assert spy.calls == []


@pytest.mark.parametrize("mode", MODES)
def test_thread_count_does_not_change_gradients(mode, rng):
    """Bitwise the same gradients with 1 and 2 threads for torch and for the kernels."""
    import meprop_native as mp

    x = torch.from_numpy(rng.standard_normal((64, 300)).astype(np.float32)).requires_grad_()
    dy = torch.from_numpy(rng.standard_normal((64, 400)).astype(np.float32))
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        mp.set_num_threads(threads)
        torch.manual_seed(0)
        layer = mt.Linear(300, 400, k=30, mode=mode)
        x.grad = None
        layer(x).backward(dy)
        results.append([t.grad.clone() for t in (x, layer.weight, layer.bias)])
    for one, two in zip(*results):
        assert torch.equal(one, two)


def test_gradients_accumulate_like_nn_linear(rng):
    """Two backward passes add up in .grad, as autograd does for any layer."""
    layer = mt.Linear(6, 5, k=2)
    x = torch.from_numpy(rng.standard_normal((3, 6)).astype(np.float32))
    layer(x).sum().backward()
    first = layer.weight.grad.clone()
    layer(x).sum().backward()
    torch.testing.assert_close(layer.weight.grad, 2 * first)


# ---- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("4", TypeError)]
)
def test_bad_k(k, error):
    with pytest.raises(error, match="k must be"):
        mt.Linear(4, 5, k=k)
    with pytest.raises(error, match="k must be"):
        mt.meprop_linear(torch.randn(2, 4), torch.randn(5, 4, requires_grad=True), None, k)


def test_numpy_integer_k_is_accepted():
    layer = mt.Linear(4, 5, k=np.int64(2))
    layer(torch.randn(2, 4)).sum().backward()
    assert torch.count_nonzero(layer.weight.grad.abs().sum(1)) <= 2 * 2


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        mt.Linear(4, 5, k=2, mode="random")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_unsupported_dtype(dtype):
    W = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError, match=f"input has dtype {dtype}"):
        mt.meprop_linear(torch.zeros(2, 4, dtype=dtype), W, None, 2)


def test_integer_weight_is_refused():
    with pytest.raises(TypeError, match=r"weight has dtype torch.int32"):
        mt.meprop_linear(torch.zeros(2, 4, requires_grad=True), torch.zeros(3, 4, dtype=torch.int32), None, 2)


def test_mixed_dtypes():
    with pytest.raises(TypeError, match="share one dtype"):
        mt.meprop_linear(torch.zeros(2, 4, dtype=torch.float64), torch.zeros(3, 4, requires_grad=True), None, 2)


def test_non_cpu_device():
    """The meta device stands in for CUDA: any tensor off the CPU is refused by name."""
    layer = mt.Linear(4, 3, k=2, device="meta")
    with pytest.raises(ValueError, match="CPU only; input is on meta"):
        layer(torch.zeros(2, 4, device="meta"))


@pytest.mark.parametrize("x_shape, w_shape", [((2, 5), (3, 4)), ((), (3, 4)), ((2, 4), (4,)), ((2, 4), ())])
def test_shape_mismatch(x_shape, w_shape):
    x, W = torch.zeros(x_shape), torch.zeros(w_shape, requires_grad=True)
    with pytest.raises(ValueError, match=r"input of shape .* does not match weight of shape"):
        mt.meprop_linear(x, W, None, 2)


def test_autocast_is_refused_with_a_clear_error():
    layer = mt.Linear(4, 3, k=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    with pytest.raises(TypeError, match="autocast"):
        y.float().sum().backward()


def test_double_backward_is_refused():
    layer = mt.Linear(4, 3, k=2, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


# ---- the layer as a drop-in --------------------------------------------------------


def test_same_init_and_state_dict_round_trip():
    torch.manual_seed(7)
    dense = torch.nn.Linear(6, 4)
    torch.manual_seed(7)
    sparse = mt.Linear(6, 4, k=2)
    assert sparse.state_dict().keys() == dense.state_dict().keys() == {"weight", "bias"}
    for name, value in dense.state_dict().items():
        assert torch.equal(sparse.state_dict()[name], value), name
    other = mt.Linear(6, 4, k=3, mode="unified")
    other.load_state_dict(dense.state_dict())
    torch.testing.assert_close(other(torch.ones(2, 6)), dense(torch.ones(2, 6)))
    back = torch.nn.Linear(6, 4)
    back.load_state_dict(other.state_dict())
    assert torch.equal(back.weight, dense.weight)
    assert isinstance(sparse, torch.nn.Linear)
    assert repr(sparse) == "Linear(in_features=6, out_features=4, bias=True, k=2, mode=per_example)"
    assert repr(mt.Linear(6, 4, k=4)).endswith("bias=True, dense)")
    assert mt.Linear(6, 4, k=4).dense and not sparse.dense


def test_training_loop_reduces_loss():
    """An ordinary torch.optim loop on a small synthetic classification problem."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    labels = (x[:, :5].sum(1) > 0).long() + 2 * (x[:, 5:10].sum(1) > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        mt.Linear(20, 64, k=8),
        torch.nn.ReLU(),
        mt.Linear(64, 64, k=8, mode="unified"),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 4),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()

    def loss() -> float:
        with torch.no_grad():
            return loss_fn(model(x), labels).item()

    start = loss()
    for _ in range(5):
        for i in range(0, 256, 32):
            opt.zero_grad()
            loss_fn(model(x[i : i + 32]), labels[i : i + 32]).backward()
            opt.step()
    assert loss() < 0.5 * start


def test_importing_the_package_does_not_import_torch():
    code = "import sys, meprop_native; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
