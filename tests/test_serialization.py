"""Saving and loading: safetensors layout, round trips, corrupted files, atomic writes, no unpickling."""

import io
import json
import math
import os
import pickle
import struct

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from dslearn import serialization
from dslearn.serialization import SerializationError, load, save

NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
                "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def random_array(dtype, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))
    values = np.asarray(rng.standard_normal(shape) * 100)
    if values.size >= 3:  # special values must survive too
        values.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    return values.astype(dtype)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == b.tobytes()


def parse_safetensors(raw: bytes) -> tuple[dict, dict, bytes]:
    """An independent reading of the layout: (tensor entries, metadata, data section)."""
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", {})
    return header, metadata, raw[8 + length:]


def safetensors_file(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def round_trip(obj):
    buffer = io.BytesIO()
    save(obj, buffer)
    return load(io.BytesIO(buffer.getvalue()))


def assert_same_tree(got, expected):
    """Equal structure, types and bytes (NaN equals NaN)."""
    assert type(got) is type(expected) or (isinstance(expected, dict) and type(got) is dict), (got, expected)
    if isinstance(expected, ds.Tensor):
        assert same_bytes(got._data, expected._data)
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert same_bytes(np.asarray(got), np.asarray(expected))
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same_tree(g, e)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert_same_tree(got[key], expected[key])
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


# -- round trips ----------------------------------------------------------------------------------


@given(code=st.sampled_from(sorted(NUMPY_DTYPES)), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                                          max_side=4), seed=st.integers(0, 2**32 - 1))
def test_every_dtype_and_shape_round_trips_byte_for_byte(code, shape, seed):
    array = random_array(NUMPY_DTYPES[code], shape, seed)
    loaded = round_trip({"tensor": ds.from_numpy(array), "array": array})
    assert isinstance(loaded["tensor"], ds.Tensor) and isinstance(loaded["array"], np.ndarray)
    assert same_bytes(loaded["tensor"]._data, array)
    assert same_bytes(loaded["array"], array)


@given(code=st.sampled_from(sorted(NUMPY_DTYPES)), shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                                          max_side=4), seed=st.integers(0, 2**16))
def test_file_follows_the_safetensors_layout(code, shape, seed):
    arrays = {"a": random_array(NUMPY_DTYPES[code], shape, seed), "b": random_array(np.int8, (3,), seed),
              "c": random_array(np.float64, (2, 1), seed)}
    buffer = io.BytesIO()
    save({name: ds.from_numpy(a) for name, a in arrays.items()}, buffer)
    raw = buffer.getvalue()
    header, metadata, data = parse_safetensors(raw)
    assert (len(raw) - len(data)) % 8 == 0, "data section starts 8-byte aligned"
    assert set(header) == set(arrays) and set(metadata) == {"dslearn.tree"}
    end = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        array = arrays[name]
        begin, stop = entry["data_offsets"]
        assert begin == end, "tensors are packed back to back"
        assert begin % array.dtype.itemsize == 0, "each tensor is aligned to its element size"
        assert entry["dtype"] == code if name == "a" else True
        assert entry["shape"] == list(array.shape)
        assert data[begin:stop] == array.astype(array.dtype.newbyteorder("<")).tobytes()
        end = stop
    assert end == len(data)


def test_state_dicts_with_int_keys_tuples_and_scalars_round_trip():
    weight = ds.randn(4, 3, requires_grad=True)
    state = {
        "model": {"fc.weight": weight, "fc.bias": ds.zeros(4), "bn.num_batches_tracked": ds.tensor(7)},
        "optimizer": {"state": {0: {"step": ds.tensor(3.0), "exp_avg": ds.ones(4, 3)}, 1: {}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                                        "params": [0, 1], "foreach": None, "name": "main"}]},
        "epoch": 12, "best": float("inf"), "worst": float("-inf"), "undefined": float("nan"),
        "history": [0.5, 0.25, [1, (2, 3)]], (1, "a"): "tuple key", 2.5: "float key", None: True,
        "numpy": {"scalar": np.float32(1.5), "count": np.int64(4), "flag": np.bool_(True), "array": np.arange(3)},
        "empty": {"list": [], "tuple": (), "dict": {}},
    }
    loaded = round_trip(state)
    assert_same_tree(loaded, state)
    assert not loaded["model"]["fc.weight"].requires_grad, "only data, dtype and shape are stored"


def test_a_tensor_saved_twice_is_stored_once_and_loads_shared():
    shared = ds.arange(6).reshape(2, 3)
    buffer = io.BytesIO()
    save({"encoder.embed": shared, "decoder.embed": shared, "other": ds.arange(6).reshape(2, 3)}, buffer)
    header, _, _ = parse_safetensors(buffer.getvalue())
    assert sorted(header) == ["encoder.embed", "other"]
    loaded = load(io.BytesIO(buffer.getvalue()))
    assert loaded["encoder.embed"] is loaded["decoder.embed"]
    assert loaded["other"] is not loaded["encoder.embed"]


def test_clashing_names_get_distinct_header_keys():
    state = {"a.b": ds.tensor([1]), "a": {"b": ds.tensor([2])}, "__metadata__": ds.tensor([3])}
    buffer = io.BytesIO()
    save(state, buffer)
    header, _, _ = parse_safetensors(buffer.getvalue())
    assert len(header) == 3
    assert_same_tree(load(io.BytesIO(buffer.getvalue())), state)


def test_a_bare_tensor_and_non_contiguous_or_big_endian_arrays_round_trip():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    assert_same_tree(round_trip(ds.from_numpy(base)), ds.from_numpy(base))
    loaded = round_trip([base[:, ::2], base.T, base.astype(">f4")])
    np.testing.assert_array_equal(loaded[0], base[:, ::2])
    np.testing.assert_array_equal(loaded[1], base.T)
    np.testing.assert_array_equal(loaded[2], base)


def test_paths_pathlike_and_open_files_all_work(tmp_path):
    value = {"w": ds.ones(2)}
    save(value, str(tmp_path / "a.safetensors"))
    save(value, tmp_path / "b.safetensors")
    with open(tmp_path / "c.safetensors", "wb") as file:
        save(value, file)
    for name in "abc":
        assert_same_tree(load(tmp_path / f"{name}.safetensors"), value)
        assert_same_tree(load(str(tmp_path / f"{name}.safetensors"), map_location="cpu"), value)
        with open(tmp_path / f"{name}.safetensors", "rb") as file:
            assert_same_tree(load(file), value)


def test_a_stream_that_cannot_seek_is_read_whole():
    class Stream(io.RawIOBase):
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self.inner.readinto(buffer)

    buffer = io.BytesIO()
    save([ds.ones(3)], buffer)
    assert_same_tree(load(io.BufferedReader(Stream(buffer.getvalue()))), [ds.ones(3)])


def test_map_location_must_name_a_device():
    buffer = io.BytesIO()
    save(ds.ones(1), buffer)
    with pytest.raises(TypeError, match="map_location must be a device"):
        load(io.BytesIO(buffer.getvalue()), map_location={"cuda:0": "cpu"})
    with pytest.raises(ValueError, match="unknown device"):
        load(io.BytesIO(buffer.getvalue()), map_location="tpu")


# -- compatibility with HuggingFace safetensors ------------------------------------------------------


def test_files_open_with_the_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    arrays = {code: random_array(dtype, (3, 2), i) for i, (code, dtype) in enumerate(NUMPY_DTYPES.items())}
    path = tmp_path / "ours.safetensors"
    save({code: ds.from_numpy(a) for code, a in arrays.items()}, path)
    theirs = safetensors_torch.load_file(str(path))
    for code, array in arrays.items():
        if code == "BF16":
            assert same_bytes(theirs[code].view(torch.int16).numpy(), array.view(np.int16))
        else:
            assert same_bytes(theirs[code].numpy(), array), code
    foreign = tmp_path / "theirs.safetensors"
    plain = {code: a for code, a in arrays.items() if code != "BF16"}
    safetensors_numpy.save_file(plain, str(foreign), metadata={"producer": "someone else"})
    loaded = load(foreign)
    assert sorted(loaded) == sorted(plain)
    for code, array in plain.items():
        assert same_bytes(loaded[code]._data, array)


def test_a_safetensors_file_without_dslearn_metadata_loads_as_a_flat_dict():
    raw = safetensors_file({"__metadata__": {"format": "pt"}, "b": {"dtype": "I16", "shape": [2], "data_offsets":
                                                                     [0, 4]}, "a": {"dtype": "U8", "shape": [],
                                                                                     "data_offsets": [4, 5]}},
                           struct.pack("<hhB", -1, 2, 9))
    loaded = load(io.BytesIO(raw))
    assert list(loaded) == ["b", "a"]
    assert loaded["b"].tolist() == [-1, 2] and loaded["a"].item() == 9


# -- corrupted and foreign files ---------------------------------------------------------------------


def valid_file() -> bytes:
    buffer = io.BytesIO()
    save({"w": ds.arange(10, dtype=ds.float32), "flags": ds.tensor([True, False]), "meta": [1, "x", None]},
         buffer)
    return buffer.getvalue()


def test_a_file_truncated_anywhere_raises_serialization_error():
    raw = valid_file()
    for cut in range(len(raw)):
        with pytest.raises(SerializationError, match=r"load\(<BytesIO>\)"):
            load(io.BytesIO(raw[:cut]))


@given(position=st.integers(0, 10**6), value=st.integers(0, 255))
def test_a_changed_byte_loads_or_raises_serialization_error(position, value):
    raw = bytearray(valid_file())
    raw[position % len(raw)] = value
    try:
        load(io.BytesIO(bytes(raw)))
    except SerializationError:
        pass


ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("raw, message", [
    (b"\x05\x00", "fewer than the 8 of a header length"),
    (struct.pack("<Q", 1000) + b"{}", "header length 1000 is larger than the file"),
    (struct.pack("<Q", 5) + b"{abc}", "the header is not valid JSON"),
    (struct.pack("<Q", 4) + b"[1] ", "the header is not a JSON object"),
    (struct.pack("<Q", 2) + b"\xff\xfe", "the header is not a JSON object"),
    (safetensors_file({"w": 3}), "entry must have exactly dtype, shape and data_offsets"),
    (safetensors_file({"w": {**ENTRY, "dtype": "C64"}}, bytes(8)), "unknown dtype 'C64'"),
    (safetensors_file({"w": {**ENTRY, "shape": [-2]}}, bytes(8)), "is not a list of non-negative integers"),
    (safetensors_file({"w": {**ENTRY, "shape": [2.0]}}, bytes(8)), "is not a list of non-negative integers"),
    (safetensors_file({"w": {**ENTRY, "data_offsets": [8, 0]}}, bytes(8)), "are not two increasing integers"),
    (safetensors_file({"w": {**ENTRY, "data_offsets": [0]}}, bytes(8)), "are not two increasing integers"),
    (safetensors_file({"w": ENTRY}, bytes(7)), r"data_offsets \[0, 8\] lie outside the data section \(7 bytes\)"),
    (safetensors_file({"w": {**ENTRY, "shape": [3]}}, bytes(8)), "shape \\[3\\] of F32 needs 12 bytes but its"),
    (safetensors_file({"v": ENTRY, "w": {**ENTRY, "data_offsets": [4, 12]}}, bytes(12)), "'v' and 'w' overlap"),
    (safetensors_file({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"),
     "BOOL data holds bytes other than 0 and 1"),
    (safetensors_file({"__metadata__": {"dslearn.tree": 5}}), "__metadata__ must map strings to strings"),
    (safetensors_file({"__metadata__": {"dslearn.tree": "{"}}), "metadata is not valid JSON"),
    (safetensors_file({"__metadata__": {"dslearn.tree": "[]"}}), "metadata is not a dslearn structure"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 99, "tree": 1}'}}),
     "format version 99 was written by a newer dslearn"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 1, "tree": '
                                                        '{"$tensor": "missing"}}'}}),
     "refers to tensor 'missing', which the header does not list"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 1, "tree": '
                                                        '{"$set": [1]}}'}}), "unrecognised node"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 1, "tree": '
                                                        '{"$tensor": [1]}}'}}), r"refers to tensor \[1\]"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 1, "tree": '
                                                        '{"$dict": [[[1], 2]]}}'}}), "key .* is not hashable"),
    (safetensors_file({"__metadata__": {"dslearn.tree": '{"format": "dslearn", "version": 1, "tree": '
                                                        + "[" * 100_000 + "]" * 100_000 + "}"}}),
     "nested too deeply|not valid JSON"),
    (b"\x93NUMPY\x01\x00" + bytes(100), "NumPy .npy file"),
])
def test_each_kind_of_bad_file_gets_a_clear_error(raw, message):
    with pytest.raises(SerializationError, match=message):
        load(io.BytesIO(raw))


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(SerializationError, match="broken.safetensors"):
        load(path)
    with open(path, "rb") as file, pytest.raises(SerializationError, match="broken.safetensors"):
        load(file)


def test_a_missing_file_or_a_directory_is_a_serialization_error(tmp_path):
    with pytest.raises(SerializationError, match="nothing.safetensors.*no such file") as caught:
        load(tmp_path / "nothing.safetensors")
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(SerializationError, match="is a directory"):
        load(tmp_path)


class CreatesMarker:
    """Unpickling this object would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_is_refused_without_being_unpickled(tmp_path, protocol):
    marker = tmp_path / "code-ran"
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"weights": CreatesMarker(marker)}, protocol=protocol))
    with pytest.raises(SerializationError, match="pickle/torch.save file; dslearn never unpickles"
                       if protocol >= 2 else "checkpoint.pt"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("zipfile", [True, False])
def test_a_torch_save_file_is_refused(tmp_path, zipfile):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(SerializationError, match="model.pt.*pickle/torch.save file; dslearn never unpickles"):
        load(path)


# -- saving: atomicity and what cannot be saved --------------------------------------------------------


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": ds.ones(3)}, path)
    real = serialization._little_endian_bytes

    def fail_on_second_tensor(array, calls=[]):  # noqa: B006  (counts calls)
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(array)

    monkeypatch.setattr(serialization, "_little_endian_bytes", fail_on_second_tensor)
    with pytest.raises(OSError, match="disk full"):
        save({"w": ds.zeros(3), "v": ds.zeros(100)}, path)
    assert_same_tree(load(path), {"w": ds.ones(3)})
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_a_failure_at_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save([1, 2], path)

    def refuse(*args):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        save([3], path)
    assert load(path) == [1, 2]
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_a_successful_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save([1], path)
    save([2], path)
    assert load(path) == [2]
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


@pytest.mark.parametrize("obj, message", [
    ({"model": {"w": object()}}, r"obj\['model'\]\['w'\] is a object"),
    ({"s": {1, 2}}, r"obj\['s'\] is a set"),
    ([np.zeros(2, dtype=np.complex64)], r"obj\[0\] has dtype complex64, which cannot be stored"),
    ({"u": np.zeros(2, dtype=np.uint16)}, r"obj\['u'\] has dtype uint16"),
    ({ds.ones(1): 1}, "has a key of type Tensor"),
])
def test_what_cannot_be_saved_raises_type_error_before_touching_the_file(tmp_path, obj, message):
    path = tmp_path / "ckpt.safetensors"
    save([0], path)
    with pytest.raises(TypeError, match=message):
        save(obj, path)
    assert load(path) == [0]
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
