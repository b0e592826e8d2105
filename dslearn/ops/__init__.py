"""Every op dslearn can differentiate, grouped by kind, re-exported here.

``Tensor`` methods call these functions; ``dslearn.nn.functional`` re-exports the neural
network ones. Each submodule holds the ``Function`` classes (forward and backward side by
side) and the public functions that check arguments and call ``Function.apply``.

May import: everything under dslearn.ops, dslearn.tensor, dslearn.autograd.
"""

from dslearn.ops.arguments import normalize_dim
from dslearn.ops.conv import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, conv2d, max_pool2d
from dslearn.ops.dropout import dropout
from dslearn.ops.elementwise import (
                                     abs,
                                     add,
                                     cast,
                                     ceil,
                                     clamp,
                                     cos,
                                     div,
                                     eq,
                                     erf,
                                     exp,
                                     floor,
                                     floor_divide,
                                     ge,
                                     gelu,
                                     gt,
                                     isfinite,
                                     isnan,
                                     le,
                                     leaky_relu,
                                     log,
                                     logical_and,
                                     logical_not,
                                     logical_or,
                                     logical_xor,
                                     lt,
                                     maximum,
                                     minimum,
                                     mul,
                                     ne,
                                     neg,
                                     pow,
                                     relu,
                                     remainder,
                                     round,
                                     rsqrt,
                                     sigmoid,
                                     sign,
                                     sin,
                                     softplus,
                                     sqrt,
                                     sub,
                                     tanh,
                                     unbroadcast,
                                     where,
)
from dslearn.ops.embedding import embedding
from dslearn.ops.indexing import gather, getitem, index_put, index_select, masked_fill, scatter_add, setitem
from dslearn.ops.inplace import copy_from, full_like_of, inplace
from dslearn.ops.linalg import linear, matmul
from dslearn.ops.loss import (
                                     binary_cross_entropy,
                                     binary_cross_entropy_with_logits,
                                     cross_entropy,
                                     kl_div,
                                     l1_loss,
                                     mse_loss,
                                     nll_loss,
                                     smooth_l1_loss,
)
from dslearn.ops.normalization import batch_norm, group_norm, layer_norm
from dslearn.ops.reduction import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, norm, std, sum, var
from dslearn.ops.shape import (
                                     broadcast_to,
                                     cat,
                                     chunk,
                                     clone,
                                     contiguous,
                                     expand,
                                     flatten,
                                     pad,
                                     permute,
                                     repeat,
                                     reshape,
                                     select,
                                     split,
                                     squeeze,
                                     stack,
                                     transpose,
                                     unbind,
                                     unsqueeze,
                                     view,
)
from dslearn.ops.softmax import log_softmax, softmax
from dslearn.ops.transfer import to_device

# The functional API re-exported by ``import dslearn as ds`` (ds.exp, ds.cat, ds.conv2d, ...). Helpers the
# Tensor class uses internally (inplace, getitem, unbroadcast, ...) stay reachable as dslearn.ops.<name>.
_INTERNAL = {"normalize_dim", "unbroadcast", "inplace", "copy_from", "full_like_of", "getitem", "setitem", "index_put",
             "to_device", "cast"}
__all__ = sorted(name for name, value in globals().items()
                 if callable(value) and value.__module__.startswith("dslearn.ops") and name not in _INTERNAL)
