"""The table of every public op and the tests that check it against torch and finite differences.

This file is the op table: ``OP_TESTS`` maps each name in ``dslearn.ops.__all__`` to the tests that
compare it with its oracle. The tests below fail if an op has no row, or a row names a test that
does not exist, so a new op cannot land untested.
"""

import ast
from pathlib import Path

import pytest

import dslearn.ops

HERE = Path(__file__).parent

_UNARY = ["test_elementwise.py::test_unary_ops_match_torch", "test_elementwise.py::test_unary_ops_pass_gradcheck"]
_BINARY = ["test_elementwise.py::test_binary_ops_broadcast_like_torch"]
_COMPARE = ["test_elementwise.py::test_comparisons_give_bool_tensors_without_gradient"]
_LOGICAL = ["test_elementwise.py::test_logical_ops_and_predicates"]
_REDUCE = ["test_reductions.py::test_reductions_pass_gradcheck"]
_SHAPE = ["test_shape.py::test_shape_ops_pass_gradcheck"]
_INDEX = ["test_indexing.py::test_indexing_ops_pass_gradcheck"]
_POOL = [
    "test_conv_pool.py::test_pools_pass_gradcheck",
    "test_conv_pool.py::test_pool_gradients_of_gradients_match_torch",
]
_POINTWISE_LOSS = ["test_softmax_loss.py::test_composite_losses_pass_finite_differences_in_both_inputs"]

OP_TESTS = {
    # elementwise arithmetic and math
    "add": _BINARY, "sub": _BINARY, "mul": _BINARY, "maximum": _BINARY, "minimum": _BINARY,
    "div": ["test_elementwise.py::test_div_and_pow_broadcast_like_torch"],
    "pow": ["test_elementwise.py::test_div_and_pow_broadcast_like_torch", *_UNARY],
    "remainder": ["test_elementwise.py::test_remainder_and_floor_divide_match_torch"],
    "floor_divide": ["test_elementwise.py::test_remainder_and_floor_divide_match_torch"],
    "neg": _UNARY, "abs": _UNARY, "exp": _UNARY, "log": _UNARY, "sqrt": _UNARY, "rsqrt": _UNARY, "sin": _UNARY,
    "cos": _UNARY, "tanh": _UNARY, "sigmoid": _UNARY, "relu": _UNARY, "leaky_relu": _UNARY, "gelu": _UNARY,
    "softplus": _UNARY, "erf": _UNARY,
    "clamp": [*_UNARY, "test_elementwise.py::test_clamp_with_tensor_bounds_matches_torch"],
    "sign": ["test_elementwise.py::test_abs_sign_and_rounding_match_torch"],
    "floor": ["test_elementwise.py::test_abs_sign_and_rounding_match_torch"],
    "ceil": ["test_elementwise.py::test_abs_sign_and_rounding_match_torch"],
    "round": ["test_elementwise.py::test_abs_sign_and_rounding_match_torch"],
    "where": ["test_elementwise.py::test_where_routes_gradients_to_the_chosen_branch"],
    "eq": _COMPARE, "ne": _COMPARE, "lt": _COMPARE, "le": _COMPARE, "gt": _COMPARE, "ge": _COMPARE,
    "logical_and": _LOGICAL, "logical_or": _LOGICAL, "logical_xor": _LOGICAL, "logical_not": _LOGICAL,
    "isnan": _LOGICAL, "isfinite": _LOGICAL,
    # reductions
    "sum": ["test_reductions.py::test_sum_and_mean_match_torch", *_REDUCE],
    "mean": ["test_reductions.py::test_sum_and_mean_match_torch", *_REDUCE],
    "var": ["test_reductions.py::test_var_and_std_match_torch", *_REDUCE],
    "std": ["test_reductions.py::test_var_and_std_match_torch", *_REDUCE],
    "amax": ["test_reductions.py::test_amax_amin_and_logsumexp_match_torch", *_REDUCE],
    "amin": ["test_reductions.py::test_amax_amin_and_logsumexp_match_torch"],
    "logsumexp": ["test_reductions.py::test_amax_amin_and_logsumexp_match_torch", *_REDUCE],
    "max": ["test_reductions.py::test_max_min_with_dim_return_values_and_indices_like_torch",
            "test_reductions.py::test_full_max_shares_gradient_among_ties_like_torch"],
    "min": ["test_reductions.py::test_max_min_with_dim_return_values_and_indices_like_torch"],
    "argmax": ["test_reductions.py::test_argmax_argmin_match_torch"],
    "argmin": ["test_reductions.py::test_argmax_argmin_match_torch"],
    "norm": ["test_reductions.py::test_norm_matches_torch", *_REDUCE],
    "all": ["test_reductions.py::test_all_and_any"], "any": ["test_reductions.py::test_all_and_any"],
    # shape
    "reshape": ["test_shape.py::test_reshape_and_flatten_match_torch"],
    "view": ["test_shape.py::test_view_refuses_non_contiguous_like_torch"],
    "flatten": ["test_shape.py::test_reshape_and_flatten_match_torch"],
    "permute": ["test_shape.py::test_permute_transpose_and_mT_match_torch", *_SHAPE],
    "transpose": ["test_shape.py::test_permute_transpose_and_mT_match_torch"],
    "expand": ["test_shape.py::test_expand_squeeze_unsqueeze_match_torch", *_SHAPE],
    "broadcast_to": ["test_shape.py::test_expand_squeeze_unsqueeze_match_torch"],
    "squeeze": ["test_shape.py::test_expand_squeeze_unsqueeze_match_torch"],
    "unsqueeze": ["test_shape.py::test_expand_squeeze_unsqueeze_match_torch"],
    "cat": ["test_shape.py::test_cat_stack_split_chunk_match_torch", *_SHAPE],
    "stack": ["test_shape.py::test_cat_stack_split_chunk_match_torch"],
    "split": ["test_shape.py::test_cat_stack_split_chunk_match_torch",
              "test_shape.py::test_split_with_sections_and_unbind_match_torch"],
    "chunk": ["test_shape.py::test_cat_stack_split_chunk_match_torch"],
    "unbind": ["test_shape.py::test_split_with_sections_and_unbind_match_torch"],
    "select": ["test_shape.py::test_split_with_sections_and_unbind_match_torch"],
    "pad": ["test_shape.py::test_pad_matches_torch", *_SHAPE],
    "repeat": ["test_shape.py::test_repeat_clone_contiguous_match_torch", *_SHAPE],
    "clone": ["test_shape.py::test_repeat_clone_contiguous_match_torch"],
    "contiguous": ["test_shape.py::test_repeat_clone_contiguous_match_torch"],
    # indexing (getitem/setitem are Tensor.__getitem__/__setitem__: test_indexing.py covers them too)
    "gather": ["test_indexing.py::test_gather_and_scatter_add_match_torch", *_INDEX],
    "scatter_add": ["test_indexing.py::test_gather_and_scatter_add_match_torch", *_INDEX],
    "index_select": ["test_indexing.py::test_index_select_and_masked_fill_match_torch", *_INDEX],
    "masked_fill": ["test_indexing.py::test_index_select_and_masked_fill_match_torch", *_INDEX],
    # linear algebra
    "matmul": ["test_linalg.py::test_matmul_matches_torch", "test_linalg.py::test_matmul_and_linear_pass_gradcheck"],
    "linear": ["test_linalg.py::test_linear_matches_torch", "test_linalg.py::test_matmul_and_linear_pass_gradcheck"],
    # convolution and pooling
    "conv2d": ["test_conv_pool.py::test_conv2d_forward_and_gradients_match_torch",
               "test_conv_pool.py::test_conv2d_passes_gradcheck"],
    "max_pool2d": ["test_conv_pool.py::test_max_pool2d_values_indices_and_gradients_match_torch", *_POOL],
    "avg_pool2d": ["test_conv_pool.py::test_avg_pool2d_forward_and_gradients_match_torch", *_POOL],
    "adaptive_avg_pool2d": ["test_conv_pool.py::test_adaptive_pools_match_torch", *_POOL],
    "adaptive_max_pool2d": ["test_conv_pool.py::test_adaptive_pools_match_torch", *_POOL],
    # softmax and losses
    "softmax": ["test_softmax_loss.py::test_softmax_and_log_softmax_match_torch_along_any_dim",
                "test_softmax_loss.py::test_softmax_gradients_pass_finite_differences"],
    "log_softmax": ["test_softmax_loss.py::test_softmax_and_log_softmax_match_torch_along_any_dim",
                    "test_softmax_loss.py::test_softmax_gradients_pass_finite_differences"],
    "cross_entropy": ["test_softmax_loss.py::test_cross_entropy_with_class_indices_matches_torch",
                      "test_softmax_loss.py::test_cross_entropy_gradients_pass_finite_differences"],
    "nll_loss": ["test_softmax_loss.py::test_nll_loss_matches_torch", *_POINTWISE_LOSS],
    "mse_loss": ["test_softmax_loss.py::test_mse_and_l1_losses_match_torch", *_POINTWISE_LOSS],
    "l1_loss": ["test_softmax_loss.py::test_mse_and_l1_losses_match_torch", *_POINTWISE_LOSS],
    "smooth_l1_loss": ["test_softmax_loss.py::test_smooth_l1_loss_matches_torch", *_POINTWISE_LOSS],
    "binary_cross_entropy_with_logits": ["test_softmax_loss.py::test_binary_cross_entropy_with_logits_matches_torch",
                                         *_POINTWISE_LOSS],
    "binary_cross_entropy": ["test_softmax_loss.py::test_binary_cross_entropy_matches_torch", *_POINTWISE_LOSS],
    "kl_div": ["test_softmax_loss.py::test_kl_div_matches_torch", *_POINTWISE_LOSS],
    # normalisation, dropout, embedding
    "layer_norm": ["test_normalization.py::test_layer_norm_matches_torch",
                   "test_normalization.py::test_layer_norm_gradients_pass_finite_differences"],
    "batch_norm": ["test_normalization.py::test_batch_norm_training_matches_torch_and_updates_running_stats",
                   "test_normalization.py::test_batch_norm_gradients_pass_finite_differences"],
    "group_norm": ["test_normalization.py::test_group_norm_matches_torch",
                   "test_normalization.py::test_group_norm_gradients_pass_finite_differences"],
    "dropout": ["test_dropout_embedding.py::test_dropout_zeroes_a_fraction_p_and_preserves_the_mean",
                "test_dropout_embedding.py::test_dropout_gradient_uses_the_same_mask"],
    "embedding": ["test_dropout_embedding.py::test_embedding_matches_torch_with_repeated_indices_and_padding",
                  "test_dropout_embedding.py::test_embedding_gradients_pass_finite_differences"],
}


def _test_functions(filename: str) -> set[str]:
    tree = ast.parse((HERE / filename).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_public_op_has_a_row():
    missing = sorted(set(dslearn.ops.__all__) - set(OP_TESTS))
    assert not missing, f"ops without tests in OP_TESTS: {missing}"


def test_the_table_lists_only_public_ops():
    assert not set(OP_TESTS) - set(dslearn.ops.__all__)


@pytest.mark.parametrize("op", sorted(OP_TESTS))
def test_every_listed_test_exists(op):
    for reference in OP_TESTS[op]:
        filename, name = reference.split("::")
        assert name in _test_functions(filename), f"{op}: {reference} does not exist"
