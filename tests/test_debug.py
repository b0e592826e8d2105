"""Debugging aids: grad mode switch, numerical gradient check, anomaly detection (NaN/Inf at its source)."""

import inspect
import os
import sys

import ml_dtypes
import numpy as np
import pytest
import torch

import dslearn as ds
from dslearn import debug
from dslearn.autograd import function
from dslearn.debug import (
    AnomalyError,
    GradcheckError,
    detect_anomaly,
    gradcheck,
    is_anomaly_enabled,
    set_detect_anomaly,
)

HERE = os.path.basename(__file__)
PACKAGE_DIR = os.path.dirname(ds.__file__)


def next_line() -> str:
    """'test_debug.py:N' for the line after the caller's."""
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + 1}"


@pytest.fixture(autouse=True)
def anomaly_mode_off_afterwards():
    yield
    assert not is_anomaly_enabled()
    assert debug._OBSERVER not in function._observers


# -- grad mode and gradcheck ------------------------------------------------------------------------


def test_set_grad_mode_stops_and_restarts_recording():
    x = ds.ones(2, requires_grad=True)
    debug.set_grad_mode(False)
    try:
        assert not debug.get_grad_mode() and not (x * 2).requires_grad
    finally:
        debug.set_grad_mode(True)
    assert debug.get_grad_mode() and (x * 2).requires_grad


class WrongSquare(ds.Function):
    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        return grad * x  # should be 2 * x


def test_gradcheck_accepts_correct_gradients_and_rejects_a_wrong_backward():
    x = ds.randn(3, 2, dtype=ds.float64, requires_grad=True)
    assert gradcheck(lambda t: (t.exp() * t).sum(0), [x])
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 2\)\): analytic and numerical gradients differ"):
        gradcheck(WrongSquare.apply, [x])
    assert gradcheck(WrongSquare.apply, [x], raise_exception=False) is False


def test_gradcheck_explains_unusable_inputs():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda t: t * 2, [ds.ones(2, dtype=ds.float64)])
    with pytest.raises(TypeError, match="input 0 is dslearn.float32; finite differences need float64"):
        gradcheck(lambda t: t * 2, [ds.ones(2, requires_grad=True)])


# -- anomaly mode: forward ----------------------------------------------------------------------------


def test_a_nan_output_names_the_op_its_inputs_and_the_calling_line():
    x = ds.tensor([1.0, -1.0, 4.0])
    with detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(AnomalyError) as caught:
            where = next_line()
            x.log()
    message = str(caught.value)
    assert message.startswith("log returned 1 NaN among 3 values (inputs: shape (3,), float32); called at " + where)
    assert "x.log()" in message, "the stack shows the source line"
    assert isinstance(caught.value, RuntimeError)


def test_inf_is_caught_in_every_floating_dtype_and_integers_are_not_checked():
    with detect_anomaly(), np.errstate(all="ignore"):
        for dtype in (ds.float16, ds.bfloat16, ds.float32, ds.float64):
            biggest = float(ml_dtypes.finfo(dtype.np).max)
            big = ds.tensor([biggest, -biggest, 1.0], dtype=dtype)
            with pytest.raises(AnomalyError, match=f"mul returned 2 Inf among 3 values .*shape \\(3,\\), {dtype.name}"):
                big * 2
        assert (ds.tensor([1, 2]) * 3).tolist() == [3, 6]


def test_the_reported_stack_holds_only_frames_outside_dslearn():
    layer = ds.tensor([[float("nan")]])
    with detect_anomaly(), pytest.raises(AnomalyError) as caught:
        layer @ ds.ones(1, 1)
    stack_lines = [line for line in str(caught.value).splitlines() if line.strip().startswith("File ")]
    assert stack_lines and not any(PACKAGE_DIR in line for line in stack_lines)
    assert HERE in stack_lines[-1]


def test_check_nan_false_records_call_sites_without_checking():
    with detect_anomaly(check_nan=False), np.errstate(invalid="ignore"):
        where = next_line()
        y = ds.tensor([-1.0], requires_grad=True).sqrt()
    assert np.isnan(y.item())
    assert f"{HERE}:{y.grad_fn.creation_stack[-1].lineno}" == where


def test_results_and_gradients_are_unchanged_in_anomaly_mode():
    data = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    x = ds.tensor(data, requires_grad=True)
    with detect_anomaly():
        y = ((x.tanh() * x).exp() / 3).sum()
        y.backward()
    expected = torch.tensor(data, requires_grad=True)
    ((expected.tanh() * expected).exp() / 3).sum().backward()
    np.testing.assert_allclose(y.item(), ((torch.tensor(data).tanh() * torch.tensor(data)).exp() / 3).sum().item(),
                               rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), expected.grad.numpy(), rtol=1e-5, atol=1e-6)


# -- anomaly mode: backward --------------------------------------------------------------------------


def test_a_non_finite_gradient_names_the_backward_and_where_its_forward_was_called():
    x = ds.tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly(), np.errstate(divide="ignore"):
        where = next_line()
        y = x.sqrt()
        with pytest.raises(AnomalyError) as caught:
            y.sum().backward()
    message = str(caught.value)
    assert message.startswith("sqrt_backward returned 1 Inf among 2 values in the gradient of input 0 "
                              "(shape (2,), float32); produced by the backward of sqrt, whose forward was called "
                              f"at {where}")
    assert "y = x.sqrt()" in message


def test_a_nan_gradient_from_finite_values_is_caught_in_backward_not_forward():
    x = ds.tensor([0.0], requires_grad=True)
    with detect_anomaly(), np.errstate(all="ignore"):
        y = x.sqrt() * 0.0  # forward is finite: 0 * 0
        with pytest.raises(AnomalyError, match="sqrt_backward returned 1 NaN"):
            y.sum().backward()


def test_a_graph_built_before_anomaly_mode_reports_an_unknown_call_site():
    x = ds.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    with detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(AnomalyError, match="an unknown place"):
            y.backward()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes need Python 3.11")
def test_an_error_inside_a_backward_gets_a_note_naming_the_forward_call():
    x = ds.ones(3, requires_grad=True)
    with detect_anomaly():
        w = x.exp()
        where = next_line()
        y = w * w
        w.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an in-place operation") as caught:
            y.sum().backward()
    assert any(f"raised in the backward of mul, whose forward was called at {where}" in note
               for note in caught.value.__notes__)


# -- switching anomaly mode -------------------------------------------------------------------------


def test_detect_anomaly_works_as_a_decorator_and_nests():
    @detect_anomaly()
    def inner():
        assert is_anomaly_enabled()
        return ds.tensor([float("inf")]) + 1

    with pytest.raises(AnomalyError, match="add returned 1 Inf"):
        inner()
    assert not is_anomaly_enabled()
    with detect_anomaly(check_nan=False):
        assert debug._anomaly.check_nan is False
        with pytest.raises(AnomalyError):
            inner()
        assert is_anomaly_enabled() and debug._anomaly.check_nan is False
    assert function._observers.count(debug._OBSERVER) == 0


def test_set_detect_anomaly_switches_and_restores_as_a_context_manager():
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled() and function._observers.count(debug._OBSERVER) == 1
        set_detect_anomaly(True)
        assert function._observers.count(debug._OBSERVER) == 1, "installed once"
    finally:
        set_detect_anomaly(False)
    assert not is_anomaly_enabled()
    with set_detect_anomaly(True, check_nan=False):
        assert is_anomaly_enabled() and not debug._anomaly.check_nan
    assert not is_anomaly_enabled() and debug._anomaly.check_nan
