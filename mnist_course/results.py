"""The course's machine-readable results file: notebooks record their headline numbers here.

Each notebook records its headline numbers with :func:`record`; the file is JSON,
``{"results": {"<dataset>/<notebook>/<key>": {...}}}``, merged entry by entry so that one
notebook's run never erases another's, and a Fashion-MNIST run never replaces MNIST's numbers.
Every entry names its dataset, seed and mode (taken from ``utils.setup_notebook``).

Which file (see mnist_course.utils): ``$MNIST_COURSE_RESULTS`` if set; else the recorded course
run (``make course``) writes ``results/results.json`` (tracked in git, the source of the README's
table), a learner's full-mode run ``build/my-run/results.json``, any fast-mode run
``build/fast/results.json``.

The README's table and docs/results.md are generated from this file by
:mod:`mnist_course.tooling.readme` (``mnist-course readme``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path

from .files import atomic_write, locked
from .settings import current_run, fast_mode, repo_root, resolve_path, run_folder


def tracked_results_path() -> Path:
    """<repo>/results/results.json: the recorded course run's numbers (tracked; the README table's source)."""
    return repo_root() / "results" / "results.json"


def results_path(fast: bool | None = None) -> Path:
    """$MNIST_COURSE_RESULTS (relative: from the repository root), else <run_folder(fast)>/results.json
    (build/my-run or build/fast), else (the recorded course run) <repo>/results/results.json."""
    env = os.environ.get("MNIST_COURSE_RESULTS")
    if env:
        return resolve_path(env)
    folder = run_folder(fast)
    return tracked_results_path() if folder is None else folder / "results.json"


def load_results(path: str | os.PathLike | None = None) -> dict:
    """The results file as a dict ({"results": {}} if it does not exist yet)."""
    path = Path(path) if path is not None else results_path()
    if not path.exists():
        return {"results": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or move it away — it is never overwritten.") from e
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise ValueError(f"{path} has no 'results' object; it is not a mnist-course results file.")
    return data


def machine() -> str:
    """A short description of this machine: CPU count, OS and device."""
    desc = f"{os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}"
    try:
        import torch

        if torch.cuda.is_available():
            desc += f", {torch.cuda.get_device_name(0)}"
    except ImportError:  # pragma: no cover
        pass
    return desc


def _plain_value(value, name: str) -> float | int | str:
    """value as a JSON number or string: NumPy scalars and 0-d tensors become Python numbers."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 and getattr(value, "shape", ()) == ():
        value = value.item()  # numpy.float32(0.98), torch.tensor(0.98), np.array(3)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"result {name} is {value!r} ({type(value).__name__}); record a number "
                        "(int, float, NumPy scalar, 0-d tensor) or a string.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"result {name} is {value}; only finite numbers are recorded.")
    return value


def record(notebook: str, key: str, value, label: str, unit: str = "", digits: int = 2,
           fast: bool | None = None, path: str | os.PathLike | None = None, dataset: str | None = None,
           seed: int | None = None) -> dict:
    """Store one number under `<dataset>/<notebook>/<key>` in the results file and return the entry.

    value: int, float, str, a NumPy scalar or a 0-d tensor; label: what it is, for the README table;
    unit: '%', 's', 'x', ...; digits: decimals shown. dataset/seed=None take what setup_notebook(...)
    chose ("mnist" and None when it was not called); fast=None follows the current mode.
    """
    from .data import canonical_name

    run = current_run()
    dataset = canonical_name(run["dataset"] if dataset is None else dataset)
    seed = run["seed"] if seed is None else seed
    value = _plain_value(value, f"{notebook}/{key}")
    fast = fast_mode() if fast is None else fast
    path = resolve_path(path) if path is not None else results_path(fast)
    if fast and path == tracked_results_path().resolve():
        raise ValueError(f"fast mode never writes the course's tracked results ({path}); "
                         "unset MNIST_COURSE_RESULTS / RESULTS to use build/fast/results.json.")
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "notebook": notebook, "key": key, "value": value, "label": label, "unit": unit,
        "digits": digits, "mode": "fast" if fast else "full", "dataset": dataset,
        "seed": None if seed is None else int(seed),
        "date": _dt.date.today().isoformat(), "machine": machine(),
    }
    with locked(path):  # two notebooks running at once must not drop each other's entries
        data = load_results(path)
        data["results"][f"{dataset}/{notebook}/{key}"] = entry
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return entry


def format_value(entry: dict) -> str:
    v = entry["value"]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        text = f"{v:,.{entry.get('digits', 2)}f}" if isinstance(v, float) else f"{v:,}"
    else:
        text = str(v)
    unit = entry.get("unit", "")
    return f"{text} {unit}".rstrip() if unit not in ("%", "x", "×") else f"{text}{unit}"


