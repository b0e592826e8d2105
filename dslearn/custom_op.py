"""Custom operators: turn your own kernel and backward rule into a dslearn op.

``@custom_op(name)`` takes a *forward kernel*, a function from arrays to an array (plain NumPy, a
Numba ``@njit`` function, anything that computes), and builds a ``Function`` subclass around it.
``@op.backward`` adds the backward rule, written with Tensor ops like every backward in dslearn
(``ctx.inputs``, ``ctx.output``, ``ctx.attrs``, ``ctx.needs_input_grad``). Because the result is
an ordinary ``Function``, autograd, ``gradcheck``, the profiler (which lists it under ``name``),
anomaly detection, ``checkpoint`` and ``autocast`` see it like a built-in op; the generated class
points back to its ``CustomOp`` (``function.custom_op``) for tools that need its kernels.

Tensors are passed positionally and arrive in the kernel as arrays; keyword arguments are
attributes, passed to the kernel as they are and kept for backward in ``ctx.attrs``. A
``cuda=`` kernel, with the same signature on device arrays, runs when the inputs live on a CUDA
device; without one such inputs are refused.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops.arguments.

>>> import numpy as np, dslearn as ds
>>> @custom_op("smooth_abs")
... def smooth_abs(x, *, eps):
...     return np.sqrt(x * x + eps)         # the forward kernel: arrays in, array out
>>> @smooth_abs.backward
... def _(ctx, grad):
...     (x,) = ctx.inputs
...     return grad * x / ctx.output        # d sqrt(x^2 + eps) / dx, in Tensor ops
>>> x = ds.tensor([-3.0, 0.0, 4.0], requires_grad=True)
>>> y = smooth_abs(x, eps=0.25); y
tensor([3.0414, 0.5   , 4.0311], grad_fn=<SmoothAbsBackward>)
>>> y.sum().backward(); x.grad
tensor([-0.9864,  0.    ,  0.9923])
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.ops.arguments import check_same_device, to_tensor
from dslearn.tensor import Tensor


class CustomOp:
    """An op made from a forward kernel (and optionally a CUDA kernel) and a backward rule.

    Call it with tensors (and keyword attributes). ``function`` is its ``Function`` subclass.

    >>> import numpy as np, dslearn as ds
    >>> double = CustomOp("double", lambda x: 2 * x, differentiable=False)
    >>> double(ds.tensor([1.0, 2.0])), double.function.name
    (tensor([2., 4.]), 'double')
    """

    def __init__(self, name: str, forward: Callable, *, cuda: Callable | None = None,
                 differentiable: bool = True) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"custom_op: the name must be a Python identifier like 'fused_gelu', got {name!r}")
        if not callable(forward) or (cuda is not None and not callable(cuda)):
            raise TypeError(f"custom_op {name}: kernels must be callable")
        self.name, self.forward_kernel, self.cuda_kernel = name, forward, cuda
        self.backward_rule: Callable | None = None
        class_name = "".join(part.capitalize() for part in name.split("_")) or name
        self.function = type(class_name, (Function,), {
            "name": name, "differentiable": differentiable, "__module__": getattr(forward, "__module__", __name__),
            "__doc__": forward.__doc__, "forward": staticmethod(self._forward),
            "backward": staticmethod(self._backward),
            "custom_op": self})  # tools that meet the Function (the JIT's op table) find its kernels here
        functools.update_wrapper(self, forward)

    def backward(self, rule: Callable) -> Callable:
        """Decorator: register ``rule(ctx, grad)``, which returns one gradient (or None) per tensor input."""
        if not self.function.differentiable:
            raise RuntimeError(f"custom op {self.name} was declared differentiable=False; it has no backward")
        if not callable(rule):
            raise TypeError(f"custom op {self.name}: the backward rule must be callable, got {type(rule).__name__}")
        self.backward_rule = rule
        return rule

    def __call__(self, *inputs, **attrs) -> Tensor:
        if not inputs:
            raise TypeError(f"{self.name}: expected at least one tensor input")
        tensors = [to_tensor(x, self.name) for x in inputs]
        check_same_device(self.name, *tensors)
        if (self.backward_rule is None and self.function.differentiable and is_grad_enabled()
                and any(t.requires_grad for t in tensors)):
            raise RuntimeError(f"{self.name}: an input requires grad but the op has no backward rule; register one "
                               f"with @{self.name}.backward, or declare it custom_op(..., differentiable=False)")
        return self.function.apply(*tensors, **attrs)

    def _forward(self, ctx, *arrays, **attrs):
        on_cpu = all(type(a) is np.ndarray for a in arrays)
        kernel = self.forward_kernel if on_cpu else self.cuda_kernel
        if kernel is None:
            raise RuntimeError(f"{self.name}: inputs are on a CUDA device but the op has no CUDA kernel; pass "
                               "custom_op(..., cuda=kernel) or move the inputs with .cpu()")
        out = kernel(*arrays, **attrs)
        if on_cpu:
            if not isinstance(out, (np.ndarray, np.generic, float, int)):
                raise TypeError(f"{self.name}: the forward kernel must return an array, got {type(out).__name__}")
            out = np.asarray(out)
        return out

    def _backward(self, ctx, grad: Tensor):
        return self.backward_rule(ctx, grad)

    def __repr__(self) -> str:
        kernels = "cpu, cuda" if self.cuda_kernel is not None else "cpu"
        return f"<custom op {self.name} ({kernels}){'' if self.backward_rule else ', no backward'}>"


def custom_op(name: str, *, cuda: Callable | None = None,
              differentiable: bool = True) -> Callable[[Callable], CustomOp]:
    """Decorator: make the decorated forward kernel an op called ``name``; see the module docstring.

    >>> import numpy as np, dslearn as ds
    >>> @custom_op("cube")
    ... def cube(x):
    ...     return x ** 3
    >>> @cube.backward
    ... def cube_backward(ctx, grad):
    ...     return grad * 3 * ctx.inputs[0] ** 2
    >>> x = ds.tensor([2.0], dtype=ds.float64, requires_grad=True)
    >>> ds.debug.gradcheck(cube, [x])
    True
    """

    def register(forward: Callable) -> CustomOp:
        return CustomOp(name, forward, cuda=cuda, differentiable=differentiable)

    return register
