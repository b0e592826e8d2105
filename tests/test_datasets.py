"""dslearn.data's files and datasets: the IDX parser, the registry, the cache, downloads, MNIST(-10k).

Downloads are tested against a local http.server on 127.0.0.1 serving a small fake IDX dataset,
never against real URLs. Oracles: IDX bytes built here with ``struct`` (not with the library's
writer), hashlib MD5s, the raw MNIST files decoded here with gzip + NumPy.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
import dslearn.data  # noqa: F401  (makes ds.data available whatever dslearn/__init__.py exports)
from dslearn.data import cache, mnist

SHARED_MNIST = "/work/shared/data/mnist"
IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``, written out by hand from the format's definition."""
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A private HOME and DSLEARN_DATA, online mode, no proxies for 127.0.0.1."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DSLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DSLEARN_OFFLINE", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(mnist, "_announced", set())
    return SimpleNamespace(data=tmp_path / "data", default=tmp_path / "home" / ".cache" / "dslearn")


@pytest.fixture
def server():
    """A local HTTP server: ``routes[path]`` is the body to send (or ("truncate", body)); others get 404."""
    routes, requests = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            truncate = isinstance(body, tuple)
            body = body[1] if truncate else body
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if truncate else body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", routes=routes, requests=requests)
    httpd.shutdown()
    httpd.server_close()


FAKE_SPLITS = {"train": ("train-images.gz", "train-labels.gz"), "test": ("test-images.gz", "test-labels.gz")}


@pytest.fixture
def fake():
    """A small fake IDX dataset (3 classes): its arrays, file bytes, and a way to register it."""
    rng = np.random.default_rng(0)
    arrays = {"train-images.gz": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "train-labels.gz": np.tile(np.arange(3, dtype=np.uint8), 10),
              "test-images.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "test-labels.gz": np.tile(np.arange(2, dtype=np.uint8), 10)}
    files = {name: gzip.compress(idx_bytes(array), mtime=0) for name, array in arrays.items()}
    registered = []

    def register(name="FakeDigits", mirrors=(), **options):
        registered.append(name)
        return ds.data.register_dataset(name, folder=name.lower(), files={k: md5(v) for k, v in files.items()},
                                        mirrors=list(mirrors), splits=FAKE_SPLITS, classes=["a", "b", "c"],
                                        overwrite=True, **options)

    def place(directory, names=tuple(files)):
        for name in names:
            os.makedirs(directory, exist_ok=True)
            (directory / name).write_bytes(files[name])

    yield SimpleNamespace(arrays=arrays, files=files, register=register, place=place)
    for name in registered:
        ds.data.unregister_dataset(name)


# -- the IDX format ---------------------------------------------------------------------------


@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3), dtype=st.sampled_from(list(IDX_CODES)),
       gzipped=st.booleans())
def test_idx_parser_reads_hand_built_files(shape, dtype, gzipped):
    array = (np.arange(int(np.prod(shape))).reshape(shape) * 3 - 5).astype(dtype)
    raw = idx_bytes(array)
    parsed = ds.data.idx.parse_idx(gzip.compress(raw) if gzipped else raw)
    assert parsed.dtype == np.dtype(dtype) and parsed.shape == tuple(shape) and np.array_equal(parsed, array)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), dtype=st.sampled_from(list(IDX_CODES)),
       suffix=st.sampled_from(["", ".gz"]))
def test_write_idx_writes_what_the_format_defines(tmp_path_factory, shape, dtype, suffix):
    array = (np.arange(int(np.prod(shape))).reshape(shape) - 2).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / f"a-idx{suffix}"
    ds.data.write_idx(path, array)
    raw = path.read_bytes()
    assert (gzip.decompress(raw) if suffix else raw) == idx_bytes(array)
    assert np.array_equal(ds.data.read_idx(path), array)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize("raw, message", [
    (GOOD[:-3], r"IDX data truncated: shape \(3, 4\) of uint8 needs 12 bytes after the header, the file has 9"),
    (GOOD + b"\0", "IDX data has trailing bytes"),
    (GOOD[:9], "truncated IDX header: 2 dimensions need 12 bytes, the file has 9"),
    (b"<!DOCTYPE html><html>Not Found</html>", r"not an IDX file: it starts with b'<!DO'"),
    (b"\0\0\x07\x01\0\0\0\0", "unknown IDX type code 0x07"),
    (b"\0\0\x08\x00", "declares 0 dimensions"),
    (b"\0\0", "only 2 bytes"),
    (gzip.compress(GOOD, mtime=0)[:-10], "damaged gzip stream"),
])
def test_idx_parser_rejects_truncated_and_foreign_files_by_name(tmp_path, raw, message):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(raw)
    with pytest.raises(ds.data.IdxFormatError, match=message) as error:
        ds.data.read_idx(path)
    assert str(path) in str(error.value)


# -- the registry -----------------------------------------------------------------------------


def test_registry_lists_the_builtin_datasets_with_mirrors_and_checksums():
    assert {"MNIST", "FashionMNIST", "KMNIST"} <= set(ds.data.list_datasets())
    info = ds.data.dataset_info("mnist")
    assert info.name == "MNIST" and info.folder == "mnist" and info.offline_fallback
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in info.mirrors
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/" in info.mirrors
    assert ds.data.dataset_info("FashionMNIST").mirrors == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    assert ds.data.dataset_info("KMNIST").mirrors == ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
    for name in ("MNIST", "FashionMNIST", "KMNIST"):
        entry = ds.data.dataset_info(name)
        assert len(entry.files) == 4 and set(entry.files) == {f for pair in entry.splits.values() for f in pair}
    with pytest.raises(KeyError, match=r"unknown dataset 'CIFAR'; registered: \[.*'MNIST'"):
        ds.data.dataset_info("CIFAR")


def test_register_dataset_checks_its_entry(fake):
    fake.register("FakeCheck")
    with pytest.raises(ValueError, match="already registered"):
        ds.data.register_dataset("fakecheck", folder="x", files={}, mirrors=[], splits={}, classes=[])
    with pytest.raises(ValueError, match="32 lowercase hex digits"):
        ds.data.register_dataset("Bad", folder="x", files={"a": "xyz"}, mirrors=[], splits={}, classes=[])
    with pytest.raises(ValueError, match="must name an \\(images, labels\\) pair"):
        ds.data.register_dataset("Bad", folder="x", files={"a": "0" * 32}, mirrors=[], splits={"train": ("a", "b")},
                                 classes=[])
    with pytest.raises(ValueError, match="sizes name splits"):
        ds.data.register_dataset("Bad", folder="x", files={}, mirrors=[], splits={}, classes=[], sizes={"dev": 1})


def test_cache_directories_and_offline_switch(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DSLEARN_DATA", raising=False)
    assert cache.cache_dirs() == [str(tmp_path / ".cache" / "dslearn")]
    monkeypatch.setenv("DSLEARN_DATA", str(tmp_path / "shared"))
    assert cache.cache_dirs() == [str(tmp_path / "shared"), str(tmp_path / ".cache" / "dslearn")]
    assert cache.cache_dirs(root=tmp_path / "mine") == [str(tmp_path / "mine")]
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("DSLEARN_OFFLINE", value)
        assert cache.offline() is expected


# -- missing and corrupt files ----------------------------------------------------------------


def test_missing_file_error_names_the_file_every_path_the_md5_and_how_to_get_it(home, fake):
    fake.register(mirrors=["https://mirror-one.example/fake/", "https://mirror-two.example/fake/"])
    with pytest.raises(ds.data.DatasetNotFoundError) as error:
        ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    message = str(error.value)
    for expected in ("'test-images.gz'", md5(fake.files["test-images.gz"]),
                     str(home.data / "fakedigits" / "test-images.gz"),
                     str(home.default / "fakedigits" / "test-images.gz"),
                     "https://mirror-one.example/fake/test-images.gz", "https://mirror-two.example/fake/test-images.gz",
                     "DSLEARN_DATA", "download=False"):
        assert expected in message


def test_corrupt_file_error_gives_expected_and_actual_md5(home, fake):
    fake.register(mirrors=["https://mirror.example/fake/"])
    fake.place(home.data / "fakedigits")
    damaged = home.data / "fakedigits" / "test-labels.gz"
    damaged.write_bytes(b"not the labels")
    with pytest.raises(ds.data.ChecksumError) as error:
        ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    message = str(error.value)
    for expected in ("'test-labels.gz'", str(damaged), md5(fake.files["test-labels.gz"]), md5(b"not the labels"),
                     "https://mirror.example/fake/test-labels.gz", "DSLEARN_DATA"):
        assert expected in message


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("offline_env, download", [("1", None), ("1", True), (None, False)])
def test_offline_mode_never_opens_a_socket(home, fake, no_network, monkeypatch, offline_env, download):
    if offline_env:
        monkeypatch.setenv("DSLEARN_OFFLINE", offline_env)
    fake.register(mirrors=["http://127.0.0.1:9/fake/"], offline_fallback=True)
    with pytest.raises(ds.data.DatasetNotFoundError, match="Downloads were off"):
        ds.data.TsinghuaDataset("FakeDigits", split="train", download=download)


# -- downloads from a local server ------------------------------------------------------------


def _serve(server, prefix, fake, body=None):
    for name, data in fake.files.items():
        server.routes[f"/{prefix}/{name}"] = body(data) if body else data
    return f"{server.url}/{prefix}/"


def _leftovers(directory) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.name.endswith(".part")]


def test_download_falls_back_to_the_next_mirror_and_verifies(home, fake, server):
    good = _serve(server, "good", fake)
    fake.register(mirrors=[f"{server.url}/missing/", good])
    data = ds.data.TsinghuaDataset("FakeDigits", split="train")
    assert np.array_equal(data.images, fake.arrays["train-images.gz"])
    assert data.labels.tolist() == fake.arrays["train-labels.gz"].tolist()
    assert server.requests[:2] == ["/missing/train-images.gz", "/good/train-images.gz"]
    stored = home.data / "fakedigits" / "train-images.gz"
    assert md5(stored.read_bytes()) == md5(fake.files["train-images.gz"]) and _leftovers(home.data) == []


def test_a_corrupt_mirror_is_skipped_and_never_written(home, fake, server):
    corrupt = _serve(server, "corrupt", fake, body=lambda data: data[::-1])
    fake.register(mirrors=[corrupt, _serve(server, "good", fake)])
    assert len(ds.data.TsinghuaDataset("FakeDigits", split="test")) == 20
    fake.register(mirrors=[corrupt])
    with pytest.raises(ds.data.DatasetNotFoundError, match="wrong MD5") as error:
        ds.data.TsinghuaDataset("FakeDigits", split="train")
    assert f"{corrupt}train-images.gz" in str(error.value)
    assert not (home.data / "fakedigits" / "train-images.gz").exists() and _leftovers(home.data) == []


def test_a_truncated_transfer_leaves_nothing_behind(home, fake, server):
    fake.register(mirrors=[_serve(server, "cut", fake, body=lambda data: ("truncate", data))])
    with pytest.raises(ds.data.DatasetNotFoundError, match="Download attempts"):
        ds.data.TsinghuaDataset("FakeDigits", split="test")
    assert not (home.data / "fakedigits" / "test-images.gz").exists() and _leftovers(home.data) == []


def test_downloads_are_written_atomically_next_to_their_destination(home, fake, server, monkeypatch):
    fake.register(mirrors=[_serve(server, "good", fake)])
    replaced, real_replace = [], os.replace

    def record(source, destination):
        replaced.append((source, destination, os.path.exists(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(cache.os, "replace", record)
    ds.data.TsinghuaDataset("FakeDigits", split="test")
    assert len(replaced) == 2
    for source, destination, existed in replaced:
        assert os.path.dirname(source) == os.path.dirname(destination) == str(home.data / "fakedigits")
        assert os.path.basename(source).startswith(".download-") and not existed


def test_a_corrupt_local_file_is_replaced_when_downloads_are_allowed(home, fake, server):
    fake.register(mirrors=[_serve(server, "good", fake)])
    fake.place(home.data / "fakedigits")
    damaged = home.data / "fakedigits" / "test-images.gz"
    damaged.write_bytes(b"garbage")
    data = ds.data.TsinghuaDataset("FakeDigits", split="test")
    assert np.array_equal(data.images, fake.arrays["test-images.gz"])
    assert md5(damaged.read_bytes()) == md5(fake.files["test-images.gz"])


def test_a_read_only_data_folder_is_never_written(home, fake, server):
    fake.register(mirrors=[_serve(server, "good", fake)])
    os.makedirs(home.data)
    os.chmod(home.data, 0o555)
    try:
        ds.data.TsinghuaDataset("FakeDigits", split="test")
        assert list(home.data.iterdir()) == []
        assert (home.default / "fakedigits" / "test-images.gz").exists()
    finally:
        os.chmod(home.data, 0o755)


# -- MNIST-like datasets and the small offline variant ----------------------------------------


def test_fallback_entry_uses_the_full_training_set_when_present(home, fake):
    fake.register(offline_fallback=True)
    fake.place(home.data / "fakedigits")
    train = ds.data.TsinghuaDataset("FakeDigits", split="train", download=False)
    test = ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    assert (len(train), len(test), train.variant) == (30, 20, "fakedigits-30")
    assert repr(train) == "FakeDigits (official 30/20 split): split='train', 30 samples"


def test_fallback_entry_splits_the_test_files_when_training_files_are_missing(home, fake, capsys):
    fake.register(offline_fallback=True)
    fake.place(home.data / "fakedigits", names=["test-images.gz", "test-labels.gz"])
    train = ds.data.TsinghuaDataset("FakeDigits", split="train", download=False)
    test = ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    assert (len(train), len(test), train.variant) == (16, 4, "fakedigits-20")
    assert sorted(train.indices.tolist() + test.indices.tolist()) == list(range(20))
    assert np.array_equal(train.images, fake.arrays["test-images.gz"][train.indices])
    assert "offline default: 16/4 split of the official 20 test set; the training images were not found" in repr(train)
    assert capsys.readouterr().err.count("Note: using FakeDigits-20 (offline default") == 1


def test_label_and_count_problems_are_reported(home, fake, tmp_path):
    bad = dict(fake.files)
    bad["test-labels.gz"] = gzip.compress(idx_bytes(np.array([0, 1, 7] + [0] * 17, dtype=np.uint8)))
    fake.files.update(bad)
    fake.register()
    fake.place(home.data / "fakedigits")
    with pytest.raises(ValueError, match=r"label 7 at position 2 is outside 0..2"):
        ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    fake.files["test-labels.gz"] = gzip.compress(idx_bytes(np.zeros(19, dtype=np.uint8)))
    fake.register(sizes={"test": 20})
    fake.place(home.data / "fakedigits")
    with pytest.raises(ValueError, match="should have 20 samples"):
        ds.data.TsinghuaDataset("FakeDigits", split="test", download=False)
    with pytest.raises(ValueError, match="20 images but 19 labels"):
        ds.data.IdxImageDataset(np.zeros((20, 2, 2), np.uint8), np.zeros(19, np.int64), classes="ab", name="x",
                                split="t", title="x")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ds.data.TsinghuaDataset("FakeDigits", split="dev")


def test_transforms_apply_per_sample_and_the_batched_read_honours_them(home, fake):
    fake.register()
    fake.place(home.data / "fakedigits")
    flip = ds.data.transforms.Compose([ds.data.transforms.ToTensor(), ds.data.transforms.RandomHorizontalFlip(p=1.0)])
    data = ds.data.TsinghuaDataset("FakeDigits", split="test", download=False, transform=flip,
                                   target_transform=lambda label: label + 10)
    image, label = data[3]
    assert np.array_equal(image.numpy()[0], fake.arrays["test-images.gz"][3][:, ::-1] / np.float32(255))
    assert label == fake.arrays["test-labels.gz"][3] + 10
    images, labels = data.__getitems__([3, 4])
    assert np.array_equal(images.numpy()[0], image.numpy()) and labels.tolist() == [label, data[4][1]]


# -- the real MNIST files ---------------------------------------------------------------------

needs_mnist = pytest.mark.skipif(not os.path.isdir(SHARED_MNIST),
                                 reason=f"the official MNIST test files are not in {SHARED_MNIST}")


@pytest.fixture
def shared_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("DSLEARN_DATA", os.path.dirname(SHARED_MNIST))
    monkeypatch.setenv("DSLEARN_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(mnist, "_announced", set())


def _raw_mnist(name: str, header: int) -> np.ndarray:
    with gzip.open(os.path.join(SHARED_MNIST, name)) as file:
        return np.frombuffer(file.read()[header:], dtype=np.uint8)


@needs_mnist
def test_shared_mnist_files_verify_by_md5(shared_mnist):
    info = ds.data.dataset_info("MNIST")
    for name in os.listdir(SHARED_MNIST):
        path = os.path.join(SHARED_MNIST, name)
        with open(path, "rb") as file:
            assert hashlib.md5(file.read()).hexdigest() == info.files[name]
        assert cache.find_file("MNIST", "mnist", name, info.files[name], info.mirrors, download=False) == path


@needs_mnist
def test_mnist_10k_is_a_deterministic_stratified_disjoint_split_of_the_test_set(shared_mnist, capsys):
    from dslearn.data import TsinghuaDataset  # the seed's import path

    train, test = TsinghuaDataset("MNIST", split="train"), TsinghuaDataset("MNIST", split="test")
    all_labels = _raw_mnist("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    assert (len(train), len(test), train.variant, test.variant) == (8000, 2000, "mnist-10k", "mnist-10k")
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.sort(np.concatenate([train.indices, test.indices])), np.arange(10_000))
    per_class = np.bincount(all_labels, minlength=10)
    assert np.all(np.abs(np.bincount(train.labels, minlength=10) - 0.8 * per_class) < 1)
    again, _ = ds.data.mnist10k_split(all_labels)
    assert np.array_equal(again, train.indices)
    pinned = "2ed580b78658293d8201bee22556b8d7"  # the MNIST-10k test part, fixed for good (course results cite it)
    assert test.indices[:8].tolist() == [2, 7, 16, 21, 22, 27, 32, 48]
    assert hashlib.md5(test.indices.astype("<i8").tobytes()).hexdigest() == pinned
    note = ("MNIST-10k (offline default: 8,000/2,000 split of the official 10k test set; "
            "the 60k training images were not found in ")
    assert repr(train).startswith(note) and train.describe().startswith(note)
    assert os.path.join(SHARED_MNIST, "") in repr(train)
    assert capsys.readouterr().err.count(note) == 1


@needs_mnist
def test_mnist_samples_are_the_official_pixels_and_labels(shared_mnist):
    test = ds.data.TsinghuaDataset("MNIST", split="test")
    pixels = _raw_mnist("t10k-images-idx3-ubyte.gz", 16).reshape(10_000, 28, 28)
    labels = _raw_mnist("t10k-labels-idx1-ubyte.gz", 8)
    image, label = test[7]
    position = test.indices[7]
    assert image.shape == (1, 28, 28) and image.dtype == ds.float32 and isinstance(label, int)
    assert np.array_equal(image.numpy()[0], pixels[position] / np.float32(255)) and label == labels[position]
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


@needs_mnist
def test_the_seeds_dataloader_with_pad_sequence_on_mnist(shared_mnist):
    mnist_train = ds.data.TsinghuaDataset("MNIST", split="train")
    loader = ds.data.DataLoader(mnist_train, batch_size=64, collate_fn=ds.data.pad_sequence)
    images, labels = next(iter(loader))
    assert len(loader) == 125
    assert images.shape == (64, 1, 28, 28) and images.dtype == ds.float32
    assert labels.dtype == ds.int64 and labels.tolist() == mnist_train.labels[:64].tolist()
    fast_images, fast_labels = next(iter(ds.data.DataLoader(mnist_train, batch_size=64)))
    assert np.array_equal(images.numpy(), fast_images.numpy()) and np.array_equal(labels.numpy(), fast_labels.numpy())
