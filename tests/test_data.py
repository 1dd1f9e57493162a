"""The data layer: IDX parsing, checksums, data-root resolution, download fallback, splits, batches."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import mnist_course as mc
from mnist_course import data as D


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_dataset(root, n_train=50, n_test=20, gz=False, seed=0):
    """Write four small IDX files under root/MNIST/raw; returns their SHA-256 map and arrays."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    sums = {}
    for name, arr in arrays.items():
        content = idx_bytes(arr)
        sums[name] = hashlib.sha256(content).hexdigest()
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as f:
                f.write(content)
        else:
            (raw / name).write_bytes(content)
    return sums, arrays


@pytest.fixture()
def fake_root(tmp_path, monkeypatch):
    """A data root with a small synthetic MNIST whose checksums the loader accepts."""
    sums, arrays = write_fake_dataset(tmp_path)
    monkeypatch.setitem(D.SHA256, "mnist", sums)
    return tmp_path, arrays


# ------------------------------------------------------------------------------------------ IDX

def test_parse_header_decodes_dims():
    dtype, shape, start = D.parse_idx_header(bytes([0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28]))
    assert dtype == np.uint8 and shape == (60000, 28, 28) and start == 16


def test_read_idx_roundtrip_plain_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(arr))
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(idx_bytes(arr))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a"), arr)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "b.gz"), arr)


def test_wrong_magic_is_refused(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(D.DataCorruptError, match="bad magic number.*IDX"):
        D.read_idx(path)


def test_truncated_file_is_refused_with_its_name(tmp_path):
    arr = np.zeros((5, 28, 28), np.uint8)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(arr)[:-100])
    with pytest.raises(D.DataCorruptError, match=r"train-images-idx3-ubyte: truncated.*\(5, 28, 28\)"):
        D.read_idx(path)


def test_header_cut_short_is_refused(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(D.DataCorruptError, match="3 dimensions but the file ends"):
        D.read_idx(path)


def test_broken_gzip_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(D.DataCorruptError, match="not a readable gzip"):
        D.read_idx(path)


def test_a_corrupted_gzip_stream_is_refused_with_the_files_name(tmp_path):
    arr = (np.arange(50 * 28 * 28) % 256).astype(np.uint8).reshape(50, 28, 28)  # compressible, as digits are
    content = bytearray(gzip.compress(idx_bytes(arr)))
    content[40:60] = bytes(b ^ 0xFF for b in content[40:60])  # a valid header, then a damaged deflate stream
    with pytest.raises(zlib.error):  # what gzip itself raises for this damage
        gzip.decompress(bytes(content))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(content))
    with pytest.raises(D.DataCorruptError, match=f"{path}: not a readable gzip file.*download again"):
        D.read_idx(path)


def test_checksum_mismatch_names_the_file(tmp_path):
    arr = np.ones((2, 2), np.uint8)
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(arr))
    with pytest.raises(D.DataCorruptError, match=r"f: SHA-256 is [0-9a-f]{64}, expected 0{64}"):
        D.read_idx(path, sha256="0" * 64)


# --------------------------------------------------------------------------------- load_mnist

def test_load_fake_dataset(fake_root):
    root, arrays = fake_root
    ds = mc.load_mnist(root=root, download=False)
    assert ds.X_train.dtype == torch.uint8 and ds.X_train.shape == (50, 28, 28)
    assert ds.y_train.dtype == torch.int64 and ds.y_test.shape == (20,)
    np.testing.assert_array_equal(ds.X_test.numpy(), arrays["t10k-images-idx3-ubyte"])
    x = arrays["train-images-idx3-ubyte"] / 255.0
    assert ds.mean == pytest.approx(x.mean()) and ds.std == pytest.approx(x.std(ddof=1))


def test_gzipped_files_are_read(tmp_path, monkeypatch):
    sums, arrays = write_fake_dataset(tmp_path, gz=True)
    monkeypatch.setitem(D.SHA256, "mnist", sums)
    ds = mc.load_mnist(root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])


def test_corrupted_real_name_is_refused(fake_root):
    root, _ = fake_root
    path = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    content = bytearray(path.read_bytes())
    content[500] ^= 0xFF  # one flipped byte: header still valid, checksum not
    path.write_bytes(bytes(content))
    with pytest.raises(D.DataCorruptError, match="t10k-images-idx3-ubyte: SHA-256"):
        mc.load_mnist(root=root, download=False)


def test_truncated_dataset_file_is_refused(fake_root):
    root, _ = fake_root
    path = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(D.DataCorruptError, match="train-labels-idx1-ubyte"):
        mc.load_mnist(root=root, download=False)


def test_missing_files_offline_error_says_where_and_how(tmp_path):
    with pytest.raises(D.DataNotFoundError) as info:
        mc.load_mnist(root=tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in msg
    for name in D.FILES:
        assert name in msg
    assert "MNIST_COURSE_DATA" in msg and "internet" in msg


def test_no_network_download_fails_clearly(tmp_path, monkeypatch):
    """torchvision's real download code runs, but every URL fails as it does offline."""

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", offline)
    with pytest.raises(D.DataNotFoundError) as info:
        mc.load_mnist(root=tmp_path / "cache", download=True)
    msg = str(info.value)
    assert "Downloading through torchvision" in msg and "failed" in msg
    assert "MNIST_COURSE_DATA" in msg


def test_download_fills_missing_files(tmp_path, monkeypatch):
    """With 'network', the loader calls torchvision's download, then checks what arrived."""
    calls = []

    def fake_download(name, root):
        calls.append((name, root))
        sums, _ = write_fake_dataset(root)
        monkeypatch.setitem(D.SHA256, "mnist", sums)

    monkeypatch.setattr(D, "_download", fake_download)
    ds = mc.load_mnist(root=tmp_path, download=True)
    assert calls == [("mnist", tmp_path.resolve())] and len(ds.X_train) == 50


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'kmnist'.*'mnist' or 'fashion'"):
        mc.load_mnist("kmnist")


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_DATA", str(tmp_path / "env"))
    assert D.data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert D.data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv("MNIST_COURSE_DATA")
    assert D.data_root() == mc.repo_root() / "data"


def test_data_root_does_not_depend_on_cwd(tmp_path):
    code = "import mnist_course as mc; print(mc.data.data_root()); print(mc.figures_dir(create=False))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_COURSE")}
    root = mc.repo_root()
    here, there = (subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                                  check=True).stdout.split() for cwd in (root, tmp_path))
    assert here == there and there[0] == str(root / "data") and Path(there[1]).is_relative_to(root)


def test_relative_data_env_is_taken_from_the_repository_root(tmp_path):
    code = "import mnist_course as mc; print(mc.data.data_root())"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MNIST_COURSE")}, "MNIST_COURSE_DATA": "some/data"}
    root = mc.repo_root()
    seen = {subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                           check=True).stdout.strip() for cwd in (root, root / "notebooks", tmp_path)}
    assert seen == {str(root / "some" / "data")}


# ------------------------------------------------------------------------------- the real data

def test_real_mnist_checks_and_shapes(mnist):
    assert mnist.X_train.shape == (60000, 28, 28) and mnist.X_test.shape == (10000, 28, 28)
    assert mnist.X_train.dtype == torch.uint8 and mnist.y_train.dtype == torch.int64
    assert set(mnist.y_train.unique().tolist()) == set(range(10))
    assert mnist.mean == pytest.approx(0.1307, abs=1e-4) and mnist.std == pytest.approx(0.3081, abs=1e-4)


def test_real_fashion_mnist_when_available():
    try:
        ds = mc.load_mnist("fashion", download=False)
    except mc.DataNotFoundError as e:
        pytest.skip(f"Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): {e}")
    assert ds.X_train.shape == (60000, 28, 28) and ds.classes[9] == "Ankle boot"
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10


def test_normalize_shapes_and_stats(mnist):
    X = mnist.normalize(mnist.X_train[:2000])
    assert X.shape == (2000, 1, 28, 28) and X.dtype == torch.float32
    assert mnist.normalize(mnist.X_test[:3], flatten=True).shape == (3, 784)
    full = mnist.normalize(mnist.X_train)
    assert float(full.mean()) == pytest.approx(0.0, abs=1e-4) and float(full.std()) == pytest.approx(1.0, abs=1e-4)


def test_subset_is_seeded_and_keeps_constants(mnist):
    a, b = mnist.subset(100, 50, seed=3), mnist.subset(100, 50, seed=3)
    assert torch.equal(a.y_train, b.y_train) and len(a.X_test) == 50
    assert not torch.equal(a.y_train, mnist.subset(100, 50, seed=4).y_train)
    assert a.mean == mnist.mean and a.std == mnist.std


# ------------------------------------------------------------------------ split and batches

def test_split_is_seeded_disjoint_and_complete():
    X = torch.arange(100).reshape(100, 1)
    y = torch.arange(100)
    Xa, ya, Xv, yv = mc.train_val_split(X, y, val_size=20, seed=1)
    assert len(ya) == 80 and len(yv) == 20
    assert sorted(torch.cat([ya, yv]).tolist()) == list(range(100))
    assert torch.equal(mc.train_val_split(X, y, 20, seed=1)[3], yv)
    assert not torch.equal(mc.train_val_split(X, y, 20, seed=2)[3], yv)
    with pytest.raises(ValueError, match="val_size"):
        mc.train_val_split(X, y, val_size=100)


def test_batch_iterator_covers_every_row_once():
    X, y = torch.arange(10).float().reshape(10, 1), torch.arange(10)
    it = mc.BatchIterator(X, y, batch_size=4, shuffle=True, seed=0)
    batches = list(it)
    assert len(it) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)  # X and y stay paired


def test_batch_iterator_drop_last_and_order():
    X, y = torch.zeros(10, 2), torch.arange(10)
    it = mc.BatchIterator(X, y, batch_size=4, drop_last=True)
    assert len(it) == 2 and [b[1].tolist() for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_batch_iterator_same_seed_same_batches_and_new_order_each_epoch():
    X, y = torch.randn(64, 3), torch.arange(64)
    a = mc.BatchIterator(X, y, 8, shuffle=True, seed=5)
    b = mc.BatchIterator(X, y, 8, shuffle=True, seed=5)
    epoch_a1, epoch_b1 = [yb for _, yb in a], [yb for _, yb in b]
    assert all(torch.equal(u, v) for u, v in zip(epoch_a1, epoch_b1))
    epoch_a2 = [yb for _, yb in a]
    assert not torch.equal(torch.cat(epoch_a1), torch.cat(epoch_a2))


def test_batch_iterator_state_resumes_the_same_order():
    X, y = torch.randn(32, 3), torch.arange(32)
    a = mc.BatchIterator(X, y, 8, shuffle=True, seed=1)
    list(a)
    state = a.state_dict()
    next_epoch = torch.cat([yb for _, yb in a])
    b = mc.BatchIterator(X, y, 8, shuffle=True, seed=99)
    b.load_state_dict(state)
    assert torch.equal(torch.cat([yb for _, yb in b]), next_epoch)


def test_batch_iterator_transform_and_bad_input():
    X, y = torch.full((6, 28, 28), 255, dtype=torch.uint8), torch.zeros(6, dtype=torch.long)
    it = mc.BatchIterator(X, y, 3, transform=lambda xb: xb.float() / 255)
    xb, _ = next(iter(it))
    assert xb.dtype == torch.float32 and float(xb.max()) == 1.0
    with pytest.raises(ValueError, match="X has 6 rows but y has 5"):
        mc.BatchIterator(X, y[:5])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        mc.BatchIterator(X, y, batch_size=0)
    with pytest.raises(ValueError, match="leaves no batch"):
        mc.BatchIterator(X, y, batch_size=10, drop_last=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batch_iterator_device_placement():
    it = mc.BatchIterator(torch.randn(10, 2), torch.arange(10), 4, shuffle=True, device="cuda")
    xb, yb = next(iter(it))
    assert xb.is_cuda and yb.is_cuda
