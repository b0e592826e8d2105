"""Containers: ``Sequential`` (a pipeline), ``ModuleList`` and ``ModuleDict`` (registered collections).

A plain Python list of layers is invisible to ``parameters()``; these containers register each
layer as a child, so that its parameters are trained, saved and moved with the model.

May import: operator, collections, dslearn.nn.module, dslearn.nn.printing.

>>> import dslearn as ds
>>> model = Sequential(ds.nn.Linear(4, 8), ds.nn.ReLU(), ds.nn.Linear(8, 2))
>>> len(model), type(model[0]).__name__, model[1:]
(3, 'Linear', Sequential(
  (1): ReLU()
  (2): Linear(in_features=8, out_features=2, bias=True)
))
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

from dslearn.nn.module import Module
from dslearn.nn.printing import format_repr, indent

# Set by dslearn.checkpoint.set_grad_checkpoint(True): ``hook(child, input)`` runs a child through
# activation checkpointing. Sequential calls it for each child in training mode.
checkpoint_hook = None


def _absolute_index(idx, size: int, container: str) -> int:
    idx = operator.index(idx)
    if not -size <= idx < size:
        raise IndexError(f"{container}: index {idx} is out of range for {size} modules")
    return idx % size


class Sequential(Module):
    """Run modules one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Pass an ``OrderedDict`` to name the layers. Indexing gives a layer, slicing a Sequential.

    >>> import dslearn as ds
    >>> net = Sequential(OrderedDict(fc=ds.nn.Linear(2, 3), act=ds.nn.Tanh()))
    >>> list(net.state_dict())
    ['fc.weight', 'fc.bias']
    """

    def __init__(self, *args: Module) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, input):
        hook = checkpoint_hook if self.training else None
        for module in self._modules.values():
            input = module(input) if hook is None else hook(module, input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_absolute_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, list(self._modules)[_absolute_index(idx, len(self), "Sequential")], module)

    def __delitem__(self, idx) -> None:
        if isinstance(idx, slice):
            names = list(self._modules)[idx]
        else:
            names = [list(self._modules)[_absolute_index(idx, len(self), "Sequential")]]
        for name in names:
            del self._modules[name]
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))  # keep 0..n-1

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add a layer at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        """Add several layers at the end; returns self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert a layer before position ``index`` (renumbering those after it); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert: {type(module).__name__} is not a Module subclass")
        if not -len(self) <= index <= len(self):
            raise IndexError(f"Sequential.insert: index {index} is out of range for {len(self)} modules")
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))
        return self


class ModuleList(Module):
    """A list of modules, each registered as a child (``'0'``, ``'1'``, ...); it has no ``forward``.

    >>> import dslearn as ds
    >>> blocks = ModuleList([ds.nn.Linear(2, 2) for _ in range(3)])
    >>> len(list(blocks.parameters()))
    6
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_absolute_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(_absolute_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx) -> None:
        if isinstance(idx, slice):
            names = list(self._modules)[idx]
        else:
            names = [str(_absolute_index(idx, len(self), "ModuleList"))]
        for name in names:
            del self._modules[name]
        self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        """Add a module at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add modules at the end; returns self."""
        if not isinstance(modules, Iterable):
            raise TypeError(f"ModuleList.extend: expected an iterable of modules, got {type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert a module before position ``index``."""
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules = OrderedDict()
        self.extend(modules)

    def pop(self, idx: int = -1) -> Module:
        """Remove and return the module at ``idx``."""
        module = self[idx]
        del self[idx]
        return module

    def __repr__(self) -> str:
        """One line per run of identical modules, ``(0-11): 12 x Block(...)``, as PyTorch prints."""
        runs: list[list] = []  # [first index, last index, repr]
        for i, module in enumerate(self):
            text = repr(module)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [indent(f"({a}): {text}" if a == b else f"({a}-{b}): {b - a + 1} x {text}", 2)
                 for a, b, text in runs]
        return format_repr(self._get_name(), [], lines)


class ModuleDict(Module):
    """A dict of modules, each registered as a child under its key.

    >>> import dslearn as ds
    >>> heads = ModuleDict({"digit": ds.nn.Linear(8, 10), "parity": ds.nn.Linear(8, 2)})
    >>> list(heads), heads["parity"].out_features
    (['digit', 'parity'], 2)
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        """Remove and return the module under ``key``."""
        return self._modules.pop(key)

    def clear(self) -> None:
        """Remove every module."""
        self._modules.clear()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add (or replace) modules from a mapping or from ``(key, module)`` pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"ModuleDict.update: element #{i} should be a (key, module) pair, got {pair!r}")
            self[pair[0]] = pair[1]
