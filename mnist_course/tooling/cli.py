"""The ``mnist-course`` command: one entry point, one subcommand per tool.

    mnist-course --help              # every command, one line each
    mnist-course COMMAND --help      # that command's own options
    python -m mnist_course COMMAND   # the same, where the virtual environment's bin/ is not on PATH

Each command is a module with ``main(argv) -> int`` and its own argparse parser (prog
"mnist-course COMMAND"). This file only picks the module and hands it the rest of the command
line; modules are imported on use, so ``mnist-course --help`` loads none of them.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from ..settings import VERSION


def status(argv: list[str]) -> int:
    """``mnist-course status [PATH...] [--hint ID [--level 2]] [--solution ID] [--json] [--timeout S] [--memory MB]``:
    the learner's exercise progress, by the runner and limits of ``mnist-course grade``; exit status 0
    when every exercise passes, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="mnist-course status",
        description="Your exercises, as your notebooks are saved: pass / fail / error / timeout / not attempted, "
                    "per notebook, run as mnist-course grade runs them. Exit status 0 when every exercise passes, "
                    "1 otherwise.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="notebooks or folders of them, at any depth (default: my-notebooks/ if it exists, else "
                             "notebooks/, else the current folder; relative to the current folder)")
    parser.add_argument("--hint", metavar="ID", help="print the hint of exercise ID (e.g. 02.1): the idea, "
                                                     "and the usual mistake")
    parser.add_argument("--level", type=int, choices=(1, 2), default=1,
                        help="with --hint: 1 names the idea (the default), 2 gives the formula or the steps")
    parser.add_argument("--solution", metavar="ID", help="print the reference solution of exercise ID")
    parser.add_argument("--json", action="store_true", help="print the results as JSON (as mnist-course grade reads them)")
    parser.add_argument("--timeout", type=float, metavar="S", help="wall seconds per notebook run (default 60)")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory a notebook's checks may add (default 2048)")
    args = parser.parse_args(argv)
    if args.level != 1 and not args.hint:
        parser.error("--level goes with --hint, e.g. --hint 02.1 --level 2")
    paths = args.paths
    if not paths and not (args.hint or args.solution):
        here = Path(".")  # e.g. JupyterLab's terminal, which starts in my-notebooks/
        default = next((p for p in (Path("my-notebooks"), Path("notebooks")) if p.is_dir()),
                       here if any(here.glob("*.ipynb")) else None)
        if default is None:
            parser.error(f"no my-notebooks/ or notebooks/ folder in {Path.cwd()}: name the notebooks, "
                         "e.g. mnist-course status path/to/my-notebooks")
        paths = [str(default)]
        print(f"reading {default.resolve()}/", file=sys.stderr if args.json else sys.stdout)
    forwarded = (["--status", *paths] if paths else []) \
        + (["--hint", args.hint] if args.hint else []) + (["--level", str(args.level)] if args.level != 1 else []) \
        + (["--solution", args.solution] if args.solution else []) + (["--json"] if args.json else []) \
        + (["--timeout", str(args.timeout)] if args.timeout is not None else []) \
        + (["--memory", str(args.memory)] if args.memory is not None else [])
    return importlib.import_module("mnist_course.exercises.status").main(forwarded)


# name -> (the module whose main(argv) runs it, or a function here; one line for --help), in --help's order
COMMANDS: dict[str, tuple[str | Callable[[list[str]], int], str]] = {
    "lab": ("mnist_course.tooling.workspace",
            "copy the notebooks into my-notebooks/ (never overwriting yours) and open JupyterLab there"),
    "course": ("mnist_course.tooling.runner", "run the notebooks with papermill (--fast, --only NN, -p NAME VALUE)"),
    "status": (status, "your exercises: pass / fail / not attempted per notebook; --hint ID [--level 2], --solution ID"),
    "grade": ("mnist_course.tooling.grade", "grade a class's notebooks in a sandbox: gradebook.csv/.json and report.html"),
    "train": ("mnist_course.tooling.train", "train an MLP or CNN from the command line (--recipe best-cnn, --resume)"),
    "export": ("mnist_course.serving.export", "export a course model to ONNX, checked against PyTorch"),
    "serve": ("mnist_course.serving.service", "the web service and drawing page (FastAPI + uvicorn)"),
    "site": ("mnist_course.tooling.site", "the course as a static website, from executed notebooks"),
    "bench": ("mnist_course.bench.benchmark", "time data loading, training to 99% and inference (a report)"),
    "readme": ("mnist_course.tooling.readme", "regenerate the generated blocks of README.md, docs/ and CONTRIBUTING.md"),
    "nbrefs": ("mnist_course.tooling.nbrefs", "store or check the nbval reference outputs of the checked cells"),
    "words": ("mnist_course.tooling.wordcount", "words of lesson prose per notebook (markdown outside code); --pointers"),
}
# `mnist-course bench NAME ...`; plain `mnist-course bench` is the benchmark
BENCH: dict[str, tuple[str, str]] = {
    "pictures": ("mnist_course.bench.pictures", "three picture pipelines scored on realistic pictures"),
    "calibrate": ("mnist_course.bench.calibrate", "measure the 'not sure' threshold of predict_image"),
}


def usage() -> str:
    rows = []
    for name, (_, summary) in COMMANDS.items():
        rows.append((name, summary))
        if name == "bench":
            rows += [(f"bench {sub}", line) for sub, (_, line) in BENCH.items()]
    width = max(len(name) for name, _ in rows) + 2
    lines = ["usage: mnist-course COMMAND [ARGS...]", "",
             "The MNIST course's tools. `mnist-course COMMAND --help` shows a command's options.", "",
             "commands:", *(f"  {name:<{width}}{summary}" for name, summary in rows), "",
             "Where the virtual environment's bin/ folder is not on PATH: python -m mnist_course COMMAND ..."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"mnist-course {VERSION}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"mnist-course: unknown command {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
              f"the commands are: {', '.join(COMMANDS)}. See mnist-course --help.", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    if name == "bench" and rest and rest[0] in BENCH:
        target, rest = BENCH[rest[0]][0], rest[1:]
    elif name == "bench" and rest[:1] in (["-h"], ["--help"]):
        print(f"(also: {', '.join(f'mnist-course bench {sub}' for sub in BENCH)}; each with --help)\n")
    run = target if callable(target) else importlib.import_module(target).main
    return run(rest)
