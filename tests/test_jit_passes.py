"""Each optimisation pass, on its own: what it rewrites, and that it never changes a result.

The property tests draw random programs of broadcasting elementwise ops and reductions (inputs
shaped like a full array, a row of columns, a column of rows or a scalar), trace them, apply
one pass, run the graph, and compare with eager execution. The NumPy back end runs the passes'
output op by op, so these tests isolate the passes; a few examples also go through the generated
Numba kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dslearn as ds
import dslearn.nn.functional as F
from dslearn.jit import execute, jit, trace
from dslearn.jit.passes import (
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
    fuse_elementwise,
    fuse_matmul_epilogues,
    lower_composite_ops,
    plan_buffers,
    simplify,
)
from dslearn.jit.passes.manager import PASSES, PassManager

_LAYERS = {n: ds.nn.Linear(n, n).double() for n in range(1, 6)}  # parameters: captured, so linear layers stay ops
UNARY = {
    "linear": lambda a: _LAYERS[a.shape[-1]](a) if a.ndim else a,
    "neg": lambda a: -a,
    "abs": lambda a: a.abs(),
    "relu": lambda a: a.relu(),
    "sigmoid": lambda a: a.sigmoid(),
    "tanh": lambda a: a.tanh(),
    "exp_tanh": lambda a: a.tanh().exp(),
    "sqrt_abs": lambda a: (a.abs() + 0.5).sqrt(),
    "gelu": lambda a: ds.gelu(a),
    "scale": lambda a: a * 2 + 1,
    # (reducing a 0-d tensor over dim -1 fails in dslearn 0.1, unlike torch: skip those)
    "row_mean": lambda a: a.mean(-1, keepdim=True) if a.ndim else a,
    "row_max": lambda a: a.amax(-1, keepdim=True) if a.ndim else a,
    "row_sum": lambda a: a.sum(-1, keepdim=True) if a.ndim else a,
    "row_min": lambda a: a.amin(-1, keepdim=True) if a.ndim else a,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b.abs() + 1),
    "maximum": lambda a, b: ds.maximum(a, b),
    "minimum": lambda a, b: ds.minimum(a, b),
    "where": lambda a, b: ds.where(a > b, a, b),
}


@st.composite
def programs(draw):
    """(input arrays, steps): each step is (op name, operand indices into the values so far)."""
    rows = draw(st.integers(1, 4))
    columns = draw(st.integers(1, 5))
    full = draw(st.sampled_from([(rows, columns), (2, rows, columns), (columns,)]))
    shapes = [full] + draw(st.lists(st.sampled_from([full, full[-1:], full[:-1] + (1,), ()]), min_size=1,
                                    max_size=2))
    seed = draw(st.integers(0, 2**16))
    arrays = [np.random.default_rng(seed + i).standard_normal(s) for i, s in enumerate(shapes)]
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        name = draw(st.sampled_from(sorted(UNARY) + sorted(BINARY)))
        count = len(arrays) + len(steps)
        operands = tuple(draw(st.integers(0, count - 1)) for _ in range(2 if name in BINARY else 1))
        steps.append((name, operands))
    returned = draw(st.lists(st.integers(0, len(arrays) + len(steps) - 1), min_size=1, max_size=2, unique=True))
    return arrays, steps, returned


def make_program(steps, returned):
    def program(*inputs):
        values = list(inputs)
        for name, operands in steps:
            fn = UNARY.get(name) or BINARY[name]
            values.append(fn(*[values[i] for i in operands]))
        return tuple(values[i] + 0.0 for i in returned)
    return program


def _check(program, arrays, passes, backend="numpy", rtol=1e-9, atol=1e-12):
    tensors = [ds.tensor(a) for a in arrays]
    with ds.no_grad():
        expected = [t.numpy() for t in program(*tensors)]
    graph = trace(program, *tensors)
    PassManager(passes).run(graph)
    got = [t.numpy() for t in execute(graph, *tensors, backend=backend)]
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
    return graph


@pytest.mark.parametrize("pass_name", sorted(PASSES))
@settings(max_examples=15)
@given(case=programs())
def test_every_pass_preserves_results_on_random_elementwise_graphs(pass_name, case):
    arrays, steps, returned = case
    needs = {"epilogue_fusion": ["fusion"], "layout": ["lowering", "fusion", "epilogue_fusion"]}
    passes = needs.get(pass_name, []) + [pass_name]
    _check(make_program(steps, returned), arrays, passes)


@settings(max_examples=25)
@given(case=programs())
def test_the_default_pipeline_preserves_results(case):
    arrays, steps, returned = case
    _check(make_program(steps, returned), arrays, None)


@settings(max_examples=4)
@given(case=programs())
def test_generated_kernels_preserve_results_on_random_graphs(case):
    arrays, steps, returned = case
    _check(make_program(steps, returned), arrays, None, backend="numba", rtol=1e-7, atol=1e-9)


# -- what each pass does ------------------------------------------------------------------------


def _ops(graph):
    return [n.op for n in graph.nodes]


def test_dead_code_elimination_drops_unused_results_and_their_inputs():
    def f(x):
        unused = (x * 3).exp()  # noqa: F841  (computed, never returned)
        return x + 1

    graph = trace(f, ds.ones(3))
    assert eliminate_dead_code(graph) == 2
    assert _ops(graph) == ["add"]


def test_common_subexpressions_are_computed_once():
    graph = trace(lambda x: x.exp() * 2 + x.exp() * 2, ds.ones(3))
    assert eliminate_common_subexpressions(graph) == 2
    assert _ops(graph) == ["exp", "mul", "add"]


def test_constant_folding_evaluates_constant_subgraphs_once():
    graph = trace(lambda x: x * (ds.ones(3) * 4).exp(), ds.ones(3))
    assert fold_constants(graph) == 2
    assert _ops(graph) == ["mul"]
    np.testing.assert_allclose(graph.nodes[0].inputs[1].data, np.exp(4.0) * np.ones(3))


def test_algebraic_simplification_removes_identities_only_when_exact():
    graph = trace(lambda x: x.neg().neg() * 1 + 0, ds.ones(2, 3))
    simplify(graph)
    eliminate_dead_code(graph)
    assert graph.nodes == [] and graph.outputs[0] is graph.inputs[0]
    # x + zeros((4, 2, 3)) broadcasts x to a larger shape: not an identity
    graph = trace(lambda x: x + ds.zeros(4, 2, 3), ds.ones(2, 3))
    assert simplify(graph) == 0


def test_algebraic_simplification_merges_reshape_and_permute_chains():
    graph = trace(lambda x: x.reshape(6).reshape(3, 2).permute(1, 0).permute(1, 0), ds.ones(2, 3))
    simplify(graph)
    eliminate_dead_code(graph)
    assert _ops(graph) == ["reshape"]


def test_lowering_turns_layer_norm_and_softmax_into_primitives_that_fuse():
    x = ds.randn(4, 8)
    graph = trace(lambda x: F.gelu(F.layer_norm(x, (8,))).softmax(-1), x)
    assert lower_composite_ops(graph) == 2
    assert "layer_norm" not in _ops(graph) and "mean" in _ops(graph)
    assert fuse_elementwise(graph) == 1
    assert _ops(graph) == ["fused"]


def test_fusion_keeps_row_statistics_inside_the_kernel_and_splits_at_matmuls():
    w = ds.randn(8, 8)
    graph = trace(lambda x: ((x - x.mean(-1, keepdim=True)).relu() @ w).tanh() * 2, ds.randn(4, 8))
    fuse_elementwise(graph)
    assert _ops(graph) == ["fused", "matmul", "fused"]
    assert [n.op for n in graph.nodes[0].body.nodes] == ["mean", "sub", "relu"]


def test_fusion_does_not_create_a_cycle_through_an_unfused_op():
    w = ds.randn(4, 4)
    # y = exp(x); z = y @ w; out = y + z: "add" must not join exp's group, which z depends on.
    graph = trace(lambda x: x.exp() + (x.exp() @ w), ds.randn(4, 4))
    eliminate_common_subexpressions(graph)
    fuse_elementwise(graph)
    graph.verify()
    assert _ops(graph) == ["fused", "matmul", "fused"]


def test_epilogue_fusion_moves_the_bias_add_into_the_next_kernel():
    layer = ds.nn.Linear(8, 4)
    graph = trace(lambda x: F.gelu(layer(x)), ds.randn(3, 8))
    fuse_elementwise(graph)
    assert fuse_matmul_epilogues(graph) == 1
    assert _ops(graph) == ["permute", "matmul", "fused"]
    assert [n.op for n in graph.nodes[-1].body.nodes] == ["add", "gelu"]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_layout_keeps_activations_between_linear_layers_transposed(backend):
    ds.manual_seed(0)
    model = ds.nn.Sequential(ds.nn.Linear(12, 16), ds.nn.LayerNorm(16), ds.nn.GELU(), ds.nn.Linear(16, 16),
                             ds.nn.ReLU(), ds.nn.Linear(16, 3))
    x = ds.randn(8, 12)
    graph = PassManager(None).run(trace(model, x))
    fused = [n for n in graph.nodes if n.kind == "fused"]
    assert [n.attrs.get("layout") for n in fused] == ["columns", "columns"]
    products = [n for n in graph.nodes if n.op == "matmul"]
    assert [p.inputs[0].kind for p in products] == ["captured", "captured"]  # W @ x.T: the weight comes first
    with ds.no_grad():
        np.testing.assert_allclose(execute(graph, x, backend=backend)[0].numpy(), model(x).numpy(), rtol=2e-5,
                                   atol=2e-6)


def test_buffer_reuse_shares_buffers_between_values_whose_lifetimes_do_not_overlap():
    w = ds.randn(16, 16)
    graph = trace(lambda x: (((x.exp() @ w).tanh() @ w).relu() @ w).sigmoid(), ds.randn(16, 16))
    fuse_elementwise(graph)
    assert plan_buffers(graph) == 2  # six intermediates, two buffers in turn
    assert graph.nodes[-1].attrs["_buffers"] == [None]  # the result is returned: a fresh array


def test_pass_manager_reports_and_prints_every_pass(capsys):
    manager = PassManager(print_after=True)
    graph = manager.run(trace(lambda x: (x * 1).exp() + 2, ds.randn(2, 3)))
    printed = capsys.readouterr().out
    assert printed.count("--- after") == len(manager.log)
    assert "algebraic_simplification" in manager.report()
    assert _ops(graph) == ["fused"]


def test_unknown_pass_names_are_refused():
    with pytest.raises(ValueError, match="unknown pass 'fuse_everything'"):
        PassManager(["fuse_everything"])
    with pytest.raises(TypeError, match="a pass must be a name or a function"):
        PassManager([42])


def test_a_pass_that_breaks_the_graph_is_named():
    def broken(graph):
        graph.nodes = graph.nodes[::-1]
        return 1

    with pytest.raises(AssertionError, match="after pass 'broken'"):
        PassManager([broken]).run(trace(lambda x: x.exp().sin(), ds.randn(2)))


def test_custom_passes_plug_into_jit():
    calls = []

    def count_nodes(graph):
        calls.append(len(graph.nodes))
        return 0

    f = jit(lambda x: x.exp() * 2, backend="numpy", passes=[count_nodes, "fusion"])
    with ds.no_grad():
        np.testing.assert_allclose(f(ds.zeros(3)).numpy(), 2 * np.ones(3))
    assert calls == [2] and "fused" in str(f.graph)
