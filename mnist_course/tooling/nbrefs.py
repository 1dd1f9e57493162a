"""nbval's reference outputs: the cells marked ``# NBVAL_CHECK_OUTPUT`` keep their outputs in git.

    mnist-course nbrefs --update            # run the notebooks in fast mode, store the references
    mnist-course nbrefs --update 01 04      # some notebooks only
    mnist-course nbrefs --check build/notebooks   # executed notebooks (e.g. full mode) vs the references
    mnist-course nbrefs --check build/notebooks 01 02   # some of them only

Policy: a checked cell (nbval's rule: a comment line ``# NBVAL_CHECK_OUTPUT`` or the tag
``nbval-check-output``) is stored with the outputs of a fast-mode run and an execution count, so
``pytest --nbval-lax`` compares them; every other cell is stored stripped (no outputs, execution
count null), which nbval only executes. Outputs are compared the way nbval 0.11 does
(``nbval/plugin.py``): the streams of one name are merged (``\\r`` and ``\\b`` applied), then every
stream (stdout, stderr) and every MIME type is compared as exact text, except images (PNG, JPEG),
widget views, metadata and tracebacks. ``--update`` runs with the test suite's settings (one
thread, no progress bars) and writes figures, results and models only into a temporary folder.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from .runner import notebooks_dir, run_notebook

# What nbval leaves out of the comparison (IPyNbFile.__init__ in nbval/plugin.py, without --nbdime).
SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")
INJECTED_TAG = "injected-parameters"  # papermill's cell holding the parameters it was given


def is_checked(cell) -> bool:
    """True for a code cell whose outputs `pytest --nbval-lax` compares (nbval's own marker rules)."""
    from nbval.plugin import find_comment_markers, find_metadata_tags

    if cell.cell_type != "code":
        return False
    options = dict(find_metadata_tags(cell.metadata))
    options.update(find_comment_markers(cell.source))
    return bool(options.get("check"))


def comparable(outputs: list) -> dict[str, list]:
    """A cell's outputs as nbval compares them: {stream name or MIME type: [values in order]}."""
    from nbval.plugin import coalesce_streams, transform_streams_for_comparison

    flat: dict[str, list] = {}
    for out in transform_streams_for_comparison(coalesce_streams(copy.deepcopy(list(outputs)))):
        for key, value in out.items():
            if key in SKIP_COMPARE:
                continue
            items = value.items() if key == "data" else [(key, value)]
            for k, v in items:
                if k not in SKIP_COMPARE:
                    flat.setdefault(k, []).append(v)
    return flat


def pick_notebooks(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The course notebooks NN_name.ipynb in folder, optionally only those named by number or name."""
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    picked = [p for p in found if not only or any(p.name.startswith(o) or p.stem == o for o in only)]
    if not picked:
        raise SystemExit(f"error: no notebook {' '.join(only or [])} in {folder}")
    return picked


def code_cells(nb) -> list:
    """The code cells of a notebook, without the one papermill injects (nbval's 'Cell N' numbering)."""
    return [c for c in nb.cells if c.cell_type == "code" and INJECTED_TAG not in c.metadata.get("tags", [])]


def paired_cells(stored, executed, name: str) -> list[tuple]:
    """(stored cell, executed cell) pairs, or ValueError if the executed copy has other code."""
    a, b = code_cells(stored), code_cells(executed)
    for n, (s, e) in enumerate(zip(a, b)):
        if s.source != e.source:
            raise ValueError(f"{name}: Cell {n} of the executed copy has other code than the notebook's; "
                             "run the notebook again")
    if len(a) != len(b):
        raise ValueError(f"{name}: the executed copy has {len(b)} code cells, the notebook {len(a)}; run it again")
    return list(zip(a, b))


def store_references(path: Path, executed: Path, original: str) -> int:
    """Write into notebook `path` the outputs of its checked cells from `executed`, strip all others.

    original: the notebook's text when it was executed; refuses (ValueError) if it changed since.
    Returns the number of checked cells.
    """
    text = path.read_text(encoding="utf-8")
    if text != original:
        raise ValueError(f"{path} changed while it was running; nothing written, run --update again")
    nb = nbformat.reads(text, as_version=4)
    from nbval.plugin import coalesce_streams

    checked = 0
    for cell, ran in paired_cells(nb, nbformat.read(executed, as_version=4), path.name):
        if is_checked(cell):
            cell.outputs = coalesce_streams(copy.deepcopy(ran.outputs))
            cell.execution_count = ran.execution_count
            checked += 1
        else:
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, path)
    return checked


def _text(values: list) -> list[str]:
    joined = "".join(v if isinstance(v, str) else json.dumps(v, indent=1, sort_keys=True) + "\n" for v in values)
    return joined.splitlines(keepends=True)


def differences(stored_path: Path, executed_path: Path) -> list[str]:
    """One message per checked cell whose executed outputs differ from the stored references."""
    name = stored_path.name
    stored, executed = (nbformat.read(p, as_version=4) for p in (stored_path, executed_path))
    messages = []
    for n, (cell, ran) in enumerate(paired_cells(stored, executed, name)):
        if not is_checked(cell):
            continue
        where = f"{name}::Cell {n} ({(cell.source.splitlines() + [''])[1][:60]!r} ...)"
        if cell.execution_count is None:
            messages.append(f"{where}: no reference outputs stored; run `make nbval-refs`")
            continue
        want, got = comparable(cell.outputs), comparable(ran.outputs)
        for key in sorted(want.keys() | got.keys()):
            if want.get(key) != got.get(key):
                diff = difflib.unified_diff(_text(want.get(key, [])), _text(got.get(key, [])),
                                            f"stored {key}", f"executed {key} ({executed_path})")
                messages.append(f"{where}: {key} differs\n" + "".join(diff))
    return messages


def update(folder: Path, only: list[str] | None = None) -> list[str]:
    """Run the notebooks in fast mode (outputs in a temporary folder) and store their references.

    Returns one message per notebook that failed (nothing is stored for it; the others are stored)."""
    failures = []
    with tempfile.TemporaryDirectory(prefix="nbrefs-") as tmp:
        os.environ.update(MNIST_COURSE_FAST="1", MNIST_COURSE_RECORD="0", MNIST_COURSE_PROGRESS="0", MPLBACKEND="Agg",
                          MNIST_COURSE_FIGURES=f"{tmp}/figures", MNIST_COURSE_RESULTS=f"{tmp}/results.json",
                          MNIST_COURSE_MODELS=f"{tmp}/models")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        for path in pick_notebooks(folder, only):
            original = path.read_text(encoding="utf-8")  # an edit made while it runs is refused, not overwritten
            try:
                executed = run_notebook(path, Path(tmp, "executed"))  # the kernel starts in notebooks/, as for nbval
                print(f"{path.name}: {store_references(path, executed, original)} checked cell(s) stored", flush=True)
            except Exception as e:  # papermill's PapermillExecutionError carries the cell's traceback
                failures.append(f"{path.name}: nothing stored: {e}")
                print(failures[-1], file=sys.stderr, flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course nbrefs", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--update", nargs="*", metavar="NN", help="run these notebooks (default: all) in fast mode "
                       "and store their checked cells' outputs")
    group.add_argument("--check", nargs="+", metavar=("DIR", "NN"), help="compare the executed notebooks in DIR "
                       "(e.g. build/notebooks from `make course`; default: all, else these) with the stored references")
    parser.add_argument("--notebooks", type=Path, default=notebooks_dir(), help="the notebooks' folder (default: notebooks/)")
    args = parser.parse_args(argv)
    try:
        if args.update is not None:
            failures = update(args.notebooks, args.update)
            if failures:
                print(f"error: {len(failures)} notebook(s) failed, their references are unchanged: "
                      + ", ".join(f.split(":")[0] for f in failures), file=sys.stderr)
            return 1 if failures else 0
        folder, messages = Path(args.check[0]), []
        for path in pick_notebooks(args.notebooks, args.check[1:]):
            executed = folder / path.name
            if not executed.is_file():
                raise FileNotFoundError(f"{executed} not found: run the notebooks into {folder} first "
                                        "(e.g. `make course` writes build/notebooks)")
            messages += differences(path, executed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for message in messages:
        print(message, file=sys.stderr)
    if messages:
        print(f"{len(messages)} checked output(s) differ from the references in {args.notebooks}", file=sys.stderr)
        return 1
    print(f"every checked cell of the notebooks in {folder} matches the references in {args.notebooks}")
    return 0

