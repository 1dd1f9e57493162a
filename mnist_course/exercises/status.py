"""Progress over the notebooks as saved: which exercises pass, fail or are not attempted yet.

It checks no notebook of its own: it reads every notebook's ``check("NN.k", name)`` calls (the
checks themselves are in the ``nbNN`` modules, the registry in :mod:`.core`).

- ``check_calls(path)``: the ``(id, function name)`` of every ``check("NN.k", name)`` call in a saved
  notebook; ``cell_check_calls(source)`` the same for one code cell (the website folds those cells);
  ``parse_cell(source)`` the cell parsed, IPython magics skipped.
- ``notebook_status(path)``: the ``Result`` of every checked exercise of a saved notebook, run on
  the learner's ``def name``. The namespace holds ``np``, ``torch``, ``nn``, ``F`` and ``math``
  plus the result of every top-level ``import`` in the notebook; then each top-level ``def`` /
  ``class`` of the cells that call ``check`` is executed (so helpers written next to an exercise
  are found). No other notebook code runs: no data loading, no training.
- ``main(argv)``: the ``mnist-course status`` command (``--status PATH...``, ``--hint ID [--level 2]``,
  ``--solution ID``).
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import EXERCISES, Result, check, hint, solution

_PRELUDE = {"np": np, "numpy": np, "torch": torch, "nn": nn, "F": F, "math": math}


def check_calls(path: str | Path) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a saved notebook, in order."""
    return [call for tree in _code_trees(path) for call in _calls_in(tree)]


def cell_check_calls(source: str) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in one code cell's source
    (IPython magics are skipped; a cell that does not parse has none)."""
    tree = parse_cell(source)
    return _calls_in(tree) if tree is not None else []


def _calls_in(tree: ast.AST) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a parsed cell."""
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) >= 2
                and (getattr(node.func, "id", None) == "check" or getattr(node.func, "attr", None) == "check")
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and isinstance(node.args[1], ast.Name)):
            calls.append((node.args[0].value, node.args[1].id))
    return calls


def parse_cell(source: str) -> ast.Module | None:
    """One code cell's source parsed, with its IPython magics and shell lines (% and !) turned
    into `pass`; None for a cell that does not parse."""
    lines = [("pass  # " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _code_trees(path: str | Path) -> list[ast.Module]:
    """The parsed code cells of a saved notebook, in order (cells that do not parse left out)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return [t for t in (parse_cell(c.source) for c in nb.cells if c.cell_type == "code") if t is not None]


def notebook_status(path: str | Path) -> list[Result]:
    """Run every check("NN.k", name) of a saved notebook on the learner's `def name` (quietly)."""
    trees = _code_trees(path)
    namespace = dict(_PRELUDE)
    for tree in trees:  # every top-level import, as the notebook's first cells would have done
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
                except Exception:  # an import that fails here fails in the notebook too  # noqa: S110
                    pass
    results, defined = [], {}
    for tree in trees:
        calls = _calls_in(tree)
        if not calls:
            continue
        for node in tree.body:  # the learner's functions (and helpers) in the exercise cells
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
                    defined[node.name] = True
                except Exception as e:
                    defined[node.name] = f"{type(e).__name__}: {e}"
        for exercise_id, name in calls:
            if exercise_id not in EXERCISES:
                continue
            if defined.get(name) is not True:
                why = defined.get(name) or f"no top-level `def {name}` found in the notebook"
                results.append(Result(exercise_id, "failed", f"could not run it: {why}."))
                continue
            results.append(check(exercise_id, namespace[name], quiet=True))
    return results


def main(argv: list[str] | None = None) -> int:
    """The progress command, ``mnist-course status``: ``--status PATH...`` (notebooks or folders of
    them), ``--hint ID [--level 2]``, ``--solution ID``; with none of them, the list of exercises."""
    parser = argparse.ArgumentParser(prog="mnist-course status",
                                     description="The course's checked exercises: progress, hints and solutions.")
    parser.add_argument("--status", nargs="+", metavar="PATH",
                        help="notebooks (or folders of them) as saved: list pass / fail / not attempted per exercise")
    parser.add_argument("--hint", metavar="ID", help="print the hint of exercise ID (e.g. 02.1): the idea, "
                                                     "and the usual mistake")
    parser.add_argument("--level", type=int, choices=(1, 2), default=1,
                        help="with --hint: 1 names the idea (the default), 2 gives the formula or the steps")
    parser.add_argument("--solution", metavar="ID", help="print the reference solution of exercise ID")
    args = parser.parse_args(argv)
    for exercise_id in filter(None, (args.hint, args.solution)):
        if exercise_id not in EXERCISES:
            parser.error(f"no exercise {exercise_id!r}; the ids are {', '.join(EXERCISES)}")
    if args.level != 1 and not args.hint:
        parser.error("--level goes with --hint, e.g. --hint 02.1 --level 2")
    if args.hint:
        hint(args.hint, args.level)
    if args.solution:
        solution(args.solution)
    if not args.status:
        if not (args.hint or args.solution):
            for ex in EXERCISES.values():
                print(f"{ex.id}  {ex.function:22s} {ex.title}")
        return 0
    paths = []
    for p in map(Path, args.status):
        if not p.exists():
            print(f"{p}: no such file or folder", file=sys.stderr)
            return 2
        paths += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    counts = {"passed": 0, "failed": 0, "not attempted": 0}
    for path in paths:
        results = notebook_status(path)
        print(path.name)
        for r in results:
            counts[r.status] += 1
            print(f"  {r.line()}")
        if not results:
            print("  (no check(...) calls)")
    total = sum(counts.values())
    print(f"{counts['passed']} of {total} exercises pass, {counts['failed']} fail, "
          f"{counts['not attempted']} not attempted yet.")
    return 0

