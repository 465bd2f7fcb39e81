"""Error feedback in the PyTorch drop-in: gradients against the NumPy reference, state dicts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import reference_mask

torch = pytest.importorskip("torch")

import meprop_native.torch as mt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["per_example", "unified"])
def test_drop_in_error_feedback_matches_reference_over_steps(dtype, mode):
    torch.manual_seed(0)
    layer = mt.Linear(6, 12, k=3, mode=mode, dtype=dtype, memory_decay=0.9)
    memory = np.zeros(12)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for _step in range(4):
        x = torch.randn(5, 6, dtype=dtype, requires_grad=True)
        dy = torch.randn(5, 12, dtype=dtype)
        layer.zero_grad()
        layer(x).backward(dy)
        u = dy.numpy().astype(np.float64) + memory / 5
        kept = np.where(reference_mask(u.astype(dy.numpy().dtype), 3, mode), u, 0.0)
        memory = 0.9 * (u - kept).sum(axis=0)
        np.testing.assert_allclose(x.grad.numpy(), kept @ layer.weight.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.weight.grad.numpy(), kept.T @ x.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.bias.grad.numpy(), dy.numpy().sum(axis=0), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.error_memory.numpy(), memory, rtol=tol, atol=tol)


def test_drop_in_memory_is_in_the_state_dict_and_loads_from_plain_linear():
    layer = mt.Linear(4, 8, k=2, memory_decay=1.0)
    layer(torch.randn(3, 4, requires_grad=True)).sum().backward()
    state = layer.state_dict()
    assert "error_memory" in state and state["error_memory"].abs().sum() > 0
    twin = mt.Linear(4, 8, k=2, memory_decay=1.0)
    twin.load_state_dict(state)
    assert torch.equal(twin.error_memory, layer.error_memory)
    plain = torch.nn.Linear(4, 8)
    twin.load_state_dict(plain.state_dict())  # no memory there: starts at zero
    assert torch.count_nonzero(twin.error_memory) == 0
    assert "error_memory" not in mt.Linear(4, 8, k=2).state_dict()  # off: the state dict of nn.Linear


def test_drop_in_without_feedback_is_unchanged():
    torch.manual_seed(1)
    a, b = mt.Linear(5, 9, k=2), mt.Linear(5, 9, k=2, memory_decay=0.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 5)
    a(x).pow(2).sum().backward()
    b(x).pow(2).sum().backward()
    assert torch.equal(a.weight.grad, b.weight.grad)
    assert b.error_memory is None


@pytest.mark.parametrize("decay", [-0.5, 1.5, float("nan")])
def test_drop_in_bad_decay_is_named(decay):
    with pytest.raises(ValueError, match="memory_decay"):
        mt.Linear(4, 8, k=2, memory_decay=decay)


def test_functional_memory_is_checked():
    x, w = torch.randn(2, 3, requires_grad=True), torch.randn(5, 3, requires_grad=True)
    with pytest.raises(ValueError, match="memory"):
        mt.meprop_linear(x, w, None, 2, memory=torch.zeros(4))
    with pytest.raises(ValueError, match="memory"):
        mt.meprop_linear(x, w, None, 2, memory=torch.zeros(5, dtype=torch.float64))
