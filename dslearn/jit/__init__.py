"""``dslearn.jit``: a tracing compiler with a graph optimiser and fused Numba kernels.

Pipeline, one module per stage: ``tracer`` (run the function, record a ``Graph``: ``ir``),
``guards`` (when a compiled version may be reused), ``passes`` (DCE, CSE, constant folding,
algebraic simplification, lowering, elementwise fusion, matmul epilogue fusion, buffer reuse),
``codegen`` (a plan function and ``@njit`` kernels, cached on disk), ``plan`` (running it),
``differentiable`` (compiled backward passes inside autograd), ``training`` (a whole training
step), ``render`` (the graph as text or a plotly figure), ``api`` (the ``jit`` decorator).

May import: everything below the advanced-capabilities layer.

>>> import dslearn as ds
>>> from dslearn.jit import jit
>>> double = jit(lambda x: x * 2, backend="numpy")
>>> double(ds.tensor([1.0, 2.0]))
tensor([2., 4.])
"""

from dslearn.jit.api import JitFunction, execute, jit, trace
from dslearn.jit.codegen.cache import cache_statistics
from dslearn.jit.ir import Graph, Node, Value
from dslearn.jit.opset import supported_ops
from dslearn.jit.passes.manager import PASSES, PassManager, default_passes
from dslearn.jit.tracer import JitTraceError

__all__ = ["jit", "trace", "execute", "JitFunction", "JitTraceError", "Graph", "Node", "Value", "PassManager", "PASSES",
           "default_passes", "supported_ops", "cache_statistics"]
