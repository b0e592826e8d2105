"""Optimisation passes over the jit's graphs: one module per pass, and the manager that runs them."""

from dslearn.jit.passes.algebraic import simplify
from dslearn.jit.passes.buffers import plan_buffers
from dslearn.jit.passes.constant_folding import fold_constants
from dslearn.jit.passes.cse import eliminate_common_subexpressions
from dslearn.jit.passes.dce import eliminate_dead_code
from dslearn.jit.passes.decompose import lower_composite_ops
from dslearn.jit.passes.epilogue import fuse_matmul_epilogues
from dslearn.jit.passes.fusion import fuse_elementwise, fuse_nodes, member_kind
from dslearn.jit.passes.layout import transpose_layouts
from dslearn.jit.passes.manager import PASSES, PassManager, default_passes
