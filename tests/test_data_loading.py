"""dslearn.data's loading machinery: datasets, samplers, DataLoader, collation, pad_sequence, transforms.

Oracles: torch.utils.data (batches, lengths, error messages, default_collate), torch's
pad_sequence (values and gradients), NumPy closed forms (transforms), plain Python lists.
"""

from __future__ import annotations

import collections
import gc
import threading
import time
import traceback
import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils.rnn import pad_sequence as torch_pad_sequence
from torch.utils.data._utils.collate import default_collate as torch_default_collate

import dslearn as ds
import dslearn.data  # noqa: F401  (makes ds.data available whatever dslearn/__init__.py exports)
from dslearn.data import transforms as T


def _xy(n: int = 10, features: int = 3) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * features, dtype=np.float32).reshape(n, features), np.arange(n, dtype=np.int64)


def _tensor_dataset(n: int = 10) -> ds.data.TensorDataset:
    x, y = _xy(n)
    return ds.data.TensorDataset(ds.tensor(x), ds.tensor(y))


def _digits(n: int = 40, seed: int = 0, **options) -> ds.data.IdxImageDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return ds.data.IdxImageDataset(images, rng.integers(0, 10, size=n), classes=[str(d) for d in range(10)],
                                   name="digits", split="train", title="synthetic digits", **options)


def _labels(loader) -> list[list[int]]:
    return [batch[1].tolist() for batch in loader]


def _worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dslearn-data-worker")]


def _wait_for_no_workers(timeout: float = 5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while _worker_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _worker_threads()


# -- datasets ---------------------------------------------------------------------------------


def test_tensor_dataset_rows_match_numpy_rows():
    x, y = _xy()
    data = ds.data.TensorDataset(ds.tensor(x), ds.tensor(y))
    image, label = data[3]
    assert len(data) == 10 and np.array_equal(image.numpy(), x[3]) and label.item() == 3
    batch = data.__getitems__([7, 2])
    assert np.array_equal(batch[0].numpy(), x[[7, 2]]) and batch[1].tolist() == [7, 2]


def test_tensor_dataset_with_mismatched_lengths_names_them():
    with pytest.raises(ValueError, match=r"size mismatch.*\[3, 4\].*\(3, 2\), \(4,\)"):
        ds.data.TensorDataset(ds.zeros(3, 2), ds.zeros(4))


@pytest.mark.parametrize("arguments, error",
                         [((), ValueError), ((np.zeros(3),), TypeError), ((ds.tensor(1.0),), ValueError)])
def test_tensor_dataset_rejects_bad_arguments(arguments, error):
    with pytest.raises(error, match="TensorDataset"):
        ds.data.TensorDataset(*arguments)


def test_subset_and_concat_index_like_python_lists():
    letters, digits = list("abcde"), list("0123")
    subset = ds.data.Subset(letters, [4, 0, 2])
    assert [subset[i] for i in range(len(subset))] == ["e", "a", "c"]
    both = ds.data.ConcatDataset([letters, digits])
    assert [both[i] for i in range(len(both))] == letters + digits
    assert both[-1] == "3" and len(_tensor_dataset(3) + _tensor_dataset(4)) == 7


def test_subset_fetches_batches_through_its_parent():
    data = _tensor_dataset()
    batch = ds.data.Subset(data, [9, 3, 5]).__getitems__([2, 0])
    assert batch[1].tolist() == [5, 9]
    plain = ds.data.Subset(list(range(10, 20)), [1, 2]).__getitems__([1, 0])
    assert plain.tolist() == [12, 11]


def test_concat_dataset_errors():
    with pytest.raises(ValueError, match="empty"):
        ds.data.ConcatDataset([])
    with pytest.raises(IndexError, match="index 5 is out of range for 5"):
        ds.data.ConcatDataset([[1, 2], [3, 4, 5]])[5]

    class Stream(ds.data.IterableDataset):
        def __iter__(self):
            return iter([1])

    with pytest.raises(TypeError, match="IterableDataset"):
        ds.data.ConcatDataset([Stream()])


@given(n=st.integers(0, 40), fractions=st.sampled_from([[0.5, 0.5], [0.7, 0.2, 0.1], [1.0], [0.33, 0.33, 0.34]]))
def test_random_split_lengths_match_torch_and_parts_partition_the_dataset(n, fractions):
    parts = ds.data.random_split(range(n), fractions, generator=ds.Generator().manual_seed(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about empty parts
        expected = tud.random_split(range(n), fractions, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in expected]
    assert sorted(i for p in parts for i in p) == list(range(n))


def test_random_split_is_seeded_and_checks_lengths():
    first = ds.data.random_split(range(10), [4, 6], generator=ds.Generator().manual_seed(3))
    again = ds.data.random_split(range(10), [4, 6], generator=ds.Generator().manual_seed(3))
    assert [list(p) for p in first] == [list(p) for p in again]
    with pytest.raises(ValueError, match="sum of input lengths 9 does not equal the length of the input dataset"):
        ds.data.random_split(range(10), [4, 5])
    with pytest.raises(ValueError, match="non-negative ints"):
        ds.data.random_split(range(10), [12, -2])


# -- samplers ---------------------------------------------------------------------------------


@given(n=st.integers(0, 30), batch_size=st.integers(1, 8), drop_last=st.booleans())
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    ours = ds.data.BatchSampler(ds.data.SequentialSampler(range(n)), batch_size, drop_last)
    theirs = tud.BatchSampler(tud.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_random_sampler_draws_permutations_and_replacement_draws():
    generator = ds.Generator().manual_seed(0)
    assert sorted(ds.data.RandomSampler(range(7), generator=generator)) == list(range(7))
    long = list(ds.data.RandomSampler(range(4), num_samples=10, generator=generator))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == list(range(4))
    drawn = list(ds.data.RandomSampler(range(3), replacement=True, num_samples=50, generator=generator))
    assert len(drawn) == 50 and set(drawn) <= {0, 1, 2}
    assert list(ds.data.RandomSampler(range(0))) == []


def test_subset_and_weighted_samplers():
    generator = ds.Generator().manual_seed(1)
    assert sorted(ds.data.SubsetRandomSampler([9, 4, 6], generator=generator)) == [4, 6, 9]
    draws = list(ds.data.WeightedRandomSampler([0.0, 3.0, 1.0, 0.0], num_samples=4000, generator=generator))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[3] == 0 and 2.6 < counts[1] / counts[2] < 3.4
    no_repeat = list(ds.data.WeightedRandomSampler([1, 1, 1], num_samples=3, replacement=False, generator=generator))
    assert sorted(no_repeat) == [0, 1, 2]


@pytest.mark.parametrize("make, message", [
    (lambda: ds.data.RandomSampler(range(3), num_samples=0), "num_samples should be a positive integer"),
    (lambda: ds.data.RandomSampler(range(3), replacement=1), "replacement should be a boolean"),
    (lambda: ds.data.WeightedRandomSampler([[1.0]], 1), "weights should be a 1d sequence"),
    (lambda: ds.data.WeightedRandomSampler([0.0, 0.0], 1), "not all zero"),
    (lambda: ds.data.WeightedRandomSampler([1.0, 0.0], 2, replacement=False), "without replacement"),
    (lambda: ds.data.BatchSampler(range(3), 0, False), "batch_size should be a positive integer"),
    (lambda: ds.data.BatchSampler(range(3), 2, None), "drop_last should be a boolean"),
])
def test_sampler_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# -- DataLoader --------------------------------------------------------------------------------


@given(n=st.integers(0, 25), batch_size=st.integers(1, 7), drop_last=st.booleans())
def test_sequential_batches_and_len_match_torch(n, batch_size, drop_last):
    x, y = _xy(n)
    ours = ds.data.DataLoader(ds.data.TensorDataset(ds.tensor(x), ds.tensor(y)), batch_size=batch_size,
                              drop_last=drop_last)
    theirs = tud.DataLoader(tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=batch_size,
                            drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, expected = list(ours), list(theirs)
    assert len(got) == len(expected)
    for (gx, gy), (ex, ey) in zip(got, expected):
        assert np.array_equal(gx.numpy(), ex.numpy()) and np.array_equal(gy.numpy(), ey.numpy())


def test_drop_last_drops_only_the_short_batch():
    data = _tensor_dataset(10)
    assert [len(y) for _, y in ds.data.DataLoader(data, batch_size=4)] == [4, 4, 2]
    assert [len(y) for _, y in ds.data.DataLoader(data, batch_size=4, drop_last=True)] == [4, 4]


def test_shuffling_is_repeatable_under_a_seeded_generator():
    data = _tensor_dataset(30)
    orders = [_labels(ds.data.DataLoader(data, batch_size=4, shuffle=True, generator=ds.Generator().manual_seed(s)))
              for s in (7, 7, 8)]
    assert orders[0] == orders[1] and orders[0] != orders[2]
    assert sorted(sum(orders[0], [])) == list(range(30))


def test_shuffling_is_repeatable_under_ds_manual_seed_and_changes_each_epoch():
    loader = ds.data.DataLoader(_tensor_dataset(30), batch_size=5, shuffle=True)
    ds.manual_seed(0)
    first, second = _labels(loader), _labels(loader)
    ds.manual_seed(0)
    assert _labels(loader) == first and _labels(loader) == second and first != second


@pytest.mark.parametrize("options", [dict(prefetch=False), dict(prefetch=True), dict(num_workers=2),
                                     dict(num_workers=3, prefetch_factor=1)])
def test_every_way_of_making_batches_gives_the_same_epoch(options):
    data = _tensor_dataset(23)
    reference = _labels(ds.data.DataLoader(data, batch_size=4, shuffle=True, prefetch=False,
                                           generator=ds.Generator().manual_seed(5)))
    assert _labels(ds.data.DataLoader(data, batch_size=4, shuffle=True, generator=ds.Generator().manual_seed(5),
                                      **options)) == reference


def test_fast_batched_path_equals_per_sample_collate():
    data = _digits(50)
    fast = ds.data.DataLoader(data, batch_size=16, shuffle=True, generator=ds.Generator().manual_seed(1))
    slow = ds.data.DataLoader(data, batch_size=16, shuffle=True, generator=ds.Generator().manual_seed(1),
                              collate_fn=lambda samples: ds.data.default_collate(samples))
    assert fast._batched_fetch and not slow._batched_fetch
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.dtype == sx.dtype == ds.float32 and fy.dtype == sy.dtype == ds.int64
        assert np.array_equal(fx.numpy(), sx.numpy()) and np.array_equal(fy.numpy(), sy.numpy())
    x, y = next(iter(fast))
    assert x.shape == (16, 1, 28, 28) and float(x.max()) <= 1.0


def test_empty_dataset_gives_no_batches():
    empty = ds.data.TensorDataset(ds.zeros(0, 3))
    for options in (dict(), dict(shuffle=True), dict(prefetch=False), dict(num_workers=2)):
        loader = ds.data.DataLoader(empty, batch_size=4, **options)
        assert len(loader) == 0 and list(loader) == []


def test_custom_sampler_and_batch_sampler_decide_the_order():
    data = _tensor_dataset(6)
    assert _labels(ds.data.DataLoader(data, batch_size=2, sampler=[5, 4, 3, 2])) == [[5, 4], [3, 2]]
    assert _labels(ds.data.DataLoader(data, batch_sampler=[[0, 5], [2]])) == [[0, 5], [2]]


def test_batch_size_none_converts_samples_without_batching():
    samples = [(np.full(2, i, dtype=np.int64), i) for i in range(3)]
    out = list(ds.data.DataLoader(samples, batch_size=None))
    assert isinstance(out[0][0], ds.Tensor) and out[2][0].tolist() == [2, 2] and out[2][1] == 2


CONFLICTS = [
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], shuffle=True),
    dict(batch_sampler=[[0]], sampler=[0]),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(batch_size=0),
]


@pytest.mark.parametrize("options", CONFLICTS)
def test_argument_conflicts_raise_torchs_errors(options):
    with pytest.raises(ValueError) as theirs:
        tud.DataLoader(tud.TensorDataset(torch.zeros(4)), **options)
    with pytest.raises(ValueError) as ours:
        ds.data.DataLoader(_tensor_dataset(4), **options)
    assert str(ours.value) == str(theirs.value)


class _Numbers(ds.data.IterableDataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        info = ds.data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))

    def __len__(self) -> int:
        return self.n


class _TorchNumbers(tud.IterableDataset):
    def __iter__(self):
        return iter(range(3))


@pytest.mark.parametrize("option", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_conflicts_raise_torchs_errors(option):
    with pytest.raises(ValueError) as theirs:
        tud.DataLoader(_TorchNumbers(), **option)
    with pytest.raises(ValueError) as ours:
        ds.data.DataLoader(_Numbers(3), **option)
    assert str(ours.value) == str(theirs.value)


def test_iterable_dataset_batches_in_order_and_shards_across_workers():
    loader = ds.data.DataLoader(_Numbers(7), batch_size=3)
    assert [b.tolist() for b in loader] == [[0, 1, 2], [3, 4, 5], [6]] and len(loader) == 3
    assert len(ds.data.DataLoader(_Numbers(7), batch_size=3, drop_last=True)) == 2
    sharded = ds.data.DataLoader(_Numbers(10), batch_size=2, num_workers=2)
    assert sorted(sum((b.tolist() for b in sharded), [])) == list(range(10))


def test_worker_info_is_visible_only_inside_workers():
    seen = []

    class Spy(ds.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            info = ds.data.get_worker_info()
            seen.append(None if info is None else (info.id, info.num_workers))
            return index

    list(ds.data.DataLoader(Spy(), batch_size=1, num_workers=2))
    assert sorted(seen) == [(0, 2), (0, 2), (1, 2), (1, 2)]
    seen.clear()
    list(ds.data.DataLoader(Spy(), batch_size=2))
    assert seen == [None] * 4 and ds.data.get_worker_info() is None


class _Faulty(ds.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index == 5:
            raise KeyError(f"sample {index} is missing")
        return index


@pytest.mark.parametrize("options", [dict(prefetch=True), dict(prefetch=False), dict(num_workers=2)])
def test_errors_in_the_producer_reach_the_consumer_with_their_traceback(options):
    loader = ds.data.DataLoader(_Faulty(), batch_size=2, **options)
    received = []
    with pytest.raises(KeyError, match="sample 5 is missing") as error:
        for batch in loader:
            received.append(batch.tolist())
    assert received == [[0, 1], [2, 3]]
    frames = [frame.name for frame in traceback.extract_tb(error.value.__traceback__)]
    assert "__getitem__" in frames
    assert _wait_for_no_workers() == []


def test_worker_threads_stop_when_iteration_ends_or_the_iterator_is_dropped():
    assert _wait_for_no_workers() == []  # threads of earlier tests' abandoned iterators
    loader = ds.data.DataLoader(_tensor_dataset(100), batch_size=1, prefetch_factor=1)
    list(loader)
    assert _wait_for_no_workers() == []
    iterator = iter(ds.data.DataLoader(_tensor_dataset(100), batch_size=1, num_workers=2, prefetch_factor=1))
    next(iterator)
    assert len(_worker_threads()) == 2 and all(t.daemon for t in _worker_threads())
    del iterator
    gc.collect()
    assert _wait_for_no_workers() == []


def test_loader_argument_types_are_checked():
    with pytest.raises(TypeError, match="generator must be a ds.Generator"):
        ds.data.DataLoader(_tensor_dataset(), generator=torch.Generator())
    with pytest.raises(ValueError, match="prefetch_factor"):
        ds.data.DataLoader(_tensor_dataset(), prefetch_factor=0)
    with pytest.raises(TypeError, match="sampler must be iterable"):
        ds.data.DataLoader(_tensor_dataset(), sampler=3)


# -- collation --------------------------------------------------------------------------------

Point = collections.namedtuple("Point", ["x", "y"])


def _to_torch_tree(value):
    if isinstance(value, ds.Tensor):
        return torch.from_numpy(value.numpy().copy())
    if isinstance(value, dict):
        return {k: _to_torch_tree(v) for k, v in value.items()}
    if isinstance(value, Point):
        return Point(*(_to_torch_tree(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_torch_tree(v) for v in value)
    return value


def _assert_same_tree(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, ds.Tensor), type(ours)
        assert str(ours.dtype).split(".")[1] == str(theirs.dtype).split(".")[1]
        assert np.array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and ours.keys() == theirs.keys()
        for key in theirs:
            _assert_same_tree(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_same_tree(a, b)
    else:
        assert ours == theirs


@given(seed=st.integers(0, 2**16), batch=st.integers(1, 4))
def test_default_collate_matches_torch_on_nested_samples(seed, batch):
    rng = np.random.default_rng(seed)
    samples = [{"image": ds.tensor(rng.normal(size=(2, 3)).astype(np.float32)),
                "array": rng.integers(0, 9, size=3),
                "pair": (float(rng.normal()), int(rng.integers(9))),
                "point": Point(np.float32(rng.normal()), [True, False]),
                "name": f"s{i}"} for i in range(batch)]
    _assert_same_tree(ds.data.default_collate(samples), torch_default_collate(_to_torch_tree(samples)))


def test_default_collate_errors_say_what_is_wrong():
    with pytest.raises(RuntimeError, match=r"sample 1 has shape \(3,\).*pad_sequence"):
        ds.data.default_collate([ds.zeros(2), ds.zeros(3)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        ds.data.default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="found object"):
        ds.data.default_collate([object(), object()])
    with pytest.raises(ValueError, match="empty batch"):
        ds.data.default_collate([])


# -- pad_sequence -----------------------------------------------------------------------------


@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=5), trailing=st.sampled_from([(), (2,), (2, 3)]),
       batch_first=st.booleans(), padding_side=st.sampled_from(["left", "right"]),
       padding_value=st.sampled_from([0.0, -1.5, 7.0]), dtype=st.sampled_from([np.float32, np.int64]),
       seed=st.integers(0, 1000))
def test_pad_sequence_matches_torch(lengths, trailing, batch_first, padding_side, padding_value, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = [(rng.normal(size=(n, *trailing)) * 10).astype(dtype) for n in lengths]
    ours = ds.data.pad_sequence([ds.tensor(a) for a in arrays], batch_first=batch_first,
                                padding_value=padding_value, padding_side=padding_side)
    theirs = torch_pad_sequence([torch.from_numpy(a) for a in arrays], batch_first=batch_first,
                                padding_value=padding_value, padding_side=padding_side)
    assert ours.shape == tuple(theirs.shape) and ours.dtype.np == theirs.numpy().dtype
    assert np.array_equal(ours.numpy(), theirs.numpy())


def test_pad_sequence_gradients_match_torch():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, 2)) for n in (3, 1, 2)]
    weights = rng.normal(size=(3, 3, 2))
    ours = [ds.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.from_numpy(a).requires_grad_() for a in arrays]
    (ds.data.pad_sequence(ours, padding_side="left") * ds.tensor(weights)).sum().backward()
    (torch_pad_sequence(theirs, padding_side="left") * torch.from_numpy(weights)).sum().backward()
    for o, t in zip(ours, theirs):
        assert np.allclose(o.grad.numpy(), t.grad.numpy())


def test_pad_sequence_collates_tuple_samples_field_by_field():
    rng = np.random.default_rng(1)
    tokens = [rng.integers(1, 50, size=n) for n in (4, 1, 3)]
    samples = [(ds.tensor(t), label, {"weight": 0.5 * label}) for label, t in enumerate(tokens)]
    padded, labels, extra = ds.data.pad_sequence(samples, padding_value=-1)
    expected = torch_pad_sequence([torch.from_numpy(t) for t in tokens], batch_first=True, padding_value=-1)
    assert np.array_equal(padded.numpy(), expected.numpy())
    assert labels.tolist() == [0, 1, 2] and labels.dtype == ds.int64
    assert extra["weight"].tolist() == [0.0, 0.5, 1.0]


def test_pad_sequence_as_the_seeds_collate_fn_on_image_label_samples():
    data = _digits(20)
    loader = ds.data.DataLoader(data, batch_size=8, collate_fn=ds.data.pad_sequence)
    images, labels = next(iter(loader))
    assert images.shape == (8, 1, 28, 28) and images.dtype == ds.float32 and labels.dtype == ds.int64
    assert np.array_equal(images.numpy(), data.images[:8, None] / np.float32(255))
    assert labels.tolist() == data.labels[:8].tolist()
    assert len(list(loader)) == 3


@pytest.mark.parametrize("call, error, message", [
    (lambda: ds.data.pad_sequence([]), ValueError, "empty list"),
    (lambda: ds.data.pad_sequence([ds.ones(2)], padding_side="middle"), ValueError, "'left' or 'right'"),
    (lambda: ds.data.pad_sequence([ds.ones(2, 3), ds.ones(1, 4)]), ValueError, r"sequence 1 has shape \(1, 4\)"),
    (lambda: ds.data.pad_sequence([ds.tensor(1.0)]), ValueError, "0-d tensor"),
    (lambda: ds.data.pad_sequence([1, 2]), TypeError, "list of int"),
])
def test_pad_sequence_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- transforms -------------------------------------------------------------------------------


def test_to_tensor_matches_the_closed_form():
    rng = np.random.default_rng(0)
    gray, color = rng.integers(0, 256, (5, 4), dtype=np.uint8), rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    torch_gray, torch_color = torch.from_numpy(gray).float().div(255), torch.from_numpy(color).float().div(255)
    assert np.array_equal(T.ToTensor()(gray).numpy(), torch_gray[None].numpy())
    out = T.ToTensor()(color)
    assert out.shape == (3, 5, 4) and np.array_equal(out.numpy(), torch_color.permute(2, 0, 1).numpy())
    floats = rng.normal(size=(2, 2, 1))
    assert np.array_equal(T.ToTensor()(floats).numpy(), floats.transpose(2, 0, 1))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2\)"):
        T.ToTensor()(np.zeros((2, 2, 2, 2), np.uint8))


def test_normalize_matches_torch_and_checks_its_input():
    rng = np.random.default_rng(0)
    image, mean, std = rng.normal(size=(3, 4, 4)).astype(np.float32), [0.1, 0.2, 0.3], [0.5, 1.5, 2.0]
    expected = (torch.from_numpy(image) - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert np.allclose(T.Normalize(mean, std)(ds.tensor(image)).numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="divide by zero"):
        T.Normalize([0.0], [0.0])
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize([0.0], [1.0])(ds.zeros(1, 2, 2, dtype=ds.uint8))
    with pytest.raises(ValueError, match="2 means and 2 stds for an image with 3 channels"):
        T.Normalize([0.0, 0.0], [1.0, 1.0])(ds.zeros(3, 2, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        T.Normalize([0.0], [1.0])(ds.zeros(2, 2))


def test_random_crop_takes_a_window_of_the_padded_image():
    image = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    padded = np.pad(image, ((0, 0), (2, 2), (1, 1)))
    windows = {padded[:, i:i + 4, j:j + 4].tobytes() for i in range(padded.shape[1] - 3)
               for j in range(padded.shape[2] - 3)}
    crop = T.RandomCrop((4, 4), padding=(1, 2), generator=ds.Generator().manual_seed(0))
    crops = [crop(ds.tensor(image)).numpy() for _ in range(20)]
    assert all(c.shape == (2, 4, 4) and c.tobytes() in windows for c in crops)
    assert len({c.tobytes() for c in crops}) > 1


def test_random_transforms_repeat_under_ds_manual_seed():
    pipeline = T.Compose([T.RandomCrop(3, padding=1), T.RandomHorizontalFlip()])
    image = ds.arange(16.0).reshape(1, 4, 4)
    ds.manual_seed(3)
    first = [pipeline(image).numpy() for _ in range(5)]
    ds.manual_seed(3)
    assert all(np.array_equal(a, pipeline(image).numpy()) for a in first)


def test_random_transforms_in_a_loader_repeat_whatever_the_main_thread_draws():
    data = _digits(24, transform=T.Compose([T.ToTensor(), T.RandomCrop(28, padding=4), T.RandomHorizontalFlip()]))

    def epoch(draw_in_between: bool, **options):
        ds.manual_seed(11)
        batches = []
        for images, _ in ds.data.DataLoader(data, batch_size=8, shuffle=True, **options):
            batches.append(images.numpy())
            if draw_in_between:
                ds.rand(100)
        return batches

    reference = epoch(False, prefetch=False)
    for options in (dict(prefetch=True), dict(num_workers=1)):
        assert all(np.array_equal(a, b) for a, b in zip(reference, epoch(True, **options)))


def test_horizontal_flip_and_lambda():
    image = np.arange(6).reshape(1, 2, 3)
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(ds.tensor(image)).numpy(), image[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(p=0.0)(ds.tensor(image)).numpy(), image)
    assert T.Compose([T.Lambda(lambda v: v * 2), T.Lambda(lambda v: v + 1)])(3) == 7
    with pytest.raises(ValueError, match="probability"):
        T.RandomHorizontalFlip(p=1.5)
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)


@pytest.mark.parametrize("make, message", [
    (lambda: T.RandomCrop(5)(ds.zeros(1, 4, 4)), r"crop size \(5, 5\) is larger than the \(padded\) image size"),
    (lambda: T.RandomCrop(2, padding=(1, 2, 3)), "padding must be"),
    (lambda: T.RandomCrop((0, 2)), "size must be"),
])
def test_random_crop_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
