"""The package's rooms and the imports between them, read from the source with ``ast``.

    mnist-course readme --update   # rewrites the diagram in CONTRIBUTING.md (with the README's blocks)
    mnist-course readme --check    # exit 1 if it is stale
    python -c "from mnist_course.tooling.rooms import main; main()"   # print the Mermaid flowchart

:func:`read_package` builds the module graph once: every import statement of every module
(those inside functions too), relative imports resolved, ``from pkg import mod`` counted as an
import of the module ``pkg.mod``, a name imported from a package's ``__init__`` as an import of
that package, ``alias.sub`` (``import mnist_course as mc; mc.serving``) as an import of the
submodule it names, and so is ``importlib.import_module`` of a literal name. The packages' lazy
``__getattr__`` (``importlib.import_module(f".{name}", ...)``) is no import edge. ``tests/test_import_rules.py`` checks the import rules on this graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "mnist_course"
# In import order: a room may import the rooms it lists (and itself), nothing else.
ROOMS = ("core", "exercises", "serving", "bench", "tooling")
ALLOWED = {
    "core": {"core"},
    "exercises": {"core", "exercises"},
    "serving": {"core", "serving"},
    "bench": {"core", "serving", "bench"},
    "tooling": {"core", "exercises", "serving", "bench", "tooling"},
}
# Modules that live in one folder but belong to another room.
ROOM_OF = {f"{PACKAGE}.__main__": "tooling"}  # `python -m mnist_course` is the mnist-course command

START = "<!-- rooms:start -->"  # CONTRIBUTING.md's generated block: `mnist-course readme --update`
END = "<!-- rooms:end -->"


@dataclass(frozen=True)
class Edge:
    """`source` imports `target` (a module name of the package) at `line`."""

    source: str
    target: str
    line: int
    how: str  # "import", "from", "attribute" or "importlib"


@dataclass(frozen=True)
class PrivateUse:
    """`module` uses the name `name` of the module `owner` at `line`, and the name starts with _."""

    module: str
    owner: str
    name: str
    line: int


@dataclass
class Module:
    name: str
    path: str  # relative to the folder that holds the package, e.g. mnist_course/tooling/site.py
    is_package: bool
    tree: ast.Module
    bindings: dict[str, str] = field(default_factory=dict)  # local name -> dotted name it imports

    def qualname(self, node: ast.expr) -> str | None:
        """The dotted name an expression stands for through this module's imports
        (``mc.serving`` -> ``mnist_course.serving``, ``perf_counter`` -> ``time.perf_counter``);
        None for anything not built from an imported name."""
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None


@dataclass
class Graph:
    modules: dict[str, Module]
    edges: list[Edge]
    private: list[PrivateUse]

    def where(self, module: str, line: int) -> str:
        return f"{self.modules[module].path}:{line}"

    def room(self, module: str) -> str:
        """The room a module belongs to: the sub-package it lives in, else core."""
        if module in ROOM_OF:
            return ROOM_OF[module]
        parts = module.split(".")
        if len(parts) > 1 and getattr(self.modules.get(".".join(parts[:2])), "is_package", False):
            return parts[1]
        return "core"

    def internal_edges(self) -> list[Edge]:
        """The edges between two modules of the graph (not to a name that is no module)."""
        return [e for e in self.edges if e.target in self.modules and e.target != e.source]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: str) -> tuple[str, bool]:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _package_of(module: Module) -> str:
    return module.name if module.is_package else module.name.rpartition(".")[0]


def _resolve(module: Module, level: int, name: str | None) -> str:
    """The absolute module name of ``from <level dots><name> import ...`` in `module`."""
    if level == 0:
        return name or ""
    base = _package_of(module).split(".")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _internal(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def build_graph(files: Mapping[str, str]) -> Graph:
    """The graph of the modules whose sources `files` maps from their path
    (``"mnist_course/a.py"``, ``"mnist_course/sub/__init__.py"``; "/" separated)."""
    modules = {}
    for path, source in sorted(files.items()):
        name, is_package = _module_name(path)
        modules[name] = Module(name, path, is_package, ast.parse(source, filename=path))
    edges: list[Edge] = []
    private: list[PrivateUse] = []
    for m in modules.values():
        _read_imports(m, modules, edges, private)
    for m in modules.values():
        _read_attributes(m, modules, edges, private)
    return Graph(modules, list(dict.fromkeys(edges)), list(dict.fromkeys(private)))


def _read_imports(m: Module, modules: dict, edges: list, private: list) -> None:
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    m.bindings[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    m.bindings[top] = top
                if _internal(alias.name):
                    edges.append(Edge(m.name, alias.name, node.lineno, "import"))
                    owner, _, last = alias.name.rpartition(".")
                    if is_private(last) and owner != _package_of(m):
                        private.append(PrivateUse(m.name, owner, last, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(m, node.level, node.module)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                m.bindings[alias.asname or alias.name] = full
                if not _internal(base):
                    continue
                if full in modules:
                    edges.append(Edge(m.name, full, node.lineno, "from"))
                    if is_private(alias.name) and base != _package_of(m):
                        private.append(PrivateUse(m.name, base, alias.name, node.lineno))
                else:
                    edges.append(Edge(m.name, base, node.lineno, "from"))
                    if is_private(alias.name):
                        private.append(PrivateUse(m.name, base, alias.name, node.lineno))


def _read_attributes(m: Module, modules: dict, edges: list, private: list) -> None:
    """``alias.name`` where alias is an imported module of the package: a submodule is an import
    edge, a _private name a private use. So is ``importlib.import_module("mnist_course.x")`` with a
    literal name (the lazy ``__getattr__`` builds its name: no edge)."""
    for node in ast.walk(m.tree):
        if (isinstance(node, ast.Call) and m.qualname(node.func) == "importlib.import_module" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and _internal(node.args[0].value)):
            edges.append(Edge(m.name, node.args[0].value, node.lineno, "importlib"))
        if not isinstance(node, ast.Attribute):
            continue
        owner = m.qualname(node.value)
        if owner not in modules or owner == m.name:
            continue
        full = f"{owner}.{node.attr}"
        if full in modules:
            edges.append(Edge(m.name, full, node.lineno, "attribute"))
        elif is_private(node.attr):
            private.append(PrivateUse(m.name, owner, node.attr, node.lineno))


def package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def read_package(root: str | Path | None = None) -> Graph:
    """The graph of every module under the package folder `root` (default: this package)."""
    root = Path(root) if root else package_dir()
    files = {p.relative_to(root.parent).as_posix(): p.read_text(encoding="utf-8")
             for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}
    return build_graph(files)


def functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(qualified function name or "", node) for every node of `tree`, with the innermost function
    (``Class.method``, ``outer.inner``) that holds it."""

    def visit(node: ast.AST, scope: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            yield scope, child
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{scope}.{child.name}" if scope else child.name
            yield from visit(child, inner)

    yield from visit(tree, "")


# -- the diagram ---------------------------------------------------------------------------------


def room_graph(graph: Graph) -> tuple[dict[str, int], dict[tuple[str, str], tuple[int, int]]]:
    """({room: number of modules}, {(A, B): (modules of A that import B, modules of B imported)})."""
    counts = {room: 0 for room in ROOMS}
    for name in graph.modules:
        counts[graph.room(name)] = counts.get(graph.room(name), 0) + 1
    pairs: dict[tuple[str, str], tuple[set, set]] = {}
    for e in graph.internal_edges():
        a, b = graph.room(e.source), graph.room(e.target)
        if a != b:
            sources, targets = pairs.setdefault((a, b), (set(), set()))
            sources.add(e.source)
            targets.add(e.target)
    return counts, {k: (len(s), len(t)) for k, (s, t) in sorted(pairs.items())}


def diagram(graph: Graph | None = None) -> str:
    """The rooms and their imports as a Mermaid flowchart (A --> B: modules of A import B's)."""
    counts, arrows = room_graph(graph or read_package())
    order = {room: i for i, room in enumerate(ROOMS)}
    lines = ["flowchart TD",
             "    %% A --> B: modules of A import modules of B; the label says how many import how many"]
    for room in sorted(counts, key=lambda r: order.get(r, len(ROOMS))):
        where = PACKAGE if room == "core" else f"{PACKAGE}.{room}"
        lines.append(f'    {room}["{room} ({where}): {counts[room]} modules"]')
    for (a, b), (n_from, n_to) in sorted(arrows.items(), key=lambda kv: (order.get(kv[0][0], 99), order.get(kv[0][1], 99))):
        lines.append(f'    {a} -->|"{n_from} import {n_to}"| {b}')
    return "\n".join(lines)


def block(text: str) -> str:
    return f"{START}\n```mermaid\n{text}\n```\n{END}"


def with_diagram(doc: str, text: str) -> str:
    """`doc` (CONTRIBUTING.md's text) with the block between START and END replaced."""
    head, start, rest = doc.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"no {START!r} ... {END!r} markers; add them where the diagram goes.")
    return head + block(text) + tail


def contributing_path() -> Path:
    from ..settings import repo_root

    return repo_root() / "CONTRIBUTING.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course readme (rooms)", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--update", action="store_true", help="rewrite the diagram in CONTRIBUTING.md")
    group.add_argument("--check", action="store_true", help="exit 1 if CONTRIBUTING.md's diagram differs")
    args = parser.parse_args(argv)
    text = diagram()
    if not (args.update or args.check):
        print(text)
        return 0
    path = contributing_path()
    old = path.read_text(encoding="utf-8")
    try:
        new = with_diagram(old, text)
    except ValueError as e:
        print(f"{path}: {e}", file=sys.stderr)
        return 1
    if args.check:
        if new != old:
            print(f"{path}: the rooms diagram is out of date; run `mnist-course readme --update`.",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        from ..files import atomic_write

        atomic_write(path, new)
        print(f"updated the rooms diagram in {path}")
    return 0

