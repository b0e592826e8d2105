"""A whole training step in one compiled plan: forward, backward and the optimizer's update.

    step = ds.jit(lambda x, y: ds.cross_entropy(model(x), y), optimizer=optimizer)
    loss = step(images, labels)     # the parameters are updated

Tracing runs the loss function once, then ``ds.autograd.grad(loss, parameters)`` under the
tracer: the backward graph is derived from the ops' own backward rules, exactly as eager
``loss.backward()`` computes it. The last node of the graph is the *optimizer step*: it applies
the optimizer's own per-parameter update (``Optimizer._update``, e.g. Adam's fused kernel; for
SGD the same arithmetic in one fused pass, ``kernels.cpu.fused_sgd``) to the parameters' arrays,
with the learning rate and other settings read from ``optimizer.param_groups`` at every call,
so schedulers keep working. The optimizer's
state (momentum buffers, Adam's moments, step counts) is the optimizer's own, and
``optimizer.state_dict()`` stays valid.

One compiled step behaves as ``optimizer.zero_grad(); loss.backward(); optimizer.step()``:
after it, each parameter's ``.grad`` holds this step's gradient. Those gradient arrays belong
to the compiled step and are overwritten by the next step (copy them to keep them).
Parameters that do not influence the loss get no gradient and are not updated, as in eager
mode. The step is retraced if the optimizer's parameter list changes.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.optim, dslearn.kernels, dslearn.jit.*.
"""

from __future__ import annotations

import time

import numpy as np

from dslearn.jit.capture import capture
from dslearn.jit.compiler import Entry
from dslearn.jit.guards import Guards, ModuleScope
from dslearn.jit.tracer import JitTraceError, differentiate
from dslearn.kernels.cpu.fused_sgd import sgd_update
from dslearn.optim.sgd import SGD
from dslearn.tensor import Tensor

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def fused_sgd_update(optimizer: SGD):
    """SGD's per-parameter update as one fused kernel (``kernels.cpu.fused_sgd``), same arithmetic as ``_update``.

    The optimizer's own update runs where the kernel does not apply: the first step with
    momentum (it creates the buffer), non-contiguous or half-precision parameters.
    """
    def update(p: Tensor, grad: np.ndarray, group: dict) -> None:
        w, momentum = p._data, group["momentum"]
        buffer = optimizer.state[p].get("momentum_buffer") if momentum != 0 else None
        usable = (type(w) is np.ndarray and w.dtype in _KERNEL_DTYPES and grad.dtype == w.dtype
                  and w.flags.c_contiguous and (momentum == 0 or (buffer is not None
                                                                  and buffer._data.flags.c_contiguous)))
        if not usable:
            optimizer._update(p, grad, group)
            return
        sgd_update(w, grad, w[:0] if buffer is None else buffer._data, group["lr"], momentum, group["dampening"],
                   group["weight_decay"], group["nesterov"], group["maximize"])

    return update


def optimizer_step(optimizer, params: list[Tensor]):
    """The update node's function: set each ``p.grad`` and apply the optimizer's update to ``p``."""
    groups = [next(g for g in optimizer.param_groups if any(q is p for q in g["params"])) for p in params]
    update = fused_sgd_update(optimizer) if type(optimizer) is SGD else optimizer._update

    def step(*grads) -> None:
        for p, g, group in zip(params, grads, groups):
            p.grad = Tensor._make(g)
            update(p, g, group)
            p._version += 1  # autograd refuses saved values that changed
        optimizer._step_count += 1

    return step


class _OptimizerGuards(Guards):
    """The usual guards, plus: the optimizer still has the same parameters in the same groups."""

    def __init__(self, captured, scope, optimizer) -> None:
        super().__init__(captured, scope)
        self.optimizer = optimizer
        self.layout = self._layout()

    def _layout(self) -> list:
        return [(id(group), [id(p) for p in group["params"]]) for group in self.optimizer.param_groups]

    def failure(self) -> str | None:
        if self._layout() != self.layout:
            return "the optimizer's parameter groups changed"
        return super().failure()


class TrainingEntry(Entry):
    """One plan: loss, gradients, and the optimizer's update of every parameter that got a gradient."""

    def __init__(self, fn, args, kwargs, scope: ModuleScope, name: str, optimizer, backend: str, passes,
                 print_passes: bool) -> None:
        optimizer._require_bound()
        params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
        for p in params:  # the optimizer's parameters are captured by reference even if no module names them
            scope.labels.setdefault(id(p), f"param{len(scope.labels)}")
        started = time.perf_counter()

        def record_update(tracer, outputs):
            if len(outputs) != 1 or outputs[0].numel() != 1:
                raise JitTraceError(f"jit: with optimizer=..., the function must return the loss as one scalar "
                                    f"tensor, got {len(outputs)} tensor(s) of shape(s) {[o.shape for o in outputs]}")
            if not outputs[0].requires_grad:
                raise JitTraceError("jit: the loss does not depend on any parameter that requires grad (was it "
                                    "computed under no_grad, or from detached tensors?)")
            loss = outputs[0].reshape(())
            grads = differentiate(tracer, [loss], params, None)
            present = [(p, g) for p, g in zip(params, grads) if g is not None]
            grad_values = [tracer.value_of(g) for _, g in present]
            updated = [p for p, _ in present]
            tracer.graph.add_node("optimizer_step", grad_values, [], {"optimizer": type(optimizer).__name__,
                                                                      "_step": optimizer_step(optimizer, updated)},
                                  kind="optimizer")
            return {"updated": updated}

        traced = capture(fn, args, kwargs, scope, name, record_update)
        super().__init__(traced.graph, _OptimizerGuards(traced.captured, scope, optimizer), traced.structure,
                         time.perf_counter() - started)
        self.print_passes = print_passes
        self.captured = traced.captured
        self.plan = self.build(self.optimise(traced.graph, passes), backend, "train_step")

    def run(self, tensors: list[Tensor]):
        arrays = [t._data for t in tensors] + [t._data for t in self.captured]
        (loss,) = self.plan(*arrays)
        return Tensor._make(loss)
