"""Notebook helpers: seeding, device, progress bars, figures, timing and the setup cell.

Every notebook starts with :func:`setup_notebook`. Paths, fast/full mode and the environment
variables live in :mod:`mnist_course.settings` (re-exported here for the notebooks' ``mc.`` names).
"""

from __future__ import annotations

import functools
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import (
    VERSION,
    current_run,
    env_flag,
    fast_mode,
    figures_dir,
    recording,
    repo_root,
    resolve_path,
    set_current_run,
    tracked_figures_dir,
)

_PROGRESS: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Turn the course's progress bars on or off (None: follow $MNIST_COURSE_PROGRESS)."""
    global _PROGRESS
    _PROGRESS = enabled


def progress_enabled() -> bool:
    """Whether progress bars are shown: set_progress(...) first, then $MNIST_COURSE_PROGRESS."""
    if _PROGRESS is not None:
        return _PROGRESS
    return env_flag("MNIST_COURSE_PROGRESS", True)


def progress(iterable=None, **kwargs):
    """A tqdm.auto progress bar that honours the course's own switch (tqdm ignores TQDM_DISABLE
    inside a kernel). Takes the same arguments as tqdm; leave=False unless given.

    In a notebook, a finished bar (closed, also when its loop stopped early or failed) turns into
    its last line as plain text, e.g. "epoch 1: 100%|██████████| 938/938 [00:02<00:00, 402.1it/s]":
    a saved notebook then holds no widget whose model is gone, which a reloaded page or a reopened
    notebook would show as "Error displaying widget: model not found"."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    if kwargs["disable"] or not _is_notebook_bar(tqdm):
        return tqdm(iterable, **kwargs)
    return _saved_bar_class(tqdm)(iterable, **kwargs)


def _is_notebook_bar(cls) -> bool:
    """Whether tqdm.auto chose the widget bar (inside a Jupyter kernel with ipywidgets)."""
    return any(base.__module__ == "tqdm.notebook" for base in cls.__mro__)


@functools.cache
def _saved_bar_class(base):
    """`base` (tqdm.auto's widget bar) displayed with a display handle; when the bar closes, the
    display is updated to the bar's last line as text/plain and its widgets are closed."""

    class SavedBar(base):
        def __init__(self, *args, **kwargs):
            from IPython.display import display

            super().__init__(*args, **{**kwargs, "display": False})  # tqdm's own display has no handle
            self.handle = None
            if not self.disable:
                self.handle = display(self.container, display_id=True)
                self.displayed = True  # so that tqdm never displays it a second time (delay=...)

        def close(self):
            if self.disable:  # silenced, or closed already
                return
            super().close()
            if self.handle is not None:
                self.handle.update({"text/plain": self.format_meter(**self.format_dict)}, raw=True)
                for widget in (*self.container.children, self.container):
                    widget.close()

    return SavedBar


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


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run a block with `num_threads` PyTorch CPU threads and restore the previous number afterwards,
    even on error (None: leave it as is). Yields the number in use. Notebook 12 and the benchmark time
    single-image prediction with it, without changing the kernel's setting for everything else."""
    import torch

    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    before = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def latency_ms(fn: Callable[[], object], repeats: int = 200, warmup: int = 10, device=None) -> float:
    """Median milliseconds of one call of fn(), after `warmup` calls that are not counted (the first
    calls allocate and compile); on a CUDA `device` each call is waited for. The one timing helper of
    the course: notebook 12, the drawing pad's latency and the benchmark all use it."""
    import torch

    device = torch.device(device or "cpu")
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


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

    parts = [f"mnist_course {VERSION}", f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    try:
        import torch

        parts.append(f"PyTorch {torch.__version__}")
        parts.append(f"device {get_device()}")
    except ImportError:  # pragma: no cover
        pass
    return " | ".join(parts)


class ParameterError(ValueError):
    """A notebook parameter with a wrong value. A notebook shows only its one-line message (what is
    wrong and how to pass a good value), not a traceback through the library."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is shown
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class ParameterRule:
    """What one notebook parameter must be: `want` says it in words ("a whole number >= 1"),
    `ok(value) -> bool` checks it, `hint` shows how to pass a good value with papermill."""

    want: str
    ok: Callable[[object], bool]
    hint: str


def _is_whole(value) -> bool:
    """An int (NumPy's too), not a bool: papermill passes `-p X 3` as 3 and `-p X 3.0` as 3.0."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    """A finite int or float, not a bool (papermill passes `-p X nan` as the float nan)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def _dataset_ok(value) -> bool:
    from .data import canonical_name

    try:
        return isinstance(value, str) and bool(canonical_name(value))
    except ValueError:
        return False


def _whole(name: str, minimum: int, example: int, none_means: str | None = None) -> ParameterRule:
    """A whole number >= minimum (or None, meaning `none_means`, when that is given)."""
    want = f"a whole number >= {minimum}" + (f", or None ({none_means})" if none_means else "")
    hint = f"with papermill use -p {name} {example}" + (f", or -p {name} None" if none_means else "")
    return ParameterRule(want, lambda v: (none_means is not None and v is None) or (_is_whole(v) and v >= minimum),
                         hint)


def _number(name: str, want: str, within: Callable[[float], bool], example: float) -> ParameterRule:
    """A finite number for which within(value) holds."""
    return ParameterRule(want, lambda v: _is_number(v) and within(v), f"with papermill use -p {name} {example}")


_EPOCHS = "the notebook's default for fast or full mode"

# Every parameter a notebook declares in its `parameters` cell, by name: tests/test_parameters.py
# fails when a notebook declares one without a rule here.
PARAMETERS: dict[str, ParameterRule] = {
    "SEED": ParameterRule("a non-negative whole number", lambda v: _is_whole(v) and v >= 0,
                          "with papermill use -p SEED 1"),
    "FAST": ParameterRule("True or False (or None: follow $MNIST_COURSE_FAST)",
                          lambda v: v is None or isinstance(v, (bool, np.bool_)),
                          "with papermill use -p FAST True or -p FAST False (capital T/F), or -y 'FAST: false'"),
    "DATASET": ParameterRule("'mnist' or 'fashion'", _dataset_ok, "with papermill use -p DATASET fashion"),
    "SOLVE": ParameterRule("True (fill every exercise with its reference solution) or False",
                           lambda v: isinstance(v, (bool, np.bool_)), "with papermill use -p SOLVE True (capital T)"),
    "FIGURES": ParameterRule("a path (relative paths are taken from the repository root) or None",
                             lambda v: v is None or (isinstance(v, (str, os.PathLike)) and str(v) != ""),
                             "a folder name, e.g. -p FIGURES build/my-figures"),
    "RESULTS": ParameterRule("a path (relative paths are taken from the repository root) or None",
                             lambda v: v is None or (isinstance(v, (str, os.PathLike)) and str(v) != ""),
                             "a file name, e.g. -p RESULTS build/my-results.json"),
    "CPU_THREADS": _whole("CPU_THREADS", 1, 2, none_means="the libraries' default number of threads"),
    "NUM_EPOCHS": _whole("NUM_EPOCHS", 1, 3, none_means=_EPOCHS),
    "STUDY_EPOCHS": _whole("STUDY_EPOCHS", 1, 2, none_means=_EPOCHS),
    "BEST_EPOCHS": _whole("BEST_EPOCHS", 1, 2, none_means=_EPOCHS),
    "BATCH_SIZE": _whole("BATCH_SIZE", 1, 128),
    "HIDDEN": _whole("HIDDEN", 1, 256),
    "DEPTH": _whole("DEPTH", 2, 20),  # linear layers of notebook 08's deep MLP
    "LR": _number("LR", "a number > 0 (the learning rate)", lambda x: x > 0, 0.05),
    "LR_DECAY": _number("LR_DECAY", "a number > 0 and <= 1 (lr is multiplied by it after every epoch)",
                        lambda x: 0 < x <= 1, 0.8),
    "MOMENTUM": _number("MOMENTUM", "a number >= 0 and < 1", lambda x: 0 <= x < 1, 0.9),
    "TARGET_ACC": _number("TARGET_ACC", "a fraction > 0 and <= 1 (0.92 for 92 %)", lambda x: 0 < x <= 1, 0.92),
    "SURE_ACC": _number("SURE_ACC", "a fraction > 0 and <= 1, the accuracy the pad's sure answers must reach "
                        "(0.995 for 99.5 %)", lambda x: 0 < x <= 1, 0.995),
}


def check_parameters(**params) -> None:
    """Raise ParameterError (a ValueError) in one line saying what is wrong and how to pass a good
    value with papermill, when a notebook parameter breaks its rule in PARAMETERS (SEED a
    non-negative int, FAST True/False/None, CPU_THREADS a whole number >= 1 or None, ...). Names
    without a rule are not checked. (papermill passes `-p FAST false` as the *string* "false" and
    `-p CPU_THREADS -1` as the int -1.)"""
    for name, value in params.items():
        rule = PARAMETERS.get(name)
        if rule is not None and not rule.ok(value):
            hint = rule.hint[0].upper() + rule.hint[1:]
            raise ParameterError(f"{name} must be {rule.want}; got {value!r} ({type(value).__name__}). {hint}.")


def setup_notebook(seed: int = 0, fast: bool | None = None, figures: str | os.PathLike | None = None,
                   results: str | os.PathLike | None = None, progress: bool | None = None,
                   dataset: str | None = None) -> bool:
    """Apply a notebook's parameters: seed everything, choose fast/full mode and output paths.

    fast=None follows $MNIST_COURSE_FAST; figures/results=None keep the defaults (see the module's
    docstring: a private run folder under build/ unless this is the recorded course run; relative
    paths are taken from the repository root, not the current directory). dataset=None takes the
    calling notebook's DATASET parameter ("mnist" when it has none); it is stored with every number
    results.record(...) writes, with the seed and mode. The calling notebook's other parameters
    (CPU_THREADS, NUM_EPOCHS, ... : every name in PARAMETERS found among its globals) are checked
    too: a wrong value (papermill's `-p FAST false` is the string "false", `-p CPU_THREADS -1` the
    int -1) raises ParameterError before anything is applied. Prints one line saying what was chosen
    and where outputs go, and returns the mode (True for fast).
    """
    import inspect

    frame = inspect.currentframe()  # the notebook's own parameters, without changing every setup cell
    caller = frame.f_back.f_globals if frame is not None and frame.f_back is not None else {}
    if dataset is None:
        dataset = caller.get("DATASET", "mnist")
    given = {"SEED": seed, "FAST": fast, "FIGURES": figures, "RESULTS": results, "DATASET": dataset}
    check_parameters(**given, **{name: caller[name] for name in PARAMETERS if name in caller and name not in given})
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
    set_current_run(seed, canonical_name(dataset))
    from .results import results_path

    def short(p: Path) -> str:
        return str(p.relative_to(repo_root())) if p.is_relative_to(repo_root()) else str(p)

    print(f"{describe_environment()} | {'fast' if fast else 'full'} mode | seed {seed} | {current_run()['dataset']}")
    print(f"figures -> {short(figures_dir(create=False))}, results -> {short(results_path())}"
          + (" (the recorded course run)" if recording() and not fast else ""))
    return fast
