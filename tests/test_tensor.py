"""Tensor basics: construction, dtypes, devices, conversion, interop with NumPy/torch/DLPack, repr."""

import numpy as np
import pytest
import torch

import dslearn as ds


def test_seed_style_tensor_is_float32_of_the_given_length():
    x = ds.Tensor([1.0] * 784)
    assert x.shape == (784,) and x.dtype == ds.float32 and x.device == "cpu"


def test_tensor_constructor_follows_torch_dtype_rules():
    assert ds.Tensor([1, 2]).dtype == ds.float32  # like torch.Tensor
    assert ds.tensor([1, 2]).dtype == ds.int64
    assert ds.tensor([1.5]).dtype == ds.float32
    assert ds.tensor([True]).dtype == ds.bool
    assert ds.tensor(np.ones(2)).dtype == ds.float64  # NumPy arrays keep their dtype
    assert ds.tensor([1, 2], dtype=ds.float16).dtype == ds.float16
    assert ds.tensor(3.0).shape == ()


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64", "int32", "int64", "bool"])
def test_every_dtype_round_trips_through_torch(name):
    values = ds.tensor([[0, 1], [1, 0]], dtype=name)
    t = values.to_torch()
    assert str(t.dtype) == f"torch.{name}"
    back = ds.Tensor.from_torch(t)
    assert back.dtype.name == name and back.tolist() == values.tolist()


def test_from_numpy_and_to_torch_share_memory():
    a = np.zeros(3, dtype=np.float32)
    t = ds.from_numpy(a)
    a[0] = 5
    assert t[0].item() == 5
    tt = t.to_torch()
    tt[1] = 7
    assert a[1] == 7


def test_dlpack_exchanges_with_torch_without_copying():
    x = ds.arange(4.0)
    t = torch.from_dlpack(x)
    t[0] = 9
    assert x[0].item() == 9
    y = ds.from_dlpack(torch.ones(3))
    assert y.tolist() == [1.0, 1.0, 1.0]


def test_creation_functions_match_torch():
    assert ds.zeros(2, 3).tolist() == torch.zeros(2, 3).tolist()
    assert ds.ones((2,)).tolist() == [1.0, 1.0]
    assert ds.full((2, 2), 7).dtype == ds.int64 and ds.full((2,), 1.5).dtype == ds.float32
    assert ds.eye(3, 2).tolist() == torch.eye(3, 2).tolist()
    assert ds.arange(0, 10, 3).tolist() == torch.arange(0, 10, 3).tolist()
    np.testing.assert_allclose(ds.linspace(0, 1, 5).numpy(), torch.linspace(0, 1, 5).numpy())
    x = ds.randn(2, 3, dtype=ds.float64)
    assert ds.zeros_like(x).dtype == ds.float64 and ds.ones_like(x).shape == (2, 3)
    assert ds.full_like(x, 2.0).tolist() == [[2.0] * 3] * 2 and ds.rand_like(x).shape == (2, 3)


def test_manual_seed_makes_random_functions_repeatable():
    ds.manual_seed(123)
    first = [ds.rand(3).tolist(), ds.randn(2).tolist(), ds.randint(0, 10, (4,)).tolist(), ds.randperm(5).tolist()]
    ds.manual_seed(123)
    second = [ds.rand(3).tolist(), ds.randn(2).tolist(), ds.randint(0, 10, (4,)).tolist(), ds.randperm(5).tolist()]
    assert first == second
    g = ds.Generator().manual_seed(1)
    assert ds.rand(2, generator=g).tolist() == ds.rand(2, generator=ds.Generator().manual_seed(1)).tolist()


def test_random_values_have_the_right_distribution():
    ds.manual_seed(0)
    x = ds.randn(100_000, dtype=ds.float64)
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 1) < 0.02
    u = ds.rand(100_000)
    assert 0 <= u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.01


def test_item_tolist_numpy_and_python_conversions():
    x = ds.tensor([[1.5]])
    assert x.item() == 1.5 and float(x) == 1.5 and int(ds.tensor(3)) == 3 and bool(ds.tensor(True))
    assert ds.tensor(2.0, dtype=ds.bfloat16).item() == 2.0
    with pytest.raises(ValueError, match="only one-element tensors"):
        ds.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(ds.ones(2))
    with pytest.raises(RuntimeError, match="requires grad"):
        ds.ones(2, requires_grad=True).numpy()
    assert np.asarray(ds.ones(2)).tolist() == [1.0, 1.0]
    assert list(range(5))[ds.tensor(2)] == 2


def test_to_and_type_conversions():
    x = ds.tensor([1.7, -2.2])
    assert x.to(ds.int64).tolist() == [1, -2] and x.long().dtype == ds.int64
    assert x.double().dtype == ds.float64 and x.half().dtype == ds.float16 and x.bfloat16().dtype == ds.bfloat16
    assert x.to("cpu") is x and x.to(ds.float32) is x and x.type() == "dslearn.float32"
    assert x.to(ds.ones(1, dtype=ds.float64)).dtype == ds.float64


def test_cast_between_float_dtypes_is_differentiable():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == ds.float32 and x.grad.tolist() == [3.0, 3.0]


def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA"):
        ds.ones(2).to("cuda")


def test_only_floating_tensors_can_require_grad():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        ds.tensor([1, 2], requires_grad=True)


def test_repr_looks_like_torch():
    assert repr(ds.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(ds.tensor([1.0], dtype=ds.float64)) == "tensor([1.], dtype=dslearn.float64)"
    assert repr(ds.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(ds.tensor([1, 2])) == "tensor([1, 2])"


def test_bad_constructor_input_is_a_clear_error():
    with pytest.raises(ValueError, match="ragged"):
        ds.tensor([[1, 2], [3]])
    with pytest.raises(TypeError, match="strings cannot be tensor values"):
        ds.tensor(["a"])
    with pytest.raises(TypeError, match="unknown dtype"):
        ds.zeros(2, dtype="float128")
    with pytest.raises(ValueError, match="zeros: sizes must be non-negative ints"):
        ds.zeros(-1)


def test_default_dtype_can_be_changed_and_restored():
    ds.set_default_dtype(ds.float64)
    try:
        assert ds.tensor([1.5]).dtype == ds.float64 and ds.ones(1).dtype == ds.float64
    finally:
        ds.set_default_dtype(ds.float32)
    with pytest.raises(TypeError, match="not a floating point dtype"):
        ds.set_default_dtype(ds.int32)


def test_len_iter_and_size():
    x = ds.zeros(3, 2)
    assert len(x) == 3 and [r.shape for r in x] == [(2,)] * 3 and x.size() == (3, 2) and x.size(-1) == 2
    assert x.numel() == 6 and x.dim() == 2 and x.element_size() == 4 and x.nbytes == 24
