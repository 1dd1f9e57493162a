"""Run every course notebook in order with papermill (what `make course` does).

    python -m mnist_course.course                      # full mode, into build/notebooks
    python -m mnist_course.course --fast               # fast mode (tiny subsets, one short epoch)
    python -m mnist_course.course --only 01 02         # some notebooks only
    python -m mnist_course.course -p SEED 1            # extra papermill parameters

Executed copies go to the output folder (the notebooks in notebooks/ are never modified); each
kernel starts in notebooks/, whatever the caller's directory. Figures go to figures/ and numbers to
the results file (see mnist_course.results).
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
import time
from pathlib import Path

from .utils import repo_root


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_course.course", description="Run the course's notebooks with papermill.")
    parser.add_argument("--output", type=Path, default=repo_root() / "build" / "notebooks",
                        help="folder for the executed notebooks (default: build/notebooks)")
    parser.add_argument("--fast", action="store_true", help="fast mode (same as MNIST_COURSE_FAST=1)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (number or name)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="papermill parameter passed to every notebook (repeatable)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output to this terminal")
    args = parser.parse_args(argv)
    if args.fast:
        os.environ["MNIST_COURSE_FAST"] = "1"
    if args.log_output:  # papermill logs the cells' output through the logging module
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = {name: _parse_value(value) for name, value in args.parameter}
    notebooks = course_notebooks(args.only)
    total = time.perf_counter()
    for nb in notebooks:
        t0 = time.perf_counter()
        print(f"running {nb.name} ...", flush=True)
        try:
            out = run_notebook(nb, args.output.resolve(), params, args.log_output)
        except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
            print(f"FAILED {nb.name} after {time.perf_counter() - t0:.0f} s:\n{e}", file=sys.stderr)
            print(f"The partly executed notebook is in {args.output / nb.name}", file=sys.stderr)
            return 1
        print(f"  done in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
    print(f"{len(notebooks)} notebook(s) in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
