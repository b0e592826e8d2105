"""``Optimizer``: the base class of SGD, Adam, AdamW and RMSprop.

An optimizer holds *parameter groups*: dicts with the key ``'params'`` (a list of leaf
tensors) and the hyper-parameters for those tensors (``'lr'``, ``'weight_decay'``, ...).
A group that leaves a hyper-parameter out gets the optimizer's ``defaults``. ``state[p]``
is what the algorithm remembers about parameter ``p`` between steps (a momentum buffer,
moment estimates), kept as dslearn Tensors so that a checkpoint is tensors and numbers.

``step()`` updates each parameter that has a gradient in place, on its NumPy array
(``p._data``): no autograd graph is recorded, and a parameter keeps its identity (same
Tensor, same array), so a model and any view of a parameter see the new values.

An optimizer can exist before its parameters do: ``Adam(0.01)`` reads the number as the
learning rate, and ``bind(params)`` attaches the parameters later.

May import: numpy, dslearn.tensor, dslearn.autograd.

>>> import dslearn as ds
>>> from dslearn.optim import SGD
>>> w = ds.tensor([1.0, 2.0], requires_grad=True)
>>> opt = SGD([w], lr=0.5)
>>> (w * w).sum().backward()
>>> opt.step(); w
tensor([0., 0.], requires_grad=True)
"""

from __future__ import annotations

import copy
import inspect
import numbers
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from dslearn.autograd.grad_mode import enable_grad, no_grad
from dslearn.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step``, ``zero_grad``, ``state_dict``.

    A subclass passes its hyper-parameters as ``defaults``, checks them in
    ``_check_hyperparameters`` and updates one parameter in ``_update``.

    >>> import dslearn as ds
    >>> from dslearn.optim import Adam
    >>> opt = Adam(0.01)                       # no parameters yet
    >>> opt.is_bound
    False
    >>> w = ds.zeros(3, requires_grad=True)
    >>> opt.bind([w]).is_bound, opt.param_groups[0]["lr"]
    (True, 0.01)
    """

    supports_cuda = False  # True when ``_update`` also runs on GPU arrays (dslearn.kernels.cuda)

    def __init__(self, params, defaults: dict) -> None:
        self.defaults = dict(defaults)
        if isinstance(params, numbers.Real) and not isinstance(params, bool):
            self._take_learning_rate_first(params)
            params = None
        self._check_hyperparameters(self.defaults)
        self.state: defaultdict[Tensor, dict] = defaultdict(dict)
        self.param_groups: list[dict] = []
        self._step_count = 0  # read by the learning-rate schedulers (they warn if they step first)
        self._workspaces: dict[tuple, np.ndarray] = {}
        if params is not None:
            self.bind(params)

    def _take_learning_rate_first(self, lr: float) -> None:
        """``Adam(0.01)``: the number is the learning rate and the parameters come later."""
        name = type(self).__name__
        if self.defaults["lr"] != inspect.signature(type(self).__init__).parameters["lr"].default:
            raise TypeError(f"{name}: got a learning rate twice ({lr} as the first argument and "
                            f"lr={self.defaults['lr']}); use {name}(lr=...) or {name}(params, lr)")
        self.defaults["lr"] = lr

    # -- parameters ------------------------------------------------------------------------------

    @property
    def is_bound(self) -> bool:
        """True once the optimizer has parameters (given at creation, by ``bind`` or ``add_param_group``)."""
        return bool(self.param_groups)

    def bind(self, params) -> Optimizer:
        """Attach the parameters of an optimizer created without them; returns the optimizer.

        ``params`` is what the constructor accepts: an iterable of tensors, or of dicts
        (parameter groups with their own hyper-parameters).

        >>> import dslearn as ds
        >>> from dslearn.optim import SGD
        >>> w = ds.ones(2, requires_grad=True)
        >>> SGD(0.1).bind([w]).param_groups[0]["params"][0] is w
        True
        """
        name = type(self).__name__
        if self.param_groups:
            raise RuntimeError(f"{name}.bind: the optimizer already has parameters; "
                               "use add_param_group() to add more")
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of Tensors or dicts, got a single Tensor "
                            f"(shape {params.shape}); wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set, "
                            "so that state_dict ids mean the same thing in every run")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        return self

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones come from ``defaults``).

        >>> import dslearn as ds
        >>> from dslearn.optim import SGD
        >>> opt = SGD([ds.ones(2, requires_grad=True)], lr=0.1)
        >>> opt.add_param_group({"params": [ds.ones(3, requires_grad=True)], "lr": 0.01})
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: a parameter group must be a dict, "
                            f"got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' key (keys: {sorted(param_group)})")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be in an ordered collection (a list), not a set, "
                            "so that state_dict ids mean the same thing in every run")
        params = list(params)
        for i, p in enumerate(params):
            _check_parameter(p, i, name, self.supports_cuda)
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group lists the same parameter twice")
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        group = {"params": params, **{k: v for k, v in param_group.items() if k != "params"}}
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict) -> None:
        """Raise ValueError for an out-of-range hyper-parameter; subclasses add their own checks."""
        _check_at_least(self, group, "lr", 0.0, "learning rate")
        if "weight_decay" in group:
            _check_at_least(self, group, "weight_decay", 0.0, "weight_decay value")

    def _require_bound(self) -> None:
        if not self.param_groups:
            raise RuntimeError(f"{type(self).__name__} has no parameters yet: it was created as "
                               f"{self._creation_repr()}; call .bind(params) first")

    def _creation_repr(self) -> str:
        """``Adam(lr=0.01)``: the class and the hyper-parameters that differ from its defaults."""
        signature = inspect.signature(type(self).__init__).parameters
        shown = [f"{key}={value!r}" for key, value in self.defaults.items()
                 if key == "lr" or (key in signature and signature[key].default != value)]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- the update ------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set each ``p.grad`` to None (default) or to zeros.

        >>> import dslearn as ds
        >>> from dslearn.optim import SGD
        >>> w = ds.ones(2, requires_grad=True)
        >>> w.sum().backward(); opt = SGD([w], lr=0.1); opt.zero_grad(); w.grad is None
        True
        """
        self._require_bound()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    # A gradient may share memory with another tensor, so zeros are a new array.
                    p.grad = None if set_to_none else Tensor._make(np.zeros_like(p.grad._data))

    def step(self, closure: Callable[[], Tensor | float] | None = None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        ``closure`` re-evaluates the model and returns the loss (it runs with gradients on).
        Parameters whose ``grad`` is None are skipped and their state is left as it was.
        """
        self._require_bound()
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        if not self.supports_cuda and type(p._data) is not np.ndarray:
                            _check_parameter(p, group["params"].index(p), type(self).__name__, False)
                        self._update(p, p.grad._data, group)
                        p._version += 1  # autograd refuses saved values that changed
        self._step_count += 1
        return loss

    def _update(self, param: Tensor, grad: np.ndarray, group: dict) -> None:
        """Update one parameter's array in place from its gradient ``grad``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _workspace(self, like: np.ndarray, slot: int) -> np.ndarray:
        """A scratch array shaped like ``like``, allocated once and reused at every step."""
        key = (like.shape, like.dtype, slot)
        if key not in self._workspaces:
            self._workspaces[key] = np.empty_like(like)  # on the device of ``like``
        return self._workspaces[key]

    @staticmethod
    def _zeros_state(param: Tensor) -> Tensor:
        return Tensor._make(np.zeros_like(param._data))

    @staticmethod
    def _step_state() -> Tensor:
        """The step counter, a float32 scalar tensor as in PyTorch (so state dicts match)."""
        return Tensor._make(np.zeros((), dtype=np.float32))

    # -- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{'state': {id: {name: tensor}}, 'param_groups': [{..., 'params': [ids]}]}``, as in PyTorch.

        Parameters are numbered 0, 1, 2... in group order. The tensors are the optimizer's
        own, not copies: save (or ``copy.deepcopy``) the dict before stepping again.

        >>> import dslearn as ds
        >>> from dslearn.optim import SGD
        >>> opt = SGD([ds.ones(2, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> opt.state_dict()["param_groups"][0]["params"]
        [0]
        """
        self._require_bound()
        ids: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [ids.setdefault(id(p), len(ids)) for p in group["params"]]
            groups.append(packed)
        state = {ids[id(p)]: values for p, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` saved, into an optimizer over parameters of the same shapes.

        The saved tensors are copied (state tensors cast to their parameter's dtype, the
        step counter kept as saved); a PyTorch optimizer's state dict loads as well.
        """
        self._require_bound()
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups "
                             f"but the optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has {len(saved['params'])} "
                                 f"parameters in the state dict but {len(group['params'])} in the optimizer")
        params_by_id = {saved_id: p for saved, group in zip(saved_groups, self.param_groups)
                        for saved_id, p in zip(saved["params"], group["params"])}
        state: defaultdict[Tensor, dict] = defaultdict(dict)
        for saved_id, values in state_dict["state"].items():
            if saved_id not in params_by_id:
                raise ValueError(f"{name}.load_state_dict: the state dict has state for parameter id {saved_id}, "
                                 f"which no parameter group lists")
            param = params_by_id[saved_id]
            state[param] = {key: _loaded_value(key, value, param) for key, value in values.items()}
        groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            loaded = {"params": group["params"]}
            loaded.update(copy.deepcopy({key: value for key, value in saved.items() if key != "params"}))
            for key, value in self.defaults.items():
                loaded.setdefault(key, value)
            self._check_hyperparameters(loaded)
            groups.append(loaded)
        self.state, self.param_groups = state, groups

    def __repr__(self) -> str:
        if not self.param_groups:
            return f"{self._creation_repr()}  # no parameters yet"
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"


def _check_parameter(p, index: int, optimizer: str, supports_cuda: bool) -> None:
    if not isinstance(p, Tensor):
        raise TypeError(f"{optimizer} can only optimize Tensors, but parameter {index} is a {type(p).__name__}")
    if not p.is_floating_point():
        raise TypeError(f"{optimizer}: parameter {index} has dtype {p.dtype}; only floating point tensors "
                        "can be optimized")
    if not p.is_leaf:
        raise ValueError(f"{optimizer} can't optimize a non-leaf Tensor (parameter {index}, shape {p.shape}, "
                         "was computed by an op); optimize the leaf tensors it was computed from")
    if not supports_cuda and type(p._data) is not np.ndarray:
        raise TypeError(f"{optimizer}: parameter {index} lives on {p.device}; {optimizer} updates CPU tensors only "
                        "(SGD and Adam also update CUDA tensors)")


def _check_at_least(optimizer: Optimizer, group: dict, key: str, low: float, what: str) -> None:
    value = group[key]
    if not isinstance(value, numbers.Real) or not value >= low:
        raise ValueError(f"{type(optimizer).__name__}: invalid {what}: {value!r} (must be >= {low})")


def _check_fraction(optimizer: Optimizer, value, what: str) -> None:
    """A decay rate such as a beta or alpha: a number in [0, 1)."""
    if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{type(optimizer).__name__}: invalid {what}: {value!r} (must be in [0, 1))")


def _loaded_value(key: str, value, param: Tensor):
    """A saved state value, copied; tensors (dslearn, PyTorch or NumPy) become dslearn Tensors."""
    if isinstance(value, Tensor) or hasattr(value, "__array__"):
        array = value._data if isinstance(value, Tensor) else np.asarray(value)
        dtype = array.dtype if key == "step" else param._data.dtype
        return Tensor._make(np.array(array, dtype=dtype, copy=True, order="C"))
    return copy.deepcopy(value)

