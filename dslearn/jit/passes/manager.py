"""The pass manager: run optimisation passes in order, check the graph after each, keep a log.

A pass is a function ``graph -> int`` that rewrites the graph in place and returns how many
changes it made (0: nothing to do). ``PassManager`` runs a list of them, verifies the SSA
invariant after each (a broken pass fails loudly, at the pass that broke it), times them,
and records the node count; with ``print_after=True`` it prints the graph after every pass,
which is the quickest way to see what each one does.

``default_passes()`` is the pipeline ``ds.jit`` uses, in this order: fold constants, simplify
algebra, merge common subexpressions, drop dead code, lower composite ops (layer norm,
softmax) to primitives, simplify again (a layer norm without weights multiplies by ones), fuse
elementwise chains and reductions, fuse matmul epilogues, choose transposed layouts between
matrix products (and simplify the transposes away), drop dead code again, plan buffer reuse.

May import: dslearn.jit.ir, dslearn.jit.passes.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Exp
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((3,), np.float32)
>>> _ = g.add_node("exp", [x], [((3,), np.float32)], fn=Exp)
>>> g.outputs = [x]
>>> manager = PassManager([("dce", eliminate_dead_code)])
>>> _ = manager.run(g)
>>> print(manager.report())
pass  changes  nodes
dce         1      0
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dslearn.jit.ir import Graph
from dslearn.jit.passes.algebraic import simplify
from dslearn.jit.passes.buffers import plan_buffers
from dslearn.jit.passes.constant_folding import fold_constants
from dslearn.jit.passes.cse import eliminate_common_subexpressions
from dslearn.jit.passes.dce import eliminate_dead_code
from dslearn.jit.passes.decompose import lower_composite_ops
from dslearn.jit.passes.epilogue import fuse_matmul_epilogues
from dslearn.jit.passes.fusion import fuse_elementwise
from dslearn.jit.passes.layout import transpose_layouts

Pass = Callable[[Graph], int]

PASSES: dict[str, Pass] = {
    "constant_folding": fold_constants,
    "algebraic_simplification": simplify,
    "cse": eliminate_common_subexpressions,
    "dce": eliminate_dead_code,
    "lowering": lower_composite_ops,
    "fusion": fuse_elementwise,
    "epilogue_fusion": fuse_matmul_epilogues,
    "layout": transpose_layouts,
    "buffer_reuse": plan_buffers,
}
CLEANUP = ["constant_folding", "algebraic_simplification", "cse", "dce"]
DEFAULT = [*CLEANUP, "lowering", "algebraic_simplification", "fusion", "epilogue_fusion", "layout",
           "algebraic_simplification", "dce", "buffer_reuse"]


@dataclass
class PassRecord:
    """What one pass did: its name, how many changes, the node count after it, and its time."""

    name: str
    changes: int
    nodes: int
    seconds: float
    graph: str  # the graph printed after the pass


def resolve(passes) -> list[tuple[str, Pass]]:
    """Pass names (see ``PASSES``) and ``(name, function)`` pairs or bare functions, as pairs."""
    resolved = []
    for item in passes:
        if isinstance(item, str):
            if item not in PASSES:
                raise ValueError(f"jit: unknown pass {item!r}; known passes: {', '.join(PASSES)}")
            resolved.append((item, PASSES[item]))
        elif isinstance(item, tuple):
            resolved.append(item)
        elif callable(item):
            resolved.append((getattr(item, "__name__", "pass"), item))
        else:
            raise TypeError(f"jit: a pass must be a name or a function graph -> int, got {type(item).__name__}")
    return resolved


def default_passes() -> list[tuple[str, Pass]]:
    """The pipeline ``ds.jit`` runs by default."""
    return resolve(DEFAULT)


class PassManager:
    """Runs passes over a graph, verifying it and logging after each."""

    def __init__(self, passes=None, print_after: bool = False) -> None:
        self.passes = default_passes() if passes is None else resolve(passes)
        self.print_after = print_after
        self.log: list[PassRecord] = []

    def run(self, graph: Graph) -> Graph:
        for name, function in self.passes:
            started = time.perf_counter()
            changes = function(graph)
            seconds = time.perf_counter() - started
            try:
                graph.verify()
            except AssertionError as error:
                raise AssertionError(f"jit: the graph is broken after pass {name!r}: {error}") from None
            text = str(graph)
            self.log.append(PassRecord(name, int(changes or 0), len(graph.nodes), seconds, text))
            if self.print_after:
                print(f"--- after {name} ({changes or 0} changes) ---\n{text}")
        return graph

    def report(self) -> str:
        """A table: each pass, its changes and the node count after it."""
        width = max([4] + [len(r.name) for r in self.log])
        lines = [f"{'pass':<{width}}  changes  nodes"]
        lines += [f"{r.name:<{width}}  {r.changes:>7}  {r.nodes:>5}" for r in self.log]
        return "\n".join(lines)
