"""Compiled plans: a generated function plus its kernels, ready to run on arrays.

``CompiledPlan(graph)`` generates the plan's source (``codegen.plan_source``), compiles or
loads every fused kernel through the kernel cache (``codegen.cache``), and executes the source
into a function. Calling the plan with the input arrays and the captured tensors' arrays
returns the output arrays. ``code`` shows the generated plan and kernels; ``compile_seconds``
how long their compilation took (near zero when the kernels came from the cache).

This module also holds the two runtime steps the generated code calls: an opaque op's
backward (``run_opaque_backward``) rebuilt around the context its forward filled in.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.jit.ir, dslearn.jit.codegen.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Exp
>>> from dslearn.jit.ir import Graph
>>> g = Graph("f")
>>> x = g.add_input((3,), np.float64)
>>> g.outputs = [g.add_node("exp", [x], [((3,), np.float64)], fn=Exp).output]
>>> plan = CompiledPlan(g, backend="numpy")
>>> plan(np.zeros(3))[0]
array([1., 1., 1.])
"""

from __future__ import annotations

import itertools
import linecache

import numpy as np

from dslearn.autograd.grad_mode import no_grad
from dslearn.jit.codegen.cache import load_kernel
from dslearn.jit.codegen.plan_source import generate_plan
from dslearn.jit.ir import Graph
from dslearn.tensor import Tensor

_plan_numbers = itertools.count()


class CompiledPlan:
    """A graph turned into one Python function over arrays (and its compiled kernels)."""

    def __init__(self, graph: Graph, backend: str = "numba", name: str = "forward") -> None:
        source = generate_plan(graph, backend, name)
        self.graph, self.backend, self.source = graph, backend, source
        self.compile_seconds = 0.0
        self.kernel_origins: list[str] = []
        for kernel_name, (kernel, _) in source.kernels.items():
            function, seconds, origin = load_kernel(kernel.module)
            source.namespace[kernel_name] = function
            self.compile_seconds += seconds
            self.kernel_origins.append(origin)
        filename = f"<dslearn.jit plan {next(_plan_numbers)}: {graph.name}>"
        linecache.cache[filename] = (len(source.text), None, source.text.splitlines(True), filename)
        exec(compile(source.text, filename, "exec"), source.namespace)
        self.run = source.namespace[name]

    def __call__(self, *arrays):
        return self.run(*arrays)

    @property
    def code(self) -> str:
        """The generated plan, then each kernel's source."""
        parts = [self.source.text]
        for kernel_name, (kernel, _) in self.source.kernels.items():
            parts.append(f"# {kernel_name}: {kernel.rows} x {kernel.columns}"
                         f"{', parallel' if kernel.parallel else ''}\n{kernel.function}")
        return "\n\n".join(parts)


def device_view(array, shape: tuple[int, ...]):
    """A CudaArray as the C-contiguous Numba device array a CUDA kernel takes, in the kernel's layout."""
    if not array.is_contiguous():
        array = array.copy()
    return array.reshape(*shape).device_array()


def run_opaque_backward(fn, needs: tuple, returns: tuple, forward_attrs: dict, ctx, inputs: tuple, output, grad):
    """Call ``fn.backward`` with the context its forward filled in; returns the gradient arrays."""
    parents = tuple(Tensor._make(a, requires_grad=n) for a, n in zip(inputs, needs))
    out = Tensor._make(output)  # held here: the context only keeps a weak reference to its output
    ctx.link(fn, parents, out, forward_attrs)
    with no_grad(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        grads = fn.backward(ctx, Tensor._make(grad))
    grads = grads if isinstance(grads, tuple) else (grads,)
    if tuple(g is not None for g in grads) != returns:
        raise RuntimeError(f"jit: {fn.name} backward returned gradients for other inputs than when it was traced")
    return tuple(g._data for g in grads if g is not None)
