"""How a Module call runs its hooks, and full backward hooks ``hook(module, grad_input, grad_output)``.

``call_with_hooks`` is ``Module.__call__`` once any hook is registered: forward pre-hooks may
replace the arguments, forward hooks the output.

A module's forward is a sub-graph with inputs on one side and outputs on the other. To see
the gradients that cross that boundary, ``Module.__call__`` passes every input that requires
grad through an identity op (a fresh graph node belonging to this call) and does the same to
every output. Tensor hooks on those identity outputs receive d(loss)/d(output) and
d(loss)/d(input) as backward crosses them; once the last expected input gradient arrives
(outputs always come first, since inputs are their ancestors), the module's hooks run with
both tuples. Differential privacy and architecture search capture per-layer gradients this way.

Limits (documented, so that a reader knows where the simplification bites): a hook may
replace ``grad_input`` only when a single input receives a gradient; if no input requires
grad, the hooks run when every output that requires grad has received its gradient.

May import: dslearn.tensor, dslearn.autograd.

>>> import dslearn as ds
>>> from dslearn import nn
>>> layer, seen = nn.Linear(3, 2), []
>>> _ = layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].shape, go[0].shape)))
>>> layer(ds.ones(4, 3, requires_grad=True)).sum().backward()
>>> seen
[((4, 3), (4, 2))]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.tensor import RemovableHandle, Tensor


class HookRegistration:
    """The hook-registering half of ``Module`` (kept here, beside the code that runs the hooks)."""

    _forward_pre_hooks: OrderedDict
    _forward_hooks: OrderedDict
    _backward_hooks: OrderedDict
    _hooks_with_kwargs: set

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before ``forward``; a returned value replaces ``args``.

        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs)`` and may return
        ``(args, kwargs)``.

        >>> import dslearn as ds
        >>> layer = ds.nn.Identity()
        >>> handle = layer.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
        >>> layer(ds.ones(2)), handle.remove(), layer(ds.ones(2))
        (tensor([2., 2.]), None, tensor([1., 1.]))
        """
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after ``forward``; a returned value replaces the output.

        With ``with_kwargs=True`` the hook is ``hook(module, args, kwargs, output)``.

        >>> import dslearn as ds
        >>> layer, shapes = ds.nn.Linear(3, 2), []
        >>> _ = layer.register_forward_hook(lambda m, args, out: shapes.append(out.shape))
        >>> _ = layer(ds.ones(5, 3)); shapes
        [(5, 2)]
        """
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    def register_full_backward_hook(self, hook: Callable, prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` when the gradients w.r.t. the module's inputs are ready.

        ``grad_input`` has one entry per positional argument (None where it is not a tensor that
        requires grad); ``grad_output`` one per output. See ``dslearn.nn.hooks`` for the details.

        >>> import dslearn as ds
        >>> layer, norms = ds.nn.Linear(3, 2), []
        >>> _ = layer.register_full_backward_hook(lambda m, gi, go: norms.append(float(go[0].abs().sum())))
        >>> layer(ds.ones(4, 3)).sum().backward(); norms
        [8.0]
        """
        return self._add_hook(self._backward_hooks, hook, prepend, with_kwargs=False)

    def _add_hook(self, registry: OrderedDict, hook: Callable, prepend: bool, with_kwargs: bool) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
        handle = RemovableHandle(registry, hook)
        if prepend:
            registry.move_to_end(handle.id, last=False)
        if with_kwargs:
            self._hooks_with_kwargs.add(handle.id)
        return handle


class BackwardHookIdentity(Function):
    """``y = x``: a graph node of its own, so that a tensor hook on ``y`` sees exactly this boundary."""

    name = "backward_hook"

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


class BackwardHook:
    """One forward call's gradient collector: wraps inputs and outputs, then calls the module's hooks."""

    def __init__(self, module, hooks: list) -> None:
        self.module, self.hooks = module, hooks
        self.input_positions: list[int] = []
        self.wrapped_inputs: list[Tensor] = []

    def wrap_inputs(self, args: tuple) -> tuple:
        """``args`` with every tensor that requires grad replaced by an identity of it."""
        self.n_inputs = len(args)
        wrapped = list(args)
        for i, arg in enumerate(args):
            if isinstance(arg, Tensor) and arg.requires_grad:
                wrapped[i] = BackwardHookIdentity.apply(arg)
                self.input_positions.append(i)
                self.wrapped_inputs.append(wrapped[i])
        return tuple(wrapped)

    def wrap_outputs(self, result):
        """``result`` (a tensor, or a tuple/list of them) with hooked identities on what requires grad."""
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        self.n_outputs = len(outputs)
        wrapped, output_positions = list(outputs), []
        for i, out in enumerate(outputs):
            if isinstance(out, Tensor) and out.requires_grad:
                wrapped[i] = BackwardHookIdentity.apply(out)
                wrapped[i].register_hook(self._output_hook(i))
                output_positions.append(i)
        self.expected_inputs = self._inputs_reachable_from([outputs[i] for i in output_positions])
        self.expected_outputs = len(output_positions)
        for position, tensor in zip(self.input_positions, self.wrapped_inputs):
            if id(tensor) in self.expected_inputs:
                tensor.register_hook(self._input_hook(position))
        self._reset()
        if not isinstance(result, (tuple, list)):
            return wrapped[0]
        return type(result)(wrapped)

    def _inputs_reachable_from(self, outputs: list[Tensor]) -> set[int]:
        """Ids of the wrapped inputs that some output was computed from (only those will get a gradient)."""
        boundary = {id(t) for t in self.wrapped_inputs}
        found, seen, stack = set(), set(), list(outputs)
        while stack:
            tensor = stack.pop()
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if id(tensor) in boundary:
                found.add(id(tensor))
            elif tensor._ctx is not None:
                stack.extend(p for p in tensor._ctx.parents if p.requires_grad)
        return found

    def _reset(self) -> None:
        self.grad_outputs: list = [None] * self.n_outputs
        self.grad_inputs: list = [None] * self.n_inputs
        self.outputs_pending, self.inputs_pending = self.expected_outputs, len(self.expected_inputs)

    def _output_hook(self, position: int):
        def hook(grad: Tensor) -> None:
            self.grad_outputs[position] = grad
            self.outputs_pending -= 1
            if not self.expected_inputs and self.outputs_pending == 0:
                self._call_user_hooks(replace_position=None)

        return hook

    def _input_hook(self, position: int):
        def hook(grad: Tensor):
            self.grad_inputs[position] = grad
            self.inputs_pending -= 1
            if self.inputs_pending == 0:
                return self._call_user_hooks(replace_position=position)
            return None

        return hook

    def _call_user_hooks(self, replace_position: int | None):
        """Run the module's hooks; return the replacement for the input at ``replace_position``, if any."""
        grad_input, grad_output = tuple(self.grad_inputs), tuple(self.grad_outputs)
        name = type(self.module).__name__
        for hook in list(self.hooks):
            result = hook(self.module, grad_input, grad_output)
            if result is None:
                continue
            result = tuple(result)
            if len(result) != len(grad_input):
                raise RuntimeError(f"backward hook of {name} returned {len(result)} grad_input values, "
                                   f"expected {len(grad_input)}")
            changed = [i for i, (new, old) in enumerate(zip(result, grad_input)) if new is not old]
            if changed and (replace_position is None or len(self.expected_inputs) > 1):
                raise RuntimeError(f"backward hook of {name}: grad_input can be replaced only when a single input "
                                   f"receives a gradient; this call has {len(self.expected_inputs)}")
            grad_input = result
        self._reset()
        return None if replace_position is None else grad_input[replace_position]


def call_with_hooks(module, args: tuple, kwargs: dict):
    """``module(*args, **kwargs)`` with its hooks: pre-forward hooks, forward, forward hooks, backward wiring."""
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook_id in module._hooks_with_kwargs:
            result = hook(module, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError("forward pre-hook with kwargs must return None or (new_args, new_kwargs), "
                                       f"got {type(result).__name__}")
                args, kwargs = result
        else:
            result = hook(module, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
    backward_hook = None
    if module._backward_hooks and is_grad_enabled():
        backward_hook = BackwardHook(module, list(module._backward_hooks.values()))
        args = backward_hook.wrap_inputs(args)
    output = module.forward(*args, **kwargs)
    for hook_id, hook in list(module._forward_hooks.items()):
        if hook_id in module._hooks_with_kwargs:
            result = hook(module, args, kwargs, output)
        else:
            result = hook(module, args, output)
        if result is not None:
            output = result
    if backward_hook is not None:
        output = backward_hook.wrap_outputs(output)
    return output
