"""The ``mnist-course`` command: one entry point with a subcommand for each tool (placeholder)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "course": "mnist_course.tooling.runner",
    "status": "mnist_course.exercises.checks",
    "train": "mnist_course.tooling.train",
    "export": "mnist_course.serving.export",
    "serve": "mnist_course.serving.service",
    "site": "mnist_course.tooling.site",
    "bench": "mnist_course.bench.benchmark",
    "readme": "mnist_course.tooling.readme",
    "nbrefs": "mnist_course.tooling.nbrefs",
    "lab": "mnist_course.tooling.workspace",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: mnist-course {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench" and rest[:1] in (["pictures"], ["calibrate"]):
        module = importlib.import_module(f"mnist_course.bench.{rest[0]}")
        return module.main(rest[1:]) or 0
    if cmd == "status":
        rest = ["--status", *(rest or ["my-notebooks"])] if not any(a.startswith("--") for a in rest) else rest
    return importlib.import_module(COMMANDS[cmd]).main(rest) or 0
