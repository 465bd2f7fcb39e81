"""The native updates reject hyper-parameters that would corrupt parameters.

A learning rate of 0, NaN or inf, a negative clip, eps <= 0 (0/0 in rows that
never had gradient) or an Adam beta outside [0, 1) (division by 1 - beta^t = 0)
would turn the parameters into NaN or move them the wrong way; the core raises
ValueError instead and leaves the parameter untouched.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from meprop_native import _core

ROWS = np.array([1], dtype=np.int64)
GRAD = np.ones((1, 2))


def _sgd(lr=0.1, clip=0.0, **_):
    def call(param):
        _core.sgd_update(param, ROWS, GRAD, lr, clip)

    return call


def _adagrad(lr=0.1, clip=0.0, eps=1e-6, **_):
    def call(param):
        _core.adagrad_update(param, ROWS, GRAD, np.zeros_like(param), lr, eps, clip)

    return call


def _adam(lr=0.1, clip=0.0, eps=1e-8, beta1=0.9, beta2=0.999):
    def call(param):
        _core.adam_update(
            param, ROWS, GRAD, np.zeros_like(param), np.zeros_like(param), 1, lr, beta1, beta2, eps, clip, False
        )

    return call


BAD = [
    *[
        (f"{make.__name__} lr={lr}", make, {"lr": lr}, "learning rate")
        for make in (_sgd, _adagrad, _adam)
        for lr in (0.0, -0.1, math.nan, math.inf)
    ],
    *[
        (f"{make.__name__} clip={clip}", make, {"clip": clip}, "clip")
        for make in (_sgd, _adagrad, _adam)
        for clip in (-1.0, math.nan, math.inf)
    ],
    *[
        (f"{make.__name__} eps={eps}", make, {"eps": eps}, "eps")
        for make in (_adagrad, _adam)
        for eps in (0.0, -1e-8, math.nan)
    ],
    *[
        (f"adam {name}={beta}", _adam, {name: beta}, "betas")
        for name in ("beta1", "beta2")
        for beta in (-0.1, 1.0, math.nan)
    ],
]


@pytest.mark.parametrize("what, make, kwargs, message", BAD, ids=[b[0] for b in BAD])
def test_bad_hyperparameter_is_a_value_error(what, make, kwargs, message):
    param = np.zeros((3, 2))
    with pytest.raises(ValueError, match=message):
        make(**kwargs)(param)
    np.testing.assert_array_equal(param, 0)


@pytest.mark.parametrize("make", [_sgd, _adagrad, _adam])
def test_valid_hyperparameters_update_the_row(make):
    param = np.zeros((3, 2))
    make()(param)
    assert np.all(param[1] < 0)
    assert not param[[0, 2]].any()  # no gradient and no history: no move
