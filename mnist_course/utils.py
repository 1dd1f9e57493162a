"""Course-wide helpers: folders, fast/full mode, seeding, device, progress bars and figures.

Every notebook starts with these, so they do not depend on the current directory: papermill
starts kernels in the caller's folder, nbval and JupyterLab in the notebook's, scripts anywhere.
Relative paths in the variables below are taken from the repository root, never from the
current directory.

Where a run's outputs go (so that a learner's run never changes a tracked file):

- a learner's run (JupyterLab, papermill, `python -m mnist_course.course`), full mode:
  figures in ``<repo>/build/my-run/figures``, numbers in ``<repo>/build/my-run/results.json``;
- any fast-mode run: ``<repo>/build/fast/figures`` and ``<repo>/build/fast/results.json``;
- the recorded course run (``make course``, i.e. ``python -m mnist_course.course --record``, which
  sets ``MNIST_COURSE_RECORD=1``; full mode only): the tracked ``<repo>/figures`` and
  ``<repo>/results/results.json``;
- trained models: ``<repo>/models`` in full mode, ``<repo>/models/fast`` in fast mode (both
  git-ignored), so a fast-mode model is never taken for a course model.

A dataset other than MNIST gets its own figure folder (``.../figures/fashion``).

Environment variables (all optional):

- ``MNIST_COURSE_DATA``     data root holding ``MNIST/raw/`` (default ``<repo>/data``)
- ``MNIST_COURSE_FAST``     ``1`` runs notebooks in fast mode (tiny subsets, short training)
- ``MNIST_COURSE_PROGRESS`` ``0`` silences the course's progress bars
- ``MNIST_COURSE_RECORD``   ``1``: a full-mode run writes the tracked figures/ and results/results.json
- ``MNIST_COURSE_FIGURES``  folder for figures (default: see above)
- ``MNIST_COURSE_RESULTS``  results file (default: see above)
- ``MNIST_COURSE_MODELS``   folder for trained models (default ``<repo>/models``; fast mode uses its
  ``fast/`` subfolder)
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


def resolve_path(value: str | os.PathLike) -> Path:
    """An absolute path: `value` with ~ expanded, relative paths taken from the repository root."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else repo_root() / path).resolve()


def _folder(env: str, default: Path, create: bool) -> Path:
    value = os.environ.get(env)
    path = resolve_path(value) if value else default
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def fast_mode(default: bool = False) -> bool:
    """True when $MNIST_COURSE_FAST asks for the fast (CI) mode of the notebooks."""
    return _env_flag("MNIST_COURSE_FAST", default)


def recording() -> bool:
    """True when this is the recorded course run ($MNIST_COURSE_RECORD=1, set by `make course`)."""
    return _env_flag("MNIST_COURSE_RECORD", False)


# What setup_notebook chose for this process: results.record() stores the seed and dataset with
# every number, and the default figure folder depends on the dataset.
_RUN: dict = {"seed": None, "dataset": "mnist"}


def current_run() -> dict:
    """{"seed": int or None, "dataset": "mnist" | "fashion"} as set by the last setup_notebook(...)."""
    return dict(_RUN)


def run_folder(fast: bool | None = None) -> Path | None:
    """Default folder for an unrecorded run's figures and results: <repo>/build/fast in fast mode,
    <repo>/build/my-run in full mode; None for the recorded run (full mode with $MNIST_COURSE_RECORD=1),
    whose figures and results are the tracked <repo>/figures and <repo>/results/results.json."""
    fast = fast_mode() if fast is None else fast
    if fast:
        return repo_root() / "build" / "fast"
    return None if recording() else repo_root() / "build" / "my-run"


def tracked_figures_dir() -> Path:
    """<repo>/figures: the figures of the recorded course run (tracked in git)."""
    return repo_root() / "figures"


def figures_dir(create: bool = True) -> Path:
    """Folder that figures are saved to: $MNIST_COURSE_FIGURES, else <run_folder()>/figures, else (the
    recorded run) <repo>/figures; a subfolder named after the dataset when it is not MNIST."""
    folder = run_folder()
    default = tracked_figures_dir() if folder is None else folder / "figures"
    if _RUN["dataset"] != "mnist":
        default = default / _RUN["dataset"]
    return _folder("MNIST_COURSE_FIGURES", default, create)


def models_dir(create: bool = True) -> Path:
    """Folder for the course's trained models: $MNIST_COURSE_MODELS or <repo>/models in full mode,
    its `fast/` subfolder in fast mode (fast-mode models never mix with the full ones)."""
    value = os.environ.get("MNIST_COURSE_MODELS")
    path = resolve_path(value) if value else repo_root() / "models"
    if fast_mode():
        path = path / "fast"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


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

    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} requested but CUDA is not available here; use 'cpu'.")
        if device.type == "mps" and not mps_ok:
            raise RuntimeError(f"device {prefer!r} requested but Apple's MPS is not available here "
                               "(it needs macOS on Apple silicon); use 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_ok:
        return torch.device("mps")
    return torch.device("cpu")


def save_figure(fig, name: str, folder: str | os.PathLike | None = None, dpi: int = 110) -> Path:
    """Save a matplotlib figure as <figures_dir()>/<name>.png, whatever the current directory.

    Returns the path written.
    """
    if not name or any(c in name for c in "/\\"):
        raise ValueError(f"figure name must be a plain file name, got {name!r}")
    out = resolve_path(folder) if folder is not None else figures_dir()
    if fast_mode() and out == tracked_figures_dir().resolve():
        raise ValueError(f"fast mode never writes the course's tracked figures ({out}); "
                         "choose another folder (unset MNIST_COURSE_FIGURES / FIGURES for build/fast/figures).")
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


_PAPERMILL_HINT = {
    "FAST": "with papermill use -p FAST True or -p FAST False (capital T/F), or -y 'FAST: false'",
    "SEED": "with papermill use -p SEED 1",
    "DATASET": "with papermill use -p DATASET fashion",
    "SOLVE": "with papermill use -p SOLVE True (capital T)",
    "FIGURES": "a folder name, e.g. -p FIGURES build/my-figures",
    "RESULTS": "a file name, e.g. -p RESULTS build/my-results.json",
}


def check_parameters(**params) -> None:
    """Raise ValueError, saying how to fix it, when a notebook parameter has the wrong type:
    SEED a non-negative int, FAST True/False/None, DATASET 'mnist'/'fashion', FIGURES/RESULTS a path or
    None. Other names are not checked. (papermill passes `-p FAST false` as the *string* "false".)"""
    for name, value in params.items():
        hint = _PAPERMILL_HINT.get(name)
        if name == "FAST":
            ok = value is None or isinstance(value, (bool, np.bool_))
            want = "FAST must be True or False (or None: follow $MNIST_COURSE_FAST)"
        elif name == "SEED":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0
            want = "SEED must be a non-negative whole number"
        elif name == "DATASET":
            from .data import canonical_name

            try:
                ok = isinstance(value, str) and bool(canonical_name(value))
            except ValueError:
                ok = False
            want = "DATASET must be 'mnist' or 'fashion'"
        elif name == "SOLVE":
            ok = isinstance(value, (bool, np.bool_))
            want = "SOLVE must be True (fill every exercise with its reference solution) or False"
        elif name in ("FIGURES", "RESULTS"):
            ok = value is None or (isinstance(value, (str, os.PathLike)) and str(value) != "")
            want = f"{name} must be a path (relative paths are taken from the repository root) or None"
        else:
            continue
        if not ok:
            raise ValueError(f"{want}; got {value!r} ({type(value).__name__}). {hint}.")


def setup_notebook(seed: int = 0, fast: bool | None = None, figures: str | os.PathLike | None = None,
                   results: str | os.PathLike | None = None, progress: bool | None = None,
                   dataset: str | None = None) -> bool:
    """Apply a notebook's parameters: seed everything, choose fast/full mode and output paths.

    fast=None follows $MNIST_COURSE_FAST; figures/results=None keep the defaults (see the module's
    docstring: a private run folder under build/ unless this is the recorded course run; relative
    paths are taken from the repository root, not the current directory). dataset=None takes the
    calling notebook's DATASET parameter ("mnist" when it has none); it is stored with every number
    results.record(...) writes, with the seed and mode. Wrong types (papermill's `-p FAST false`
    is the string "false") raise ValueError. Prints one line saying what was chosen and where
    outputs go, and returns the mode (True for fast).
    """
    import inspect

    frame = inspect.currentframe()  # the notebook's own parameters, without changing every setup cell
    caller = frame.f_back.f_globals if frame is not None and frame.f_back is not None else {}
    if dataset is None:
        dataset = caller.get("DATASET", "mnist")
    check_parameters(SEED=seed, FAST=fast, FIGURES=figures, RESULTS=results, DATASET=dataset,
                     **({"SOLVE": caller["SOLVE"]} if "SOLVE" in caller else {}))
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be True, False or None; got {progress!r}.")
    from .data import canonical_name

    fast = fast_mode() if fast is None else bool(fast)
    if fast and recording():
        raise ValueError("MNIST_COURSE_RECORD=1 (the recorded course run) is for full mode only; "
                         "a fast-mode run never writes the tracked figures/ and results/.")
    os.environ["MNIST_COURSE_FAST"] = "1" if fast else "0"
    for env, value in (("MNIST_COURSE_FIGURES", figures), ("MNIST_COURSE_RESULTS", results)):
        if value is not None:
            os.environ[env] = str(resolve_path(value))
    if progress is not None:
        set_progress(progress)
    seed = seed_everything(seed)
    _RUN.update(seed=seed, dataset=canonical_name(dataset))
    from .results import results_path

    def short(p: Path) -> str:
        return str(p.relative_to(repo_root())) if p.is_relative_to(repo_root()) else str(p)

    print(f"{describe_environment()} | {'fast' if fast else 'full'} mode | seed {seed} | {_RUN['dataset']}")
    print(f"figures -> {short(figures_dir(create=False))}, results -> {short(results_path())}"
          + (" (the recorded course run)" if recording() and not fast else ""))
    return fast
