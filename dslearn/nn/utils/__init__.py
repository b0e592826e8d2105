"""Helpers that act on a model's parameters as a whole: gradient clipping and flat-vector conversion.

May import: dslearn.nn.utils.clip_grad, dslearn.nn.utils.convert_parameters.
"""

from dslearn.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from dslearn.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
