"""Collation: turning a list of samples into one batch.

``default_collate`` follows PyTorch's rules: tensors and NumPy arrays are stacked along a new
first dimension, Python floats become a float64 tensor, ints an int64 tensor, strings stay a
list, and tuples, lists, named tuples and dicts are collated field by field. ``pad_sequence``
pads variable-length sequences to a common length; it is also the seed document's
``collate_fn`` (see its docstring). ``default_convert`` only turns arrays into tensors, for
loaders that do not batch (``batch_size=None``).

May import: numpy, dslearn.tensor, dslearn.creation, dslearn.ops.

>>> import dslearn as ds
>>> images, labels = default_collate([(ds.zeros(2), 1), (ds.ones(2), 0)])
>>> images
tensor([[0., 0.],
        [1., 1.]])
>>> labels
tensor([1, 0])
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from dslearn.creation import from_numpy, tensor
from dslearn.ops.shape import pad, stack
from dslearn.tensor import Tensor

_NOT_COLLATABLE = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                   "found {}")


def default_collate(batch: Sequence):
    """Stack a list of samples into a batch, recursing into tuples, lists and dicts (as torch's).

    Tuples become lists, as in PyTorch; named tuples and dicts keep their type.

    >>> import dslearn as ds, numpy as np
    >>> default_collate([{"x": np.zeros(3), "id": 0.5}, {"x": np.ones(3), "id": 1.5}])["id"]
    tensor([0.5, 1.5], dtype=dslearn.float64)
    """
    if len(batch) == 0:
        raise ValueError("default_collate: cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        _check_same_shapes([t.shape for t in batch])
        return stack(list(batch))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "SaUO":
            raise TypeError(_NOT_COLLATABLE.format(f"numpy array of dtype {elem.dtype}"))
        _check_same_shapes([a.shape for a in batch])
        return from_numpy(np.stack(batch))
    if isinstance(elem, np.generic) and elem.dtype.kind not in "SaUO":
        return from_numpy(np.array(batch))
    if isinstance(elem, bool):
        return tensor(batch)
    if isinstance(elem, numbers.Integral):
        return tensor(batch, dtype="int64")
    if isinstance(elem, numbers.Real):
        return tensor(batch, dtype="float64")
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        return _same_mapping_type(elem, {key: default_collate([sample[key] for sample in batch]) for key in elem})
    if isinstance(elem, Sequence):
        fields = _transpose(batch, "default_collate")
        if hasattr(elem, "_fields"):  # a named tuple keeps its type
            return type(elem)(*(default_collate(field) for field in fields))
        return [default_collate(field) for field in fields]
    raise TypeError(_NOT_COLLATABLE.format(type(elem).__name__))


def default_convert(data):
    """Turn NumPy arrays into tensors, recursing into tuples, lists and dicts; leave the rest.

    >>> import numpy as np
    >>> default_convert((np.arange(2), "a", 3))
    (tensor([0, 1]), 'a', 3)
    """
    if isinstance(data, np.ndarray) and data.dtype.kind not in "SaUO":
        return from_numpy(data)
    if isinstance(data, Mapping):
        return _same_mapping_type(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, (tuple, list)):
        return type(data)(default_convert(value) for value in data)
    return data


def pad_sequence(sequences: Sequence, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """Pad variable-length sequences to the longest one and stack them.

    Two uses:

    (a) A list of tensors of shapes ``(L_i, *)``: exactly ``torch.nn.utils.rnn.pad_sequence``.
        The result is ``(L_max, B, *)``, or ``(B, L_max, *)`` with ``batch_first=True``; the padding
        goes after each sequence (``padding_side='right'``) or before it (``'left'``), and the
        result has the first sequence's dtype.

    (b) A list of samples that are tuples, lists or dicts, as a DataLoader passes its
        ``collate_fn``: the samples are collated field by field, always batch first. Tensor (and
        NumPy) fields are padded to the longest along their first dimension and stacked; numbers
        and 0-d tensors are stacked into a tensor as ``default_collate`` does. A tuple of samples
        gives a tuple of batches. This is the seed document's usage on MNIST's
        ``(image, label)`` samples::

            loader = ds.data.DataLoader(mnist, batch_size=64, collate_fn=ds.data.pad_sequence)
            images, labels = next(iter(loader))   # (64, 1, 28, 28) float32 and (64,) int64

    >>> import dslearn as ds
    >>> pad_sequence([ds.tensor([1, 2, 3]), ds.tensor([4])], batch_first=True)
    tensor([[1, 2, 3],
            [4, 0, 0]])
    >>> tokens, labels = pad_sequence([(ds.tensor([5, 6]), 1), (ds.tensor([7]), 0)], padding_value=-1)
    >>> tokens, labels
    (tensor([[ 5,  6],
            [ 7, -1]]), tensor([1, 0]))
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    if len(sequences) == 0:
        raise ValueError("pad_sequence: received an empty list of sequences")
    if isinstance(sequences[0], (Tensor, np.ndarray)):
        return _pad_tensors(list(sequences), batch_first, padding_value, padding_side)
    if isinstance(sequences[0], (Mapping, tuple, list)):
        return _pad_fields(list(sequences), padding_value, padding_side)
    raise TypeError(f"pad_sequence: expects a list of tensors, or of samples (tuples, lists or dicts), "
                    f"got a list of {type(sequences[0]).__name__}")


def _pad_tensors(sequences: list, batch_first: bool, padding_value: float, padding_side: str) -> Tensor:
    sequences = [from_numpy(s) if isinstance(s, np.ndarray) else s for s in sequences]
    first = sequences[0]
    for position, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {position} is a {type(s).__name__}, not a tensor")
        if s.ndim == 0:
            raise ValueError(f"pad_sequence: sequence {position} is a 0-d tensor; sequences need a length "
                             f"dimension")
        if s.shape[1:] != first.shape[1:]:
            raise ValueError(f"pad_sequence: sequences must match after their first dimension; sequence 0 "
                             f"has shape {first.shape}, sequence {position} has shape {s.shape}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        s = s.to(first.dtype)
        missing = longest - s.shape[0]
        if missing:
            widths = (0, missing) if padding_side == "right" else (missing, 0)
            s = pad(s, (0, 0) * (s.ndim - 1) + widths, value=padding_value)
        padded.append(s)
    return stack(padded, dim=0 if batch_first else 1)


def _pad_fields(samples: list, padding_value: float, padding_side: str):
    """Collate samples field by field, batch first, padding tensor fields along their first dimension."""
    elem = samples[0]
    if isinstance(elem, (Tensor, np.ndarray)) and elem.ndim > 0:
        return _pad_tensors(samples, True, padding_value, padding_side)
    if isinstance(elem, Mapping):
        fields = {key: _pad_fields([s[key] for s in samples], padding_value, padding_side) for key in elem}
        return _same_mapping_type(elem, fields)
    if isinstance(elem, (tuple, list)):
        fields = [_pad_fields(list(field), padding_value, padding_side)
                  for field in _transpose(samples, "pad_sequence")]
        return type(elem)(*fields) if hasattr(elem, "_fields") else type(elem)(fields)
    return default_collate(samples)


def _same_mapping_type(like: Mapping, fields: dict) -> Mapping:
    """``fields`` as the mapping type of ``like`` when that type can be built from a dict, else a dict."""
    try:
        return type(like)(fields)
    except TypeError:
        return fields


def _transpose(batch: Sequence, op: str) -> list[tuple]:
    size = len(batch[0])
    for position, sample in enumerate(batch):
        if len(sample) != size:
            raise RuntimeError(f"{op}: each element in list of batch should be of equal size; sample 0 has "
                               f"{size} fields, sample {position} has {len(sample)}")
    return list(zip(*batch))


def _check_same_shapes(shapes: list[tuple[int, ...]]) -> None:
    for position, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise RuntimeError(f"default_collate: samples must have the same shape to be stacked; sample 0 has "
                               f"shape {shapes[0]}, sample {position} has shape {shape} (for variable-length "
                               f"samples use collate_fn=ds.data.pad_sequence)")
