"""Course-wide helpers: folders, fast/full mode, seeding, device, progress bars and figures.

Every notebook starts with these, so they do not depend on the current directory: papermill
starts kernels in the caller's folder, nbval in the notebook's, scripts anywhere.

Environment variables (all optional):

- ``MNIST_COURSE_DATA``     data root holding ``MNIST/raw/`` (default ``<repo>/data``)
- ``MNIST_COURSE_FAST``     ``1`` runs notebooks in fast mode (tiny subsets, one short epoch)
- ``MNIST_COURSE_PROGRESS`` ``0`` silences the course's progress bars
- ``MNIST_COURSE_FIGURES``  folder for figures (default ``<repo>/figures``)
- ``MNIST_COURSE_RESULTS``  results file (default ``<repo>/results/results.json``, fast mode
  ``<repo>/results/results-fast.json``)
- ``MNIST_COURSE_MODELS``   folder for trained models (default ``<repo>/models``)
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_flag(name: str, default: bool) -> bool:
    """Read a yes/no environment variable; raise ValueError on anything else."""
    value = os.environ.get(name)
    if value is None:
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a yes/no value: use 1 or 0.")


def repo_root() -> Path:
    """The repository folder (the one holding pyproject.toml), found from this file's location."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "mnist_course").is_dir():
        return here
    # Installed without -e: fall back to the current directory.
    return Path.cwd()


def _folder(env: str, default: Path, create: bool) -> Path:
    value = os.environ.get(env)
    path = Path(value).expanduser().resolve() if value else default
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir(create: bool = True) -> Path:
    """Folder that figures are saved to: $MNIST_COURSE_FIGURES or <repo>/figures."""
    return _folder("MNIST_COURSE_FIGURES", repo_root() / "figures", create)


def models_dir(create: bool = True) -> Path:
    """Folder for the course's trained models: $MNIST_COURSE_MODELS or <repo>/models."""
    return _folder("MNIST_COURSE_MODELS", repo_root() / "models", create)


def fast_mode(default: bool = False) -> bool:
    """True when $MNIST_COURSE_FAST asks for the fast (CI) mode of the notebooks."""
    return _env_flag("MNIST_COURSE_FAST", default)


_PROGRESS: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Turn the course's progress bars on or off (None: follow $MNIST_COURSE_PROGRESS)."""
    global _PROGRESS
    _PROGRESS = enabled


def progress_enabled() -> bool:
    """Whether progress bars are shown: set_progress(...) first, then $MNIST_COURSE_PROGRESS."""
    if _PROGRESS is not None:
        return _PROGRESS
    return _env_flag("MNIST_COURSE_PROGRESS", True)


def progress(iterable=None, **kwargs):
    """A tqdm.auto progress bar that honours the course's own switch (tqdm ignores TQDM_DISABLE
    inside a kernel). Takes the same arguments as tqdm."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) with one integer; returns the seed.

    Prefer explicit generators (``torch.Generator().manual_seed(seed)``,
    ``np.random.default_rng(seed)``) for shuffles and permutations; this covers the rest
    (weight initialisation, dropout).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return seed
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


def get_device(prefer: str | None = None):
    """The best available torch.device: CUDA, then Apple MPS, then CPU (or `prefer` if given)."""
    import torch

    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} requested but CUDA is not available here; use 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def save_figure(fig, name: str, folder: str | os.PathLike | None = None, dpi: int = 110) -> Path:
    """Save a matplotlib figure as <figures_dir()>/<name>.png, whatever the current directory.

    Returns the path written.
    """
    if not name or any(c in name for c in "/\\"):
        raise ValueError(f"figure name must be a plain file name, got {name!r}")
    out = Path(folder) if folder is not None else figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name if name.endswith((".png", ".svg", ".pdf")) else f"{name}.png")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def describe_environment() -> str:
    """One line naming the library, Python, NumPy and PyTorch versions and the device."""
    import platform

    from . import __version__

    parts = [f"mnist_course {__version__}", f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    try:
        import torch

        parts.append(f"PyTorch {torch.__version__}")
        parts.append(f"device {get_device()}")
    except ImportError:  # pragma: no cover
        pass
    return " | ".join(parts)


def setup_notebook(seed: int = 0, fast: bool | None = None, figures: str | os.PathLike | None = None,
                   results: str | os.PathLike | None = None, progress: bool | None = None) -> bool:
    """Apply a notebook's parameters: seed everything, choose fast/full mode and output paths.

    fast=None follows $MNIST_COURSE_FAST; figures/results=None keep the defaults (relative paths
    are taken from the repository root, not the current directory). Prints one line saying what
    was chosen and returns the mode (True for fast).
    """
    fast = fast_mode() if fast is None else bool(fast)
    os.environ["MNIST_COURSE_FAST"] = "1" if fast else "0"
    for env, value in (("MNIST_COURSE_FIGURES", figures), ("MNIST_COURSE_RESULTS", results)):
        if value is not None and str(value) != "":
            path = Path(value).expanduser()
            os.environ[env] = str(path if path.is_absolute() else (repo_root() / path).resolve())
    if progress is not None:
        set_progress(progress)
    seed_everything(seed)
    print(f"{describe_environment()} | {'fast' if fast else 'full'} mode | seed {seed}")
    return fast
