"""Probes of lab 00-welcome: ``mean_squared_error(pred, target)``, checked by the grader, never in the sandbox.

One entry per graded cell of labs/00-welcome/00-welcome.ipynb; a cell scores its point when all its
probes pass. They ask what the notebook's tests ask (see the hidden cells there), on inputs drawn from
``rng`` when a submission is graded. The library's loss is disabled and torch cannot be imported while
the lab is graded, so an answer that calls either fails every probe. Descriptions are what feedback
shows: they say what is checked, never the inputs or the expected numbers.
"""

import numpy as np

from dslearn.grading.probes import call, gradcheck, gradients, raises, records_gradient, returns, tensor

DISABLED = ["dslearn.nn.functional.mse_loss", "dslearn.nn.MSELoss"]
BLOCKED_MODULES = ["torch"]
MSE = "mean_squared_error"


def reference(pred: np.ndarray, target: np.ndarray) -> float:
    """The loss, computed by the grader."""
    return float(np.mean((pred - target) ** 2))


def mismatched(left: tuple, right: tuple):
    return call(MSE, tensor(np.zeros(left), "float32"), tensor(np.zeros(right), "float32"))


def probes(rng: np.random.Generator) -> dict:
    pred, target = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 1.0])
    visible = call(MSE, tensor(pred, "float32", requires_grad=True), tensor(target, "float32"))
    values = []
    for shape in [(5,), (4, 3), (2, 3, 4), (1, 1), (7, 1, 2)]:
        p, t = rng.standard_normal(shape), rng.standard_normal(shape)
        values.append(returns(f"a 0-d tensor with the right value for inputs of shape {shape}",
                              call(MSE, tensor(p), tensor(t)), reference(p, t), rtol=1e-10))
    values += [raises(f"ValueError for shapes {left} and {right}", mismatched(left, right))
               for left, right in [((4, 1), (1, 4)), ((2, 3), (3, 2)), ((3,), (1, 3))]]
    own = rng.standard_normal((6, 2))
    return {
        "mse-visible": [
            returns("the visible example: a 0-d tensor worth 8/3", visible, 8 / 3, rtol=1e-6),
            gradients("the visible example's gradient with respect to pred", visible,
                      [[0.0, 4 / 3, 4 / 3], None], rtol=1e-5),
            raises("ValueError for shapes (2, 3) and (3,)", mismatched((2, 3), (3,))),
        ],
        "mse-hidden-values": values,
        "mse-hidden-gradients": [
            gradcheck(f"gradients with respect to both inputs of shape {shape} agree with finite differences",
                      MSE, [rng.standard_normal(shape), rng.standard_normal(shape)])
            for shape in [(3, 4), (2, 2, 3)]
        ],
        "mse-hidden-own-work": [
            records_gradient("a tensor that records gradients, computed by your code (the library loss and "
                             "torch are not available while grading)",
                             call(MSE, tensor(own, "float32", requires_grad=True),
                                  tensor(np.zeros((6, 2)), "float32"))),
            gradcheck("its gradient agrees with finite differences of its own values", MSE,
                      [own, np.zeros((6, 2))]),
        ],
    }
