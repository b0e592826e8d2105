"""Guards: when may a compiled version of a function be reused for a call?

A trace is only valid for what it saw. ``call_key`` summarises a call cheaply (each tensor
argument's shape, dtype, device and ``requires_grad``, which arguments are the same tensor,
every other argument's value, and the grad mode); equal keys select the same cached
version. ``Guards`` then checks, at every call, what the key cannot see: the captured tensors
(parameters and buffers, read live) still have the shapes and dtypes they were traced with,
each module still holds the same parameter objects under the same names, and every module is
still in the training or evaluation mode it was traced in. A failed guard means "retrace",
never "run the stale version".

``ModuleScope`` finds the modules a function uses (the module itself for ``jit(module)``, or
modules named in the function's globals and closure) so that captured tensors get readable
labels (``fc1.weight``) and guards.

May import: dslearn.tensor, dslearn.autograd, dslearn.nn.

>>> import dslearn as ds
>>> key_a = call_key((ds.ones(2, 3),), {})
>>> key_a == call_key((ds.zeros(2, 3),), {}), key_a == call_key((ds.ones(4, 3),), {})
(True, False)
"""

from __future__ import annotations

import numpy as np

from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.nn.module import Module
from dslearn.tensor import Tensor


def call_key(args: tuple, kwargs: dict) -> tuple:
    """A hashable summary of a call: what selects a cached compiled version."""
    first_of_array: dict[int, int] = {}
    parts = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            data = a._data
            alias = first_of_array.setdefault(id(data), i)
            parts.append((data.shape, data.dtype, type(data), a.requires_grad, alias))
        else:
            parts.append(_constant_key(a))
    if kwargs:
        parts.append(tuple(sorted((k, _constant_key(v)) for k, v in kwargs.items())))
    return is_grad_enabled(), tuple(parts)


def _constant_key(value):
    """Non-tensor arguments are compiled in as constants: their value is part of the key."""
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, Tensor) for v in value):
            raise TypeError("jit: pass tensors as separate arguments, not inside a list or tuple")
        return type(value).__name__, tuple(_constant_key(v) for v in value)
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"jit: an argument of type {type(value).__name__} is neither a Tensor nor a hashable "
                        "constant; pass tensors, numbers, strings or tuples of them") from None
    return type(value).__name__, value


class ModuleScope:
    """The modules a jitted function uses: labels, ownership paths and modes of their tensors."""

    def __init__(self, roots: dict[str, Module]) -> None:
        self.labels: dict[int, str] = {}
        self.paths: dict[int, list[tuple[dict, str, object]]] = {}
        self.buffer_ids: set[int] = set()
        self.modules: list[Module] = []
        seen: set[int] = set()
        for prefix, root in roots.items():
            self._walk(root, prefix, [], seen)

    def _walk(self, module: Module, prefix: str, path: list, seen: set[int]) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        self.modules.append(module)
        for registry_name in ("_parameters", "_buffers"):
            registry = getattr(module, registry_name)
            for name, tensor in registry.items():
                if tensor is None or id(tensor) in self.labels:
                    continue
                self.labels[id(tensor)] = f"{prefix}{name}"
                self.paths[id(tensor)] = path + [(registry, name, tensor)]
                if registry_name == "_buffers":
                    self.buffer_ids.add(id(tensor))
        for name, child in module._modules.items():
            if child is not None:
                self._walk(child, f"{prefix}{name}.", path + [(module._modules, name, child)], seen)

    @classmethod
    def of_function(cls, fn, owner: Module | None) -> ModuleScope:
        """For ``jit(module)``: the module; for a function: the modules its code names."""
        if owner is not None:
            return cls({"": owner})
        roots: dict[str, Module] = {}
        scope: dict[str, object] = {}
        code = getattr(fn, "__code__", None)
        if code is not None:
            for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
                try:
                    scope[name] = cell.cell_contents
                except ValueError:  # a closure variable not assigned yet
                    continue
            for name in code.co_names:
                if name in getattr(fn, "__globals__", {}):
                    scope.setdefault(name, fn.__globals__[name])
            for name, value in scope.items():
                if isinstance(value, Module):
                    roots[f"{name}."] = value
        found = cls(roots)
        for name, value in scope.items():
            if isinstance(value, Tensor):
                found.labels.setdefault(id(value), name)
        return found


class Guards:
    """What a compiled version assumed about the world beyond its arguments; checked per call."""

    def __init__(self, captured: list[Tensor], scope: ModuleScope) -> None:
        self.captured = [(t, t._data.shape, t._data.dtype, type(t._data), t.requires_grad) for t in captured]
        checks = {}
        for t in captured:
            for registry, name, obj in scope.paths.get(id(t), []):
                checks[(id(registry), name)] = (registry, name, obj)
        self.ownership = list(checks.values())
        self.modes = [(m, m.training) for m in scope.modules]

    def failure(self) -> str | None:
        """Why this compiled version no longer applies, or None if it does."""
        for t, shape, dtype, kind, requires_grad in self.captured:
            data = t._data
            if data.shape != shape or data.dtype != dtype or type(data) is not kind:
                return (f"a captured tensor changed from {dtype.name}{list(shape)} to "
                        f"{data.dtype.name}{list(data.shape)}")
            if t.requires_grad != requires_grad:
                return "a captured tensor's requires_grad changed"
        for registry, name, obj in self.ownership:
            if registry.get(name) is not obj:
                return f"a module's '{name}' was replaced by another object"
        for module, training in self.modes:
            if module.training != training:
                return f"{type(module).__name__} switched to {'training' if module.training else 'eval'} mode"
        return None


def describe_key(key: tuple) -> str:
    """A short text for a cache key: the argument types and the grad mode (for reports)."""
    grad_mode, parts = key
    shown = []
    for part in parts:
        if len(part) == 5 and isinstance(part[1], np.dtype):
            shown.append(f"{part[1].name}{list(part[0])}" + ("+grad" if part[3] else ""))
        else:
            shown.append(repr(part[1]))
    return f"({', '.join(shown)}) grad_mode={'on' if grad_mode else 'off'}"
