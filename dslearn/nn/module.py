"""``Module``: the base class of every layer and model, with PyTorch's names and semantics.

A Module keeps three ordered registries, filled by plain attribute assignment:
``_parameters`` (learnable ``Parameter`` s), ``_buffers`` (state that is saved but not learned,
such as BatchNorm's running mean) and ``_modules`` (child modules). Everything else —
``parameters()``, ``state_dict()``, ``to()``, ``train()``, ``repr`` — walks those registries.
Calling a module runs its hooks around ``forward`` (registration and calling live in
``dslearn.nn.hooks``).

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.device, dslearn.autograd,
dslearn.nn.parameter, dslearn.nn.hooks, dslearn.nn.state_dict, dslearn.nn.printing.

>>> import dslearn as ds
>>> class TwoLayer(Module):
...     def __init__(self):
...         super().__init__()
...         self.hidden = ds.nn.Linear(4, 3)
...         self.out = ds.nn.Linear(3, 1)
...     def forward(self, x):
...         return self.out(self.hidden(x).relu())
>>> model = TwoLayer()
>>> [name for name, _ in model.named_parameters()]
['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
>>> model(ds.ones(2, 4)).shape
(2, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

from dslearn import dtypes
from dslearn.autograd.grad_mode import no_grad
from dslearn.device import Device
from dslearn.nn import state_dict as _state_dict
from dslearn.nn.hooks import HookRegistration, call_with_hooks
from dslearn.nn.parameter import Parameter
from dslearn.nn.printing import format_repr, indent
from dslearn.tensor import Tensor


class Module(HookRegistration):
    """Base class for layers and models: subclass it, assign layers in ``__init__``, define ``forward``.

    >>> import dslearn as ds
    >>> ds.nn.Sequential(ds.nn.Linear(2, 2), ds.nn.ReLU())
    Sequential(
      (0): Linear(in_features=2, out_features=2, bias=True)
      (1): ReLU()
    )
    """

    training: bool

    def __init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", OrderedDict())
        set_(self, "_buffers", OrderedDict())
        set_(self, "_non_persistent_buffers_set", set())
        set_(self, "_modules", OrderedDict())
        set_(self, "_forward_pre_hooks", OrderedDict())
        set_(self, "_forward_hooks", OrderedDict())
        set_(self, "_backward_hooks", OrderedDict())
        set_(self, "_hooks_with_kwargs", set())

    def forward(self, *args, **kwargs):
        """The computation; every subclass defines it (call the module, not ``forward``, to run hooks)."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # -- calling --------------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks):
            return self.forward(*args, **kwargs)
        return call_with_hooks(self, args, kwargs)

    # -- registration -----------------------------------------------------------------------------

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as a bias-free layer's ``bias``) under ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_new_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(dslearn.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"cannot assign a non-leaf Tensor to parameter '{name}'; a model parameter must be "
                             "a leaf: wrap a detached copy, Parameter(t.detach().clone())")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state saved in ``state_dict`` (unless ``persistent=False``) but not learned.

        >>> import dslearn as ds
        >>> m = Module(); m.register_buffer("steps", ds.tensor(0)); dict(m.state_dict())
        {'steps': tensor(0)}
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_new_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (what ``self.name = module`` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module subclass")
        self._check_new_name("module", name, self._modules)
        self._modules[name] = module

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias of ``add_module`` (PyTorch has both spellings)."""
        self.add_module(name, module)

    def _check_new_name(self, kind: str, name, registry: dict) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name cannot contain ".", got "{name}"')
        if name == "":
            raise KeyError(f"{kind} name cannot be an empty string")
        if name not in registry and (name in self.__dict__ or hasattr(type(self), name)
                                     or any(name in r for r in self._registries())):
            raise KeyError(f"attribute '{name}' already exists")

    def _registries(self) -> tuple[dict, dict, dict]:
        return self._parameters, self._buffers, self._modules

    def __setattr__(self, name: str, value) -> None:
        registries = self.__dict__.get("_parameters"), self.__dict__.get("_buffers"), self.__dict__.get("_modules")
        params, buffers, modules = registries
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep=params)
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep=modules)
            modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(dslearn.nn.Parameter or None expected)")
            params[name] = None
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(dslearn.nn.Module or None expected)")
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict) -> None:
        """Drop ``name`` from ``__dict__`` and from every registry but ``keep`` (where it keeps its place)."""
        self.__dict__.pop(name, None)
        for registry in self._registries():
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        state = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in state and name in state[registry]:
                return state[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in self._registries():
            if name in registry:
                del registry[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for registry in self._registries():
            names.update(registry)
        return sorted(names)

    # -- traversal --------------------------------------------------------------------------------

    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and every descendant, with dotted names ('' for self); each module once."""
        memo = set() if memo is None else memo
        if remove_duplicate and self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct children with their names."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct children."""
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        owners = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for owner_name, owner in owners:
            for name, value in getattr(owner, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield owner_name + ("." if owner_name else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name (``'0.weight'``); shared ones once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (what an optimizer updates)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Every buffer with its dotted name."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target: str) -> Module:
        """The descendant at a dotted path, e.g. ``model.get_submodule('features.0')``."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' (looking up '{target}')")
            module = child
        return module

    def num_parameters(self, only_trainable: bool = False) -> int:
        """How many numbers the model learns (parameters that require grad, with ``only_trainable``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    # -- modes and bulk changes -------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch statistics) on this module and all descendants."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode is expected to be a bool, got {type(mode).__name__}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient recording on or off for every parameter (freezing a backbone, say)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: set it to None (default) or to zeros."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad = Tensor._make(np.zeros_like(param.grad._data))

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every descendant (children first) and then on this module; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False) -> Module:
        """Move and/or cast parameters and buffers in place: ``model.to(ds.float64)``, ``model.to('cpu')``.

        Only floating point tensors change dtype; each Parameter stays the same object, so an
        optimizer built before the move keeps working.

        >>> import dslearn as ds
        >>> layer = ds.nn.Linear(2, 2); weight = layer.weight
        >>> layer.to(ds.float64).weight.dtype, layer.weight is weight
        (dslearn.float64, True)
        """
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif isinstance(arg, (str, Device)):
                device = arg
            else:
                dtype = arg
        if dtype is not None:
            dtype = dtypes.get_dtype(dtype)
            if not dtype.is_floating_point:
                raise TypeError(f"Module.to only accepts floating point dtypes, got {dtype}")

        def convert(t: Tensor) -> Tensor:
            return t.to(dtype=dtype if t.is_floating_point() else None, device=device)

        return self._apply(convert)

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Replace the data of every parameter, gradient and buffer by ``fn`` of it, keeping the objects."""
        with no_grad():
            for module in self.modules():
                for registry in (module._parameters, module._buffers):
                    for tensor in registry.values():
                        if tensor is None:
                            continue
                        tensor._data = fn(tensor)._data
                        if tensor.grad is not None:
                            tensor.grad = fn(tensor.grad)
        return self

    def float(self) -> Module:
        return self.to(dtypes.float32)

    def double(self) -> Module:
        return self.to(dtypes.float64)

    def half(self) -> Module:
        return self.to(dtypes.float16)

    def bfloat16(self) -> Module:
        return self.to(dtypes.bfloat16)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Module:
        return self.to(f"cuda:{device}" if isinstance(device, int) else (device or "cuda"))

    # -- saving and loading -------------------------------------------------------------------------

    def state_dict(self, *, destination: OrderedDict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (``'features.0.weight'``), in registration order.

        Values share memory with the model (detached unless ``keep_vars``).

        >>> import dslearn as ds
        >>> list(ds.nn.Sequential(ds.nn.Linear(2, 3), ds.nn.BatchNorm1d(3)).state_dict())
        ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        return _state_dict.collect(self, OrderedDict() if destination is None else destination, prefix, keep_vars)

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> _state_dict.IncompatibleKeys:
        """Copy values into the existing parameters and buffers; returns ``(missing_keys, unexpected_keys)``.

        With ``strict=True`` (default) a missing or unexpected key is an error; a shape mismatch
        always is. See ``dslearn.nn.state_dict``.
        """
        return _state_dict.load(self, state_dict, strict)

    # -- printing --------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The layer's settings shown inside its repr (``in_features=2, out_features=3, bias=True``)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {indent(repr(module), 2)}" for name, module in self._modules.items()]
        return format_repr(self._get_name(), extra_lines, child_lines)
