"""Run every course notebook in order with papermill (what `make course` does).

    mnist-course course                      # full mode, a private run into build/my-run/
    mnist-course course --fast               # fast mode (tiny subsets), into build/fast/
    mnist-course course --record             # the recorded run (`make course`): figures/, results/
    mnist-course course --only 01 02         # some notebooks only
    mnist-course course -p SEED 1            # papermill parameters

Executed copies go to the output folder (default build/my-run/notebooks, build/fast/notebooks, or
build/notebooks for --record; the notebooks in notebooks/ are never modified); each kernel starts in
notebooks/, whatever the caller's directory. Figures and numbers go where mnist_course.utils says:
only --record (full mode) writes the tracked figures/ and results/results.json.

Parameters are checked before anything runs: a name that none of the chosen notebooks declares in
its `parameters` cell is an error (plain papermill only warns), and every value must keep its rule in
utils.PARAMETERS (`-p FAST false` is the string "false": write `-p FAST False`; `-p CPU_THREADS 0` is refused).
A parameter that only some notebooks declare is passed to those only.

Two runs at once would overwrite each other's executed notebooks and mix their numbers in one
results file: a run holds a lock file (naming its pid) in the output folder and in the results
file's folder, and a second run with either in common refuses to start.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from ..settings import repo_root, run_folder
from ..utils import check_parameters

LOCK_NAME = "course-run.lock"


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def course_notebooks(only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order (NN_name.ipynb), optionally filtered by number or name."""
    found = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    picked = [p for p in found if any(p.name.startswith(o) or p.stem == o for o in only)]
    if not picked:
        names = ", ".join(p.name for p in found)
        raise SystemExit(f"error: --only {' '.join(only)} matches no notebook; the course has: {names}")
    return picked


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def declared_parameters(path: Path) -> set[str]:
    """Names in a notebook's `parameters` cell (papermill.inspect_notebook)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


def parameters_for(notebooks: list[Path], params: dict) -> dict[Path, dict]:
    """{notebook: the parameters it declares}; SystemExit naming the bad name when one of `params`
    is declared by none of the notebooks, or when FAST/SEED/... have the wrong type."""
    try:
        check_parameters(**params)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unknown = sorted(n for n in params if not any(n in d for d in declared.values()))
    if unknown:
        known = sorted(set().union(*declared.values()))
        raise SystemExit(f"error: parameter(s) {', '.join(unknown)} not declared by any of the chosen notebooks "
                         f"(check the spelling; they declare: {', '.join(known)}).")
    for name in params:
        skip = [nb.name[:2] for nb, d in declared.items() if name not in d]
        if skip:
            print(f"note: -p {name} is not a parameter of notebook(s) {', '.join(skip)}; not passed to them")
    return {nb: {k: v for k, v in params.items() if k in d} for nb, d in declared.items()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def run_lock(folders: list[Path]):
    """Hold <folder>/course-run.lock (holding this pid) in each folder for the duration of a run.

    Raises SystemExit when another live run holds one (the message names its pid); a lock left by
    a run that no longer exists is taken over with a note."""
    taken: list[Path] = []
    try:
        for folder in dict.fromkeys(f.resolve() for f in folders):
            folder.mkdir(parents=True, exist_ok=True)
            lock = folder / LOCK_NAME
            text = f"{os.getpid()}\n{' '.join(sys.argv)}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            for _ in range(2):
                try:
                    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    try:
                        other = lock.read_text().split("\n")
                        pid = int(other[0])
                    except (OSError, ValueError):
                        pid = None
                    if pid is not None and _pid_alive(pid):
                        raise SystemExit(
                            f"error: another course run (pid {pid}, started {other[2] if len(other) > 2 else '?'}: "
                            f"{other[1] if len(other) > 1 else '?'}) is writing to {folder}. Wait for it to end, "
                            f"or use another --output / RESULTS. (If no such run exists, delete {lock}.)") from None
                    print(f"note: removing a stale lock {lock} (pid {pid} no longer runs)")
                    lock.unlink(missing_ok=True)
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                taken.append(lock)
                break
        yield
    finally:
        for lock in taken:
            lock.unlink(missing_ok=True)


def run_notebook(path: Path, output_dir: Path, parameters: dict | None = None, log_output: bool = False) -> Path:
    """Execute one notebook with papermill into output_dir; returns the executed copy's path."""
    import papermill as pm

    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / path.name
    pm.execute_notebook(
        str(path), str(out), parameters=parameters or {}, cwd=str(path.parent),
        kernel_name="python3", progress_bar=False, log_output=log_output,
    )
    return out


def forget_results(path: Path, notebook: str, dataset: str) -> int:
    """Drop a notebook's entries for `dataset` from the results file before the recorded run reruns it,
    so that a number the notebook no longer records does not stay in the README as if it were current.
    Returns how many entries were dropped."""
    from ..data import canonical_name
    from ..files import atomic_write, locked
    from ..results import load_results

    if not path.is_file():
        return 0
    prefix = f"{canonical_name(dataset)}/{notebook}/"
    with locked(path):
        data = load_results(path)
        stale = [key for key in data["results"] if key.startswith(prefix)]
        for key in stale:
            del data["results"][key]
        if stale:
            atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return len(stale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course course", description="Run the course's notebooks with papermill.")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the executed notebooks (default: build/my-run/notebooks; "
                             "build/fast/notebooks in fast mode; build/notebooks with --record)")
    parser.add_argument("--fast", action="store_true", help="fast mode (same as MNIST_COURSE_FAST=1)")
    parser.add_argument("--record", action="store_true",
                        help="the recorded course run (`make course`, full mode only): write the tracked "
                             "figures/ and results/results.json (sets MNIST_COURSE_RECORD=1)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (number or name)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="papermill parameter passed to every notebook that declares it (repeatable)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    args = parser.parse_args(argv)
    params = {name: _parse_value(value) for name, value in args.parameter}
    if args.fast:
        if params.get("FAST") is False:
            parser.error("--fast and -p FAST False contradict each other")
        os.environ["MNIST_COURSE_FAST"] = "1"
    from ..settings import fast_mode

    fast = params["FAST"] if isinstance(params.get("FAST"), bool) else fast_mode()
    if args.record:
        if fast:
            parser.error("--record is the full-mode course run; fast mode never writes figures/ or results/")
        if {"FIGURES", "RESULTS"} & set(params):
            parser.error("--record writes figures/ and results/results.json; drop -p FIGURES / -p RESULTS")
        os.environ["MNIST_COURSE_RECORD"] = "1"
    else:
        os.environ.pop("MNIST_COURSE_RECORD", None)  # only --record records (kernels inherit this environment)
    if args.log_output:  # papermill logs the cells' output through the logging module
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    notebooks = course_notebooks(args.only)
    per_notebook = parameters_for(notebooks, params)
    folder = run_folder(fast)
    output = (args.output or (repo_root() / "build" / "notebooks" if folder is None else folder / "notebooks")).resolve()
    from ..results import record, results_path

    results = Path(params["RESULTS"]) if params.get("RESULTS") else results_path(fast)
    if not results.is_absolute():
        results = repo_root() / results
    total = time.perf_counter()
    with run_lock([output, results.parent]):
        for nb in notebooks:
            t0 = time.perf_counter()
            print(f"running {nb.name} ...", flush=True)
            if args.record:
                forget_results(results, nb.stem, per_notebook[nb].get("DATASET", "mnist"))
            try:
                out = run_notebook(nb, output, per_notebook[nb], args.log_output)
            except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
                print(f"FAILED {nb.name} after {time.perf_counter() - t0:.0f} s:\n{e}", file=sys.stderr)
                print(f"The partly executed notebook is in {output / nb.name}", file=sys.stderr)
                return 1
            seconds = time.perf_counter() - t0
            record(nb.stem, "run_seconds", round(seconds), "notebook run time", "s", digits=0, fast=fast,
                   path=results, dataset=per_notebook[nb].get("DATASET", "mnist"),
                   seed=per_notebook[nb].get("SEED", 0))  # the README's time column and total
            print(f"  done in {seconds:.0f} s -> {out}", flush=True)
    print(f"{len(notebooks)} notebook(s) in {time.perf_counter() - total:.0f} s; results in {results}")
    return 0

