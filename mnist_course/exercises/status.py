"""Progress over the notebooks as saved: which exercises pass, fail or are not attempted yet, run
by the same sandboxed runner (:mod:`.sandbox`) and with the same limits as ``mnist-course grade``,
so what a learner sees here is what the instructor's gradebook will say.

It checks no notebook of its own: it reads every notebook's ``check("NN.k", name)`` calls (the
checks themselves are in the ``nbNN`` modules, the registry in :mod:`.core`).

- ``check_calls(path)``: the ``(id, function name)`` of every ``check("NN.k", name)`` call in a saved
  notebook; ``cell_check_calls(source)`` the same for one code cell (the website folds those cells);
  ``parse_cell(source)`` the cell parsed, IPython magics skipped (all three from :mod:`.sandbox`).
- ``notebook_status(path)``: the :class:`~.sandbox.Outcome` of every exercise of a saved notebook
  (status ``pass``, ``fail``, ``error``, ``timeout`` or ``missing``), run on the learner's
  ``def name``: the notebook's top-level imports, then the statements of the cells that call
  ``check`` (helpers written next to an exercise are found), then the check, in a sandboxed child
  process. No other notebook code runs: no data loading, no training.
- ``main(argv)``: the ``mnist-course status`` command (``--status PATH...`` notebooks or folders,
  searched at any depth; ``--hint ID [--level 2]``, ``--solution ID``; ``--json``; ``--timeout``,
  ``--memory``). Exit status: 0 when every exercise found passes, 1 otherwise, 2 for a path
  that does not exist or holds no notebook.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core import EXERCISES, hint, solution
from .sandbox import (
    Limits,
    Outcome,
    cell_check_calls,
    check_calls,
    find_notebooks,
    imports_of,
    parse_cell,
    run_learner,
    run_notebook,
    warm_up,
)

__all__ = ["cell_check_calls", "check_calls", "main", "notebook_status", "parse_cell"]


def notebook_status(path: str | Path, limits: Limits | None = None) -> list[Outcome]:
    """Run every check("NN.k", name) of a saved notebook on the learner's `def name`, in a sandboxed
    child (quietly); the outcomes in the notebook's order, missing exercises included."""
    warm_up(sorted({i for i, _ in check_calls(path) if i in EXERCISES}), imports_of(path))
    return run_notebook(path, limits).outcomes


def _print_run(run: dict) -> None:
    print(run["file"])
    for o in run["outcomes"]:
        print(f"  {Outcome(**o).line()}")
    if run["error"]:
        print(f"  ! {run['error']}")
    elif not run["outcomes"]:
        print("  (no check(...) calls)")
    for flag in run["flags"]:
        print(f"  ⚑ {flag}")
    for note in run["notes"]:
        print(f"  · {note}")
    sys.stdout.flush()


def summary(outcomes: list[dict]) -> str:
    """One line: how many pass, fail, are not attempted (or missing), and errors and timeouts if any."""
    n = {s: sum(o["status"] == s for o in outcomes) for s in ("pass", "fail", "error", "timeout", "missing")}
    line = f"{n['pass']} of {len(outcomes)} exercises pass, {n['fail']} fail, {n['missing']} not attempted yet"
    extra = [f"{n['error']} stopped by an error" if n["error"] else "", f"{n['timeout']} timed out" if n["timeout"] else ""]
    return line + "".join(f", {e}" for e in extra if e) + "."


def main(argv: list[str] | None = None) -> int:
    """The progress command, ``mnist-course status``: ``--status PATH...`` (notebooks or folders of
    them, at any depth), ``--hint ID [--level 2]``, ``--solution ID``; with none of them, the list
    of exercises. Exit status 0 when every exercise passes, 1 otherwise, 2 for a bad path."""
    parser = argparse.ArgumentParser(prog="mnist-course status",
                                     description="The course's checked exercises: progress, hints and solutions.")
    parser.add_argument("--status", nargs="+", metavar="PATH",
                        help="notebooks (or folders of them, searched at any depth) as saved: list pass / fail / "
                             "not attempted per exercise")
    parser.add_argument("--hint", metavar="ID", help="print the hint of exercise ID (e.g. 02.1): the idea, "
                                                     "and the usual mistake")
    parser.add_argument("--level", type=int, choices=(1, 2), default=1,
                        help="with --hint: 1 names the idea (the default), 2 gives the formula or the steps")
    parser.add_argument("--solution", metavar="ID", help="print the reference solution of exercise ID")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (what mnist-course grade reads from a container)")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help=f"wall seconds per notebook run (default {Limits.timeout:g})")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, metavar="MB",
                        help=f"memory a notebook's checks may add, in MB (default {Limits.memory_mb})")
    args = parser.parse_args(argv)
    for exercise_id in filter(None, (args.hint, args.solution)):
        if exercise_id not in EXERCISES:
            parser.error(f"no exercise {exercise_id!r}; the ids are {', '.join(EXERCISES)}")
    if args.level != 1 and not args.hint:
        parser.error("--level goes with --hint, e.g. --hint 02.1 --level 2")
    if args.timeout <= 0 or args.memory <= 0:
        parser.error("--timeout and --memory must be positive")
    if args.hint:
        hint(args.hint, args.level)
    if args.solution:
        solution(args.solution)
    if not args.status:
        if not (args.hint or args.solution):
            for ex in EXERCISES.values():
                print(f"{ex.id}  {ex.function:22s} {ex.title}")
        return 0
    paths = [Path(p) for p in args.status]
    for p in paths:
        if not p.exists():
            print(f"{p}: no such file or folder", file=sys.stderr)
            return 2
        if not find_notebooks(p):
            print(f"{p}: no notebook (.ipynb) in it, at any depth", file=sys.stderr)
            return 2
    limits = Limits(timeout=args.timeout, memory_mb=args.memory)
    notebooks = [nb for p in paths for nb in find_notebooks(p)]
    warm_up(sorted({i for nb in notebooks for i, _ in _read(check_calls, nb, []) if i in EXERCISES}),
            set().union(*(_read(imports_of, nb, set()) for nb in notebooks)))
    runs, learners = [], []
    for p in paths:
        learner = run_learner(p, limits, progress=None if args.json else lambda run: _print_run(run.to_json()))
        learners.append({"path": str(p), **learner})
        runs += learner["notebooks"]
    outcomes = [o for run in runs for o in run["outcomes"]]
    if args.json:
        print(json.dumps(learners[0] if len(learners) == 1 else {"learners": learners}))
    else:
        print(summary(outcomes))
    return 0 if all(o["status"] == "pass" for o in outcomes) and not any(r["error"] for r in runs) else 1


def _read(reader, path: Path, default):
    try:
        return reader(path)
    except Exception:  # noqa: BLE001 (the runner reports a notebook it cannot read)
        return default
