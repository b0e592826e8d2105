"""Code generation: a graph becomes a Python plan function plus Numba kernels for its fused groups."""

from dslearn.jit.codegen.cache import cache_statistics, load_kernel
from dslearn.jit.codegen.fused_cpu import generate_kernel
from dslearn.jit.codegen.plan_source import generate_plan
