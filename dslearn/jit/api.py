"""``ds.jit``: compile a function, a module or a training step.

    @ds.jit
    def mlp_model(x):
        return ds.nn.Linear(784, 256)(x).relu()

The first call traces the function on its arguments into a graph (``fn.graph`` prints it),
optimises it (``fn.passes`` shows each pass), generates a plan and Numba kernels
(``fn.code`` shows them) and runs that. Later calls with arguments of the same shapes,
dtypes and ``requires_grad`` (and the same grad mode) reuse the compiled version, as long as
its guards hold (see ``dslearn.jit.guards``); otherwise the function is traced again.

* ``ds.jit(module)`` or ``ds.jit(module.forward)`` compiles a model; its parameters are read
  live at every call, so training updates are seen. ``@ds.jit`` on a method in a class body
  (``def forward(self, x)``) compiles it per instance. A layer created *inside* a jitted
  function, as in ``mlp_model`` above, is created once, when tracing, and then frozen: every
  call uses those same weights (eager mode would draw new ones at every call).
* ``ds.jit(loss_fn, optimizer=opt)`` compiles a whole training step: ``loss_fn(*batch)``
  returns the loss; the compiled step computes it, differentiates it with respect to the
  optimizer's parameters and updates them, in one plan (``dslearn.jit.training``).
* ``backend='numpy'`` runs fused groups op by op in NumPy instead of generated kernels: the
  reference the kernels are checked against, and no compilation time.
* ``passes=[...]`` replaces the default pipeline (names from ``dslearn.jit.passes.manager``
  or your own functions ``graph -> int``); ``print_passes=True`` prints the graph after each.

Under an op observer (the profiler, anomaly detection), and inside another function being
traced, a jitted function runs eagerly, so that they see every op.

May import: dslearn.tensor, dslearn.autograd, dslearn.nn, dslearn.optim, dslearn.jit.*.

>>> import dslearn as ds
>>> @jit
... def scaled_relu(x):
...     return (x * 2).relu()
>>> scaled_relu(ds.tensor([-1.0, 3.0]))
tensor([0., 6.])
>>> print(scaled_relu.graph)
graph scaled_relu(x0: f32[2]) {
  v4: f32[2] = fused(x0, shape=(2,))
    graph fused_0(x0: f32[2]) {
      k1: f32[] = 2.0
      v2: f32[2] = mul(x0, k1)
      v3: f32[2] = relu(v2)
      return v3
    }
  return v4
}
"""

from __future__ import annotations

import copy
import functools
import types
import warnings

from dslearn.autograd import function as _function
from dslearn.autograd.grad_mode import no_grad
from dslearn.jit.capture import capture
from dslearn.jit.compiler import Entry, compile_call
from dslearn.jit.guards import ModuleScope, call_key, describe_key
from dslearn.jit.ir import Graph
from dslearn.jit.plan import CompiledPlan
from dslearn.jit.tracer import is_tracing
from dslearn.nn.module import Module
from dslearn.tensor import Tensor

RECOMPILE_WARNING = 8  # versions of one function before jit warns that shapes keep changing


class JitFunction:
    """A function (or module) with a cache of compiled versions, one per call signature."""

    def __init__(self, fn, backend: str = "numba", passes=None, print_passes: bool = False, optimizer=None) -> None:
        if backend not in ("numba", "numpy"):
            raise ValueError(f"jit: backend must be 'numba' or 'numpy', got {backend!r}")
        owner = fn if isinstance(fn, Module) else getattr(fn, "__self__", None)
        self.owner = owner if isinstance(owner, Module) else None
        self.eager = fn
        self.backend, self.passes, self.print_passes, self.optimizer = backend, passes, print_passes, optimizer
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self.entries: dict[tuple, Entry] = {}
        self.last: Entry | None = None
        self.retraces: list[str] = []
        functools.update_wrapper(self, fn, updated=())

    def __get__(self, instance, owner=None):
        """``@jit`` on a method: each instance gets its own compiled versions, kept on the instance."""
        if instance is None or not isinstance(self.eager, types.FunctionType):
            return self
        slot = f"_jit_{self.name}"
        bound = instance.__dict__.get(slot)
        if bound is None or bound.eager.__self__ is not instance:
            bound = JitFunction(self.eager.__get__(instance, owner), self.backend, self.passes, self.print_passes,
                                self.optimizer)
            instance.__dict__[slot] = bound  # (bypasses Module.__setattr__: not a parameter, buffer or layer)
        return bound

    def __deepcopy__(self, memo):
        """A copy (of a model with a jitted method, say) starts with no compiled versions of its own."""
        return JitFunction(copy.deepcopy(self.eager, memo), self.backend, self.passes, self.print_passes,
                           self.optimizer)

    def __call__(self, *args, **kwargs):
        if is_tracing() or _function._observers:
            return self.eager(*args, **kwargs)
        key = call_key(args, kwargs)
        entry = self.entries.get(key)
        if entry is not None:
            failure = entry.guards.failure()
            if failure is not None:
                self.retraces.append(f"{describe_key(key)}: {failure}")
                entry = None
        if entry is None:
            entry = self._compile(args, kwargs)
            self.entries[key] = entry
            if len(self.entries) == RECOMPILE_WARNING:
                warnings.warn(f"jit: {self.name} has been compiled for {RECOMPILE_WARNING} different argument "
                              "signatures; if shapes change at every call, compile a fixed shape or run eagerly",
                              stacklevel=2)
        self.last = entry
        entry.stats["calls"] += 1
        return entry.run([a for a in args if isinstance(a, Tensor)])

    def _compile(self, args, kwargs) -> Entry:
        scope = ModuleScope.of_function(self.eager, self.owner)
        if self.optimizer is not None:
            from dslearn.jit.training import TrainingEntry

            return TrainingEntry(self.eager, args, kwargs, scope, self.name, self.optimizer, self.backend,
                                 self.passes, self.print_passes)
        return compile_call(self.eager, args, kwargs, scope, self.name, self.backend, self.passes, self.print_passes)

    # -- what students look at --------------------------------------------------------------------

    def _latest(self) -> Entry:
        if self.last is None:
            raise RuntimeError(f"jit: {self.name} has not been called yet; call it once to trace and compile it")
        return self.last

    @property
    def graph(self):
        """The optimised graph of the latest compiled version (the forward graph, with gradients)."""
        return self._latest().graph

    @property
    def graphs(self) -> list:
        """Every graph of the latest version: forward, and backward when it was compiled with gradients."""
        return [plan.graph for plan in self._latest().plans]

    @property
    def traced_graph(self) -> str:
        """The graph as traced, before any pass (printed form)."""
        return self._latest().traced_graph_text

    @property
    def code(self) -> str:
        """The generated plan(s) and kernel sources of the latest version."""
        return self._latest().code

    @property
    def pass_records(self) -> list:
        """What each pass did to the (forward) graph of the latest version: name, changes, graph after it."""
        return list(self._latest().pass_logs[-len(self._latest().plans)].log)

    @property
    def passes_report(self) -> str:
        """What each pass did (changes, node count) for the latest version."""
        return "\n\n".join(manager.report() for manager in self._latest().pass_logs)

    @property
    def stats(self) -> dict:
        """Seconds spent tracing, optimising and compiling kernels, where kernels came from, calls served."""
        return dict(self._latest().stats)

    def cache_info(self) -> dict:
        """How many compiled versions exist, and why earlier ones were retraced."""
        return {"versions": len(self.entries), "retraces": list(self.retraces),
                "signatures": [describe_key(k) for k in self.entries]}

    def __repr__(self) -> str:
        return f"<jit-compiled {self.name}: {len(self.entries)} version(s)>"


def trace(fn, *args, **kwargs) -> Graph:
    """The graph of one call of ``fn(*args)`` as traced, before any pass (forward only, no gradients).

    >>> import dslearn as ds
    >>> g = trace(lambda x: x.exp() + 1, ds.ones(3))
    >>> [n.op for n in g.nodes]
    ['exp', 'add']
    """
    with no_grad():
        return capture(fn, args, kwargs, ModuleScope.of_function(fn, fn if isinstance(fn, Module) else None),
                       getattr(fn, "__name__", type(fn).__name__)).graph


def execute(graph: Graph, *tensors: Tensor, backend: str = "numpy") -> list[Tensor]:
    """Run a graph (after any passes you applied) on input tensors; captured tensors are read live.

    >>> import dslearn as ds
    >>> g = trace(lambda x: x.exp() + 1, ds.zeros(2))
    >>> execute(g, ds.zeros(2))
    [tensor([2., 2.])]
    """
    plan = CompiledPlan(graph, backend, "forward")
    arrays = [t._data for t in tensors] + [v.data._data for v in graph.captured]
    return [Tensor._make(a) for a in plan(*arrays)]


def jit(fn=None, *, backend: str = "numba", passes=None, print_passes: bool = False, optimizer=None):
    """Compile ``fn`` (a function, a Module or a bound method); usable as ``@jit`` or ``@jit(...)``.

    >>> import dslearn as ds
    >>> model = ds.nn.Sequential(ds.nn.Linear(4, 3), ds.nn.ReLU())
    >>> fast = jit(model, backend="numpy")
    >>> x = ds.randn(2, 4)
    >>> with ds.no_grad():
    ...     bool((fast(x) - model(x)).abs().max() < 1e-6)
    True
    """
    if fn is None:
        return lambda f: JitFunction(f, backend, passes, print_passes, optimizer)
    return JitFunction(fn, backend, passes, print_passes, optimizer)
