"""Compiled and eager results agree, forward and gradients, for every op the jit tracer supports.

Each case is a small function of tensors. It runs eagerly and through ``ds.jit`` (in grad
mode, so the compiled version has a forward and a backward plan), and the outputs and the
input gradients must agree. Cases run with the NumPy back end (fused groups executed op by op:
the same forward code as eager mode, so agreement is tight and nothing compiles); one test per
dtype runs every elementwise and reduction formula through the generated Numba kernels, all in
one function so that it compiles once. A coverage test fails when an op in the tracer's table
has no case.
"""

from __future__ import annotations

import numpy as np
import pytest

import dslearn as ds
import dslearn.nn.functional as F
from dslearn.autograd.function import OpObserver, observe
from dslearn.device import CPU
from dslearn.jit import jit
from dslearn.jit.opset import _TABLE
from dslearn.ops.transfer import ToDevice

RNG = np.random.default_rng(0)


def _normal(*shape):
    return RNG.standard_normal(shape)


def _positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def _away_from_zero(*shape):
    return np.where(RNG.random(shape) < 0.5, -1.0, 1.0) * RNG.uniform(0.2, 2.0, shape)


# name -> (function, input makers); inputs are float64 unless a maker returns another dtype
CASES = {
    "add": (lambda a, b: a + b, [lambda: _normal(3, 4), lambda: _normal(4)]),
    "sub": (lambda a, b: a - b, [lambda: _normal(3, 4), lambda: _normal(3, 1)]),
    "mul": (lambda a, b: a * b * 3, [lambda: _normal(3, 4), lambda: _normal(3, 4)]),
    "div": (lambda a, b: a / b, [lambda: _normal(3, 4), lambda: _positive(4)]),
    "pow": (lambda a, b: a ** b, [lambda: _positive(3, 4), lambda: _normal(3, 4)]),
    "pow_scalar": (lambda a: a ** 3 + a ** 2 + a ** 0.5, [lambda: _positive(3, 4)]),
    "scalar_pow": (lambda a: 2.0 ** a, [lambda: _normal(3, 4)]),
    "neg_abs_sign": (lambda a: -a.abs() * a.sign(), [lambda: _away_from_zero(3, 4)]),
    "exp_log_sqrt": (lambda a: a.exp() + a.log() + a.sqrt() + a.rsqrt(), [lambda: _positive(3, 4)]),
    "trigonometric": (lambda a: a.sin() * a.cos() + a.tanh(), [lambda: _normal(3, 4)]),
    "activations": (lambda a: a.sigmoid() + a.relu() + F.leaky_relu(a, 0.1) + ds.softplus(a, beta=2.0, threshold=1.0),
                    [lambda: _away_from_zero(3, 4)]),
    "gelu": (lambda a: ds.gelu(a) + ds.gelu(a, approximate="tanh"), [lambda: _normal(3, 4)]),
    "erf": (lambda a: ds.erf(a), [lambda: _normal(3, 4)]),
    "clamp": (lambda a: a.clamp(-0.5, 0.7) + a.clamp(min=0.1) + a.clamp(max=-0.2), [lambda: _away_from_zero(3, 4)]),
    "maximum_minimum": (lambda a, b: ds.maximum(a, b) - ds.minimum(a, b), [lambda: _normal(3, 4), lambda: _normal(4)]),
    "where_comparisons": (lambda a, b: ds.where((a > b) & (a >= 0.1) | (a < -1.0), a, b * 2)
                          + ds.where((a <= b) ^ (a == b) | (a != 0.3), a, b), [lambda: _normal(3, 4),
                                                                                 lambda: _normal(3, 4)]),
    "logical_not_isnan_isfinite": (lambda a: ds.where(~(a > 0) & ~ds.isnan(a) & ds.isfinite(a), a, -a),
                                   [lambda: _normal(3, 4)]),
    "cast": (lambda a: a.float().double() * 2, [lambda: _normal(3, 4)]),
    "remainder_floor_divide": (lambda a, b: ds.remainder(a, b) + ds.floor_divide(a, b).detach(),
                               [lambda: _normal(3, 4) * 3, lambda: _positive(4)]),
    "rounding": (lambda a: a * (ds.floor(a) + ds.ceil(a) + ds.round(a)), [lambda: _normal(3, 4) * 3]),
    "sum_mean": (lambda a: a.sum(1, keepdim=True) * a.mean(0) + a.sum() - a.mean((0, 1)), [lambda: _normal(3, 4)]),
    "amax_amin": (lambda a: a.amax(1, keepdim=True) - a.amin(0) + a.max(), [lambda: _normal(3, 4)]),
    "arg_and_boolean_reductions": (lambda a: a * (a.argmax(1, keepdim=True) + a.argmin(1, keepdim=True))
                                   + (a > 0).all(1, keepdim=True) + (a > 0).any(), [lambda: _normal(3, 4)]),
    "var_std": (lambda a: a.var(1, keepdim=True) + a.std(0), [lambda: _normal(3, 4)]),
    "logsumexp_norm": (lambda a: a.logsumexp(1) + a.norm(dim=1) + a.norm(p=3, dim=1), [lambda: _normal(3, 4)]),
    "reshape_permute_expand": (lambda a: a.reshape(4, 3).permute(1, 0).unsqueeze(0).expand(2, 3, 4) * 2,
                               [lambda: _normal(3, 4)]),
    "cat_stack_pad_repeat": (lambda a, b: ds.cat([a, b], 0).sum(0) + ds.stack([a, b]).sum(0)
                             + F.pad(a, (1, 1)).sum(1, keepdim=True) + a.repeat(1, 2)[:, :4],
                             [lambda: _normal(3, 4), lambda: _normal(3, 4)]),
    "clone_contiguous_getitem": (lambda a: a.clone()[1:, ::2].contiguous() * a.T.contiguous()[:2, 1:3],
                                 [lambda: _normal(3, 4)]),
    "masked_fill": (lambda a, b: a.masked_fill(b > 0, 0.5) * b, [lambda: _normal(3, 4), lambda: _normal(3, 4)]),
    "matmul": (lambda a, b: a @ b + (a[0] @ b), [lambda: _normal(3, 4), lambda: _normal(4, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b) + F.linear(x, w), [lambda: _normal(2, 3, 4), lambda: _normal(5, 4),
                                                                   lambda: _normal(5)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b) + F.layer_norm(x, (3, 4)).sum(0),
                   [lambda: _normal(2, 3, 4), lambda: _normal(4), lambda: _normal(4)]),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b), [lambda: _normal(2, 4, 3), lambda: _normal(4),
                                                              lambda: _normal(4)]),
    "softmax": (lambda a: a.softmax(1) * a.log_softmax(-1) + a.softmax(0), [lambda: _normal(3, 4)]),
    "cross_entropy": (lambda a, t: ds.cross_entropy(a, t) + ds.cross_entropy(a, t, reduction="sum",
                                                                             label_smoothing=0.1),
                      [lambda: _normal(5, 4), lambda: RNG.integers(0, 4, 5)]),
    "conv2d_pooling": (lambda x, w, b: F.max_pool2d(F.conv2d(x, w, b, padding=1), 2).sum()
                       + F.avg_pool2d(F.conv2d(x, w, stride=2), 2).sum(), [lambda: _normal(2, 2, 6, 6),
                                                                            lambda: _normal(3, 2, 3, 3),
                                                                            lambda: _normal(3)]),
    "embedding": (lambda idx, w: F.embedding(idx, w) * 2, [lambda: RNG.integers(0, 5, (2, 3)), lambda: _normal(5, 4)]),
    # a CPU-to-CPU copy here (``Tensor.to`` skips it; the op itself runs); tests/test_jit_cuda.py moves to the GPU
    "to_device": (lambda a: ToDevice.apply(a * 2, device=CPU).exp() + a, [lambda: _normal(3, 4)]),
}


def _tensors(arrays, requires_grad: bool):
    return [ds.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f") for a in arrays]


def _run(fn, arrays, upstream):
    tensors = _tensors(arrays, True)
    out = fn(*tensors)
    out.backward(ds.tensor(upstream))
    return out.detach().numpy(), [t.grad.numpy() if t.grad is not None else None for t in tensors]


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_forward_and_gradients_match_eager(name):
    fn, makers = CASES[name]
    arrays = [m() for m in makers]
    probe = fn(*_tensors(arrays, False))
    upstream = RNG.standard_normal(probe.shape)
    expected, expected_grads = _run(fn, arrays, upstream)
    compiled = jit(fn, backend="numpy")
    for _ in range(2):  # the first call traces and compiles, the second reuses the cached version
        got, got_grads = _run(compiled, arrays, upstream)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name}: forward")
        for i, (g, e) in enumerate(zip(got_grads, expected_grads)):
            if e is None:
                assert g is None, f"{name}: input {i} got a gradient eager mode does not give"
            else:
                np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12, err_msg=f"{name}: gradient of input {i}")
    assert compiled.cache_info()["versions"] == 1


@pytest.mark.parametrize("name", ["layer_norm", "softmax", "linear", "sum_mean", "amax_amin"])
def test_compiled_inference_matches_eager(name):
    """Without gradients, composite ops are lowered to primitives and fused: still the same values."""
    fn, makers = CASES[name]
    arrays = [m() for m in makers]
    with ds.no_grad():
        expected = fn(*_tensors(arrays, False)).numpy()
        got = jit(fn, backend="numpy")(*_tensors(arrays, False)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


class _Recorder(OpObserver):
    def __init__(self):
        self.seen = set()

    def forward(self, fn, inputs, attrs, run):
        self.seen.add(fn)
        return run()

    def backward(self, ctx, grad, run):
        self.seen.add(ctx.fn)
        return run()


def test_every_supported_op_has_a_case():
    recorder = _Recorder()
    with observe(recorder):
        for fn, makers in CASES.values():
            tensors = _tensors([m() for m in makers], True)
            out = fn(*tensors)
            out.backward(ds.ones_like(out))
    missing = sorted(op.name for op in _TABLE if op not in recorder.seen)
    assert not missing, f"ops the tracer supports without a jit test case: {missing}"


def _all_formulas(x, y, p):
    """Every elementwise and reduction formula of the kernel generator, on (4, 8) inputs."""
    unary = [x.exp(), x.tanh(), x.sin(), x.cos(), x.sigmoid(), x.relu(), F.leaky_relu(x, 0.2), ds.gelu(x),
             ds.gelu(x, approximate="tanh"), ds.erf(x), ds.softplus(x), x.abs(), -x, x.sign(), x.clamp(-0.3, 0.4),
             x ** 2, x ** 3, p ** 0.5, p.log(), p.sqrt(), 1.5 ** x, ds.floor(x), ds.ceil(x), ds.round(x * 3)]
    binary = [x + y, x - y, x * y, x / p, p ** y, ds.maximum(x, y), ds.minimum(x, y), ds.remainder(x, p),
              ds.where(x > y, x, y), ds.where((x >= y) & (x != y) | (x <= -1.0) ^ (x == 0.5), x, y),
              ds.where(~(x < 0) & ~ds.isnan(x) & ds.isfinite(y), x, y), (x > 0).float() * y]
    reductions = [x.sum(1, keepdim=True), x.mean(1, keepdim=True) * x, x.amax(1, keepdim=True) - x,
                  x.amin(1, keepdim=True) + x, (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True),
                  x.sum(0, keepdim=True), x.sum(), x.softmax(1), x.log_softmax(1), F.layer_norm(x, (8,))]
    return tuple(unary + binary + reductions)


def _weighted_total(x, y, p):
    """One scalar that every formula feeds (with its own weight), so that one backward checks them all."""
    return sum((out * (0.5 + 0.1 * i)).sum() for i, out in enumerate(_all_formulas(x, y, p)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generated_kernels_match_eager(dtype):
    arrays = [_away_from_zero(4, 8), _normal(4, 8), _positive(4, 8)]
    x, y, p = (ds.tensor(a.astype(dtype), requires_grad=True) for a in arrays)
    tolerance = {"rtol": 3e-5, "atol": 3e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    with ds.no_grad():
        expected = _all_formulas(x, y, p)
        got = jit(_all_formulas)(x, y, p)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g.numpy(), e.numpy(), err_msg=f"formula {i} of _all_formulas", **tolerance)
    _weighted_total(x, y, p).backward()
    expected_grads = [t.grad.numpy().copy() for t in (x, y, p)]
    for t in (x, y, p):
        t.grad = None
    jit(_weighted_total)(x, y, p).backward()
    for name, t, e in zip("xyp", (x, y, p), expected_grads):
        np.testing.assert_allclose(t.grad.numpy(), e, err_msg=f"gradient of {name}", **tolerance)
