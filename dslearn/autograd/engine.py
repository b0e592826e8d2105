"""The backward engine: walk the graph from the outputs back to the leaves.

``backward`` sorts the graph topologically (iteratively, so deep graphs do not hit Python's
recursion limit), then calls each node's ``backward`` once, summing the gradients that reach
a tensor along several paths. Tensor hooks see (and may replace) each gradient. Unless
``retain_graph`` is set, every node frees its saved values as soon as it has run.

May import: dslearn.tensor, dslearn.autograd.function, dslearn.autograd.grad_mode.

>>> import dslearn as ds
>>> x = ds.tensor([1.0, 2.0], requires_grad=True)
>>> (y,) = grad((x * x).sum(), [x], create_graph=True)
>>> y, grad(y.sum(), [x])[0]
(tensor([2., 4.], grad_fn=<AddBackward>), tensor([2., 2.]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dslearn.autograd.function import run_backward
from dslearn.autograd.grad_mode import set_grad_enabled
from dslearn.tensor import Tensor


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad``.

    >>> import dslearn as ds
    >>> w = ds.tensor([3.0], requires_grad=True)
    >>> backward([(w * w).sum()]); w.grad
    tensor([6.])
    """
    roots, root_grads = _roots_and_grads(tensors, grad_tensors)
    _execute(roots, root_grads, retain_graph=create_graph if retain_graph is None else retain_graph,
             create_graph=create_graph, wanted=None)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Return d(outputs)/d(inputs) without touching any ``.grad``.

    With ``create_graph=True`` the result is itself differentiable (higher-order gradients).
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} (shape {t.shape}) does not require grad")
    roots, root_grads = _roots_and_grads(outputs, grad_outputs)
    wanted = {id(t): None for t in inputs}
    _execute(roots, root_grads, retain_graph=create_graph if retain_graph is None else retain_graph,
             create_graph=create_graph, wanted=wanted)
    result = tuple(wanted[id(t)] for t in inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"autograd.grad: input {i} (shape {inputs[i].shape}) was not used to compute the outputs; "
                "pass allow_unused=True if this is expected"
            )
    return result


def _roots_and_grads(tensors, grad_tensors):
    roots = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(roots)
    elif isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors]
    if len(grad_tensors) != len(roots):
        raise ValueError(f"backward: got {len(roots)} tensors but {len(grad_tensors)} gradients")
    root_grads = []
    for i, (root, g) in enumerate(zip(roots, grad_tensors)):
        if not root.requires_grad:
            raise RuntimeError(
                f"backward: element {i} of tensors does not require grad and has no grad_fn; did you compute "
                "it under no_grad() or from tensors without requires_grad=True?"
            )
        if g is None:
            if root.numel() != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, got shape {root.shape}; "
                    "pass gradient=... of the same shape"
                )
            g = Tensor._make(np.ones_like(root._data))
        elif not isinstance(g, Tensor):
            raise TypeError(f"backward: gradient must be a Tensor, got {type(g).__name__}")
        elif g.shape != root.shape:
            raise RuntimeError(f"backward: gradient has shape {g.shape} but the tensor has shape {root.shape}")
        root_grads.append(g)
    return roots, root_grads


def topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors that require grad, each after every tensor it was computed from."""
    order, visited = [], set()
    stack = [(root, False) for root in roots]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._ctx is not None:
            stack.extend((p, False) for p in tensor._ctx.parents if p.requires_grad and id(p) not in visited)
    return order


def _execute(roots, root_grads, retain_graph: bool, create_graph: bool, wanted: dict | None) -> None:
    grads: dict[int, Tensor] = {}
    for root, g in zip(roots, root_grads):
        _accumulate(grads, root, g)
    # Like PyTorch, let inf/nan flow silently (detect_anomaly is the tool that stops at them).
    with set_grad_enabled(create_graph), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for tensor in reversed(topological_order(roots)):
            g = grads.pop(id(tensor), None)
            if g is None:
                continue
            if tensor._hooks:
                for hook in tensor._hooks.values():
                    replaced = hook(g)
                    if replaced is not None:
                        g = replaced
            ctx = tensor._ctx
            if wanted is not None:
                if id(tensor) in wanted:
                    wanted[id(tensor)] = g
            elif ctx is None or tensor._retains_grad:
                _accumulate_into_grad(tensor, g, create_graph)
            if ctx is None:
                continue
            for parent, parent_grad in zip(ctx.parents, run_backward(ctx, g)):
                if parent_grad is not None and parent.requires_grad:
                    _check_grad(ctx, parent, parent_grad)
                    _accumulate(grads, parent, parent_grad)
            if not retain_graph:
                ctx.release()


def _accumulate(grads: dict, tensor: Tensor, g: Tensor) -> None:
    previous = grads.get(id(tensor))
    grads[id(tensor)] = g if previous is None else previous + g


def _accumulate_into_grad(tensor: Tensor, g: Tensor, create_graph: bool) -> None:
    if not create_graph:
        g = g.detach()
    tensor.grad = g if tensor.grad is None else tensor.grad + g


def _check_grad(ctx, parent: Tensor, g: Tensor) -> None:
    if g.shape != parent.shape:
        raise RuntimeError(
            f"{ctx.fn.name} backward: gradient of shape {g.shape} for an input of shape {parent.shape}"
        )
    if g._data.dtype != parent._data.dtype:
        raise RuntimeError(
            f"{ctx.fn.name} backward: gradient dtype {g.dtype} for an input of dtype {parent.dtype}"
        )
