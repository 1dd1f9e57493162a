"""A tiny synthetic MNIST on disk, for tests that run the real code paths in seconds."""

from __future__ import annotations

import hashlib

import numpy as np

from mnist_course import data as D


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_mnist(root, monkeypatch, n_train=300, n_test=100, seed=0):
    """Write n_train/n_test random 28x28 digits under root/MNIST/raw, point $MNIST_COURSE_DATA at root and make
    the loader accept their checksums. Labels follow the mean brightness, so there is something to learn."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sums = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n, dtype=np.uint8)
        X = (rng.random((n, 28, 28)) * 25 * (y[:, None, None] + 1)).astype(np.uint8)
        for name, arr in ((f"{split}-images-idx3-ubyte", X), (f"{split}-labels-idx1-ubyte", y)):
            content = idx_bytes(arr)
            (raw / name).write_bytes(content)
            sums[name] = hashlib.sha256(content).hexdigest()
    monkeypatch.setitem(D.SHA256, "mnist", sums)
    monkeypatch.setenv("MNIST_COURSE_DATA", str(root))
    return root
