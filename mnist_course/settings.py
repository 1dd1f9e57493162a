"""Settings: where things go, fast or full mode, and the environment variables (a leaf module: it
imports nothing else from the package, so every other module may import it).

Every notebook starts with these, so they do not depend on the current directory: papermill
starts kernels in the caller's folder, nbval and JupyterLab in the notebook's, scripts anywhere.
Relative paths in the variables below are taken from the repository root, never from the
current directory.

Where a run's outputs go (so that a learner's run never changes a tracked file):

- a learner's run (JupyterLab, papermill, `mnist-course course`), full mode:
  figures in ``<repo>/build/my-run/figures``, numbers in ``<repo>/build/my-run/results.json``;
- any fast-mode run: ``<repo>/build/fast/figures`` and ``<repo>/build/fast/results.json``;
- the recorded course run (``make course``, i.e. ``mnist-course course --record``, which
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
- ``MNIST_COURSE_ALLOWED_HOSTS`` host names the web service answers to, comma-separated (``*``: any;
  default 127.0.0.1, localhost, ::1; `mnist-course serve --allowed-hosts`)
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = "0.1.0"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool) -> bool:
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


def allowed_hosts(default: tuple[str, ...]) -> list[str]:
    """$MNIST_COURSE_ALLOWED_HOSTS split at commas (the web service's allowed Host names), or `default`."""
    hosts = [h.strip() for h in os.environ.get("MNIST_COURSE_ALLOWED_HOSTS", "").split(",") if h.strip()]
    return hosts or list(default)


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
    return env_flag("MNIST_COURSE_FAST", default)


def recording() -> bool:
    """True when this is the recorded course run ($MNIST_COURSE_RECORD=1, set by `make course`)."""
    return env_flag("MNIST_COURSE_RECORD", False)


# What setup_notebook chose for this process: results.record() stores the seed and dataset with
# every number, and the default figure folder depends on the dataset.
_RUN: dict = {"seed": None, "dataset": "mnist"}


def current_run() -> dict:
    """{"seed": int or None, "dataset": "mnist" | "fashion"} as set by the last setup_notebook(...)."""
    return dict(_RUN)


def set_current_run(seed: int | None, dataset: str) -> None:
    """Remember the seed and (canonical) dataset name of this process's run (setup_notebook calls it)."""
    _RUN.update(seed=seed, dataset=dataset)


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
