"""MNIST and Fashion-MNIST as in-memory tensors, with checked files and a fast batch iterator.

The data root is found as: explicit ``root`` argument > ``$MNIST_COURSE_DATA`` > ``<repo>/data``.
Under it the files follow torchvision's layout: ``MNIST/raw/train-images-idx3-ubyte`` and so on
(``FashionMNIST/raw/...`` for Fashion-MNIST). Missing files are downloaded through torchvision
when ``download=True``; offline, a :class:`DataNotFoundError` says where we looked and how to fix it.
Fashion-MNIST is also read from Debian's ``dataset-fashion-mnist`` package when installed.

Images are held as uint8 tensors ``(N, 28, 28)`` and labels as int64 ``(N,)``; float views are
made on demand with :meth:`MNISTData.normalize`. Batches are slices of those tensors
(:class:`BatchIterator`), about 100x faster here than a per-sample ``DataLoader`` with PIL.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .settings import repo_root, resolve_path

DATA_ENV = "MNIST_COURSE_DATA"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# SHA-256 of the four uncompressed files. Neither publisher lists SHA-256 sums: we computed these
# from the official files (MNIST: the archives torchvision downloads and checks against the MD5 sums
# in its source, unpacked; Fashion-MNIST: the publisher's archives, which match the MD5 sums in its
# README, unpacked). Hashing the uncompressed bytes makes the check independent of recompression.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

DATASETS = {
    "mnist": {
        "folder": "MNIST",
        "torchvision": "MNIST",
        "classes": tuple(str(i) for i in range(10)),
        "extra_dirs": (),
    },
    "fashion": {
        "folder": "FashionMNIST",
        "torchvision": "FashionMNIST",
        "classes": (
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        "extra_dirs": (Path("/usr/share/datasets/fashion-mnist"),),
    },
}

_ALIASES = {"mnist": "mnist", "fashion": "fashion", "fashion-mnist": "fashion", "fashion_mnist": "fashion",
            "fashionmnist": "fashion"}

# IDX type codes (the third byte of the magic number) and the NumPy dtypes they stand for.
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataNotFoundError(FileNotFoundError):
    """The data files are not on disk and could not be downloaded."""


class DataCorruptError(ValueError):
    """A data file exists but is truncated, malformed or fails its checksum."""


def canonical_name(dataset: str) -> str:
    """'mnist' or 'fashion' for any accepted spelling; ValueError otherwise."""
    key = str(dataset).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown dataset {dataset!r}: choose 'mnist' or 'fashion'.")
    return _ALIASES[key]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: `root` if given, else $MNIST_COURSE_DATA (relative: from the repository root), else <repo>/data."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return resolve_path(env)  # a relative path is taken from the repository root, not the cwd
    return repo_root() / "data"


# --------------------------------------------------------------------------------------- IDX files

def parse_idx_header(buf: bytes, name: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Decode an IDX header: returns (dtype, shape, header length in bytes)."""
    if len(buf) < 4:
        raise DataCorruptError(f"{name}: only {len(buf)} bytes, too short for an IDX header.")
    if buf[0] != 0 or buf[1] != 0 or buf[2] not in IDX_DTYPES:
        raise DataCorruptError(
            f"{name}: bad magic number {buf[:4].hex()} (an IDX file starts 0000 then a type code "
            f"such as 08 for uint8, then the number of dimensions). Is this really an IDX file?"
        )
    ndim = buf[3]
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(buf) < header_len:
        raise DataCorruptError(f"{name}: header promises {ndim} dimensions but the file ends first.")
    shape = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.dtype(IDX_DTYPES[buf[2]]), shape, header_len


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError, zlib.error) as e:  # bad header, cut short, corrupted stream
            raise DataCorruptError(f"{path}: not a readable gzip file ({e}). Delete it and download again.") from e
    return path.read_bytes()


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a NumPy array of the shape its header gives.

    With `sha256`, the uncompressed contents must have that hex digest (DataCorruptError if not).
    """
    path = Path(path)
    buf = _read_bytes(path)
    if sha256:
        got = sha256sum(path, buf)
        if got != sha256:
            raise DataCorruptError(
                f"{path}: SHA-256 is {got}, expected {sha256}. The file is corrupted or truncated: "
                "delete it and download it again (or point $MNIST_COURSE_DATA at a good copy)."
            )
    dtype, shape, start = parse_idx_header(buf, str(path))
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = len(buf) - start
    if actual != expected:
        kind = "truncated" if actual < expected else "longer than its header says"
        raise DataCorruptError(
            f"{path}: {kind}: header says shape {shape} ({expected} data bytes), file has {actual}. "
            "Delete the file and download it again."
        )
    return np.frombuffer(buf, dtype=dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def sha256sum(path: str | os.PathLike, data: bytes | None = None) -> str:
    """Hex SHA-256 of a file's (uncompressed) contents."""
    return hashlib.sha256(data if data is not None else _read_bytes(Path(path))).hexdigest()


def _find(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _download(name: str, root: Path) -> None:
    """Fetch the dataset's four files into root/<Folder>/raw through torchvision."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[name]["torchvision"])
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(root=str(root), train=train, download=True)


def _missing_error(name: str, folders: list[Path], missing: list[str], reason: str) -> DataNotFoundError:
    where = "\n".join(f"  - {f}" for f in folders)
    return DataNotFoundError(
        f"{DATASETS[name]['torchvision']} files not found: {', '.join(missing)}.\n"
        f"Searched (uncompressed or .gz):\n{where}\n{reason}\n"
        f"To fix: set ${DATA_ENV} to a folder that holds {DATASETS[name]['folder']}/raw/ with the four "
        f"IDX files ({', '.join(FILES)}), or run once with internet access and download=True "
        "to let torchvision fetch them."
        + ("\nOn Debian/Ubuntu, `apt-get install dataset-fashion-mnist` also provides Fashion-MNIST."
           if name == "fashion" else "")
    )


@dataclass
class MNISTData:
    """A dataset held in memory. X_*: uint8 (N, 28, 28); y_*: int64 (N,); mean/std of X_train/255."""

    name: str
    classes: tuple[str, ...]
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    mean: float = field(default=float("nan"))
    std: float = field(default=float("nan"))
    source: Path | None = None

    def __post_init__(self):
        if np.isnan(self.mean) or np.isnan(self.std):
            x = self.X_train.to(torch.float64) / 255.0
            self.mean, self.std = float(x.mean()), float(x.std())

    def __repr__(self) -> str:
        return (f"MNISTData({self.name!r}, train={tuple(self.X_train.shape)}, test={tuple(self.X_test.shape)}, "
                f"mean={self.mean:.4f}, std={self.std:.4f})")

    def normalize(self, X: torch.Tensor, flatten: bool = False) -> torch.Tensor:
        """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) standardised with the training mean/std
        ((N, 784) when flatten=True)."""
        X = (X.to(torch.float32) / 255.0 - self.mean) / self.std
        return X.reshape(len(X), -1) if flatten else X.reshape(len(X), 1, *X.shape[-2:])

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> MNISTData:
        """A seeded random subset (for fast mode); keeps the full set's normalisation constants."""
        g = torch.Generator().manual_seed(seed)

        def take(X, y, n):
            if n is None or n >= len(X):
                return X, y
            if n <= 0:
                raise ValueError(f"subset size must be positive, got {n}")
            idx = torch.randperm(len(X), generator=g)[:n]
            return X[idx], y[idx]

        Xtr, ytr = take(self.X_train, self.y_train, n_train)
        Xte, yte = take(self.X_test, self.y_test, n_test)
        return MNISTData(self.name, self.classes, Xtr, ytr, Xte, yte, self.mean, self.std, self.source)

    def split(self, val_size: int = 10_000, seed: int = 0):
        """Seeded train/validation split of the training set: (X_train, y_train, X_val, y_val)."""
        return train_val_split(self.X_train, self.y_train, val_size=val_size, seed=seed)


def load_mnist(dataset: str = "mnist", root: str | os.PathLike | None = None, download: bool = True,
               verify: bool = True) -> MNISTData:
    """Load MNIST ('mnist') or Fashion-MNIST ('fashion') into memory, checking every file.

    Looks in <root>/<MNIST|FashionMNIST>/raw (root: argument > $MNIST_COURSE_DATA > <repo>/data),
    then Debian's /usr/share/datasets/fashion-mnist for Fashion-MNIST. Missing files are downloaded
    through torchvision when `download` is true. Raises DataNotFoundError or DataCorruptError.
    """
    name = canonical_name(dataset)
    info = DATASETS[name]
    root = data_root(root)
    raw = root / info["folder"] / "raw"
    folders = [raw, *info["extra_dirs"]]
    found = {f: _find(f, folders) for f in FILES}
    missing = [f for f, p in found.items() if p is None]
    if missing:
        if not download:
            raise _missing_error(name, folders, missing, "download=False, so nothing was fetched.")
        try:
            _download(name, root)
        except Exception as e:  # no network, read-only folder, server down, ...
            raise _missing_error(name, folders, missing,
                                 f"Downloading through torchvision into {root} failed: {type(e).__name__}: {e}") from e
        found = {f: _find(f, folders) for f in FILES}
        missing = [f for f, p in found.items() if p is None]
        if missing:
            raise _missing_error(name, folders, missing, "torchvision's download did not produce them.")
    arrays = {f: read_idx(p, SHA256[name][f] if verify else None) for f, p in found.items()}
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataCorruptError(
                f"{found[f'{split}-images-idx3-ubyte']}: images {images.shape} and labels {labels.shape} "
                "do not match (expected (N, 28, 28) and (N,)).")
    return MNISTData(
        name=name,
        classes=info["classes"],
        X_train=torch.from_numpy(arrays["train-images-idx3-ubyte"]),
        y_train=torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64)),
        X_test=torch.from_numpy(arrays["t10k-images-idx3-ubyte"]),
        y_test=torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        source=found["train-images-idx3-ubyte"].parent,
    )


def train_val_split(X: torch.Tensor, y: torch.Tensor, val_size: int = 10_000, seed: int = 0):
    """Seeded random split of (X, y) into (X_train, y_train, X_val, y_val); val_size rows go to validation. Taught in notebook 01, section 7."""
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if not 0 < val_size < len(X):
        raise ValueError(f"val_size must be between 1 and {len(X) - 1}, got {val_size}")
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:val_size], perm[val_size:]
    return X[train], y[train], X[val], y[val]


class BatchIterator:
    """Minibatches (X, y) sliced from in-memory tensors; X: (N, ...), y: (N,).

    shuffle draws a new permutation each epoch from its own generator (seeded by `seed`), so two
    iterators with the same seed give the same batches. `device` moves the tensors once;
    `transform` (a function of a batch X, e.g. augmentation) runs on each batch.
    Taught in notebook 01, section 8 (`batches`, written in full).
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 128, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = 0, device=None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}; they must match.")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if drop_last and batch_size > len(X):
            raise ValueError(f"drop_last=True with batch_size={batch_size} > {len(X)} rows leaves no batch.")
        self.X = X.to(device) if device is not None else X
        self.y = y.to(device) if device is not None else y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform = transform
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator).to(self.X.device) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                X, y = self.X[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]  # index_select: several times faster than X[idx] here
                X, y = self.X.index_select(0, idx), self.y.index_select(0, idx)
            yield (self.transform(X) if self.transform is not None else X), y

    def state_dict(self) -> dict:
        """The shuffle generator's state, to resume an interrupted run at the same batches."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
