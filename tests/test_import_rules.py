"""The package's import rules, checked on every module's source (``ast``, imports inside functions
included; the graph is built once by :mod:`mnist_course.tooling.rooms`).

1. No cycle between modules.
2. No module uses another module's _private name (dunder names are not private).
3. Rooms import one way: core <- exercises; core <- serving <- bench <- tooling; tooling may also
   import exercises. A module of the package that does not exist is no import either.
4. settings.py and files.py import nothing from the package.
5. One atomic writer: only files.py renames files into place (os.replace, os.rename, shutil.move,
   Path.rename, Path.replace) or makes temporary files with tempfile.mkstemp / mktemp.
6. One latency helper: no module other than utils.py has a function with "latency" in its name
   that reads a clock (time.perf_counter, ...) inside a loop. Narrower than "no other timing
   loop": the benchmark's throughput, the load test's per-request times and the runner's
   per-notebook times are timing loops of other kinds, and only the name tells them apart.

Each rule is a function from the graph to messages naming the file and line; each is proved on
small planted sources (test_a_planted_violation_is_reported) and on the real package with its one
allowed exception removed where it has one.
"""

from __future__ import annotations

import ast

import pytest

from mnist_course.tooling import rooms
from mnist_course.tooling.rooms import ALLOWED, PACKAGE, ROOMS, Graph, build_graph

GRAPH = rooms.read_package()

LEAVES = (f"{PACKAGE}.settings", f"{PACKAGE}.files")
WRITERS = {f"{PACKAGE}.files": "the one atomic writer"}  # module -> why it may rename files into place
TIMERS = {f"{PACKAGE}.utils": "latency_ms, the one latency helper"}
RENAMES = {"os.replace", "os.rename", "os.renames", "shutil.move", "tempfile.mkstemp", "tempfile.mktemp"}
CLOCKS = {"time.perf_counter", "time.perf_counter_ns", "time.monotonic", "time.monotonic_ns", "time.time",
          "time.time_ns", "time.process_time"}
LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


# -- the rules --------------------------------------------------------------------------------------


def cycles(graph: Graph) -> list[str]:
    """One message per group of modules that import each other, as the shortest path a -> b -> a."""
    succ: dict[str, dict[str, int]] = {}
    for e in graph.internal_edges():
        succ.setdefault(e.source, {}).setdefault(e.target, e.line)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in succ.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph.modules):
        if v not in index:
            connect(v)
    messages = []
    for group in sorted(groups):
        start, members = group[0], set(group)
        paths, todo = {start: [start]}, [start]
        path = None
        while todo and path is None:  # breadth first: the shortest way back to start
            v = todo.pop(0)
            for w in sorted(succ.get(v, {})):
                if w == start:
                    path = paths[v] + [start]
                    break
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    todo.append(w)
        where = ", ".join(f"{graph.where(a, succ[a][b])} imports {b}" for a, b in zip(path, path[1:]))
        messages.append(f"import cycle {' → '.join(path)} ({where})")
    return messages


def private_uses(graph: Graph) -> list[str]:
    return [f"{graph.where(p.module, p.line)}: {p.module} uses {p.owner}.{p.name}, a private name of "
            f"another module: make it public (no leading _) or keep the code that needs it in {p.owner}"
            for p in graph.private]


def room_violations(graph: Graph) -> list[str]:
    messages = []
    for e in graph.internal_edges():
        a, b = graph.room(e.source), graph.room(e.target)
        if b not in ALLOWED.get(a, ()):
            messages.append(f"{graph.where(e.source, e.line)}: {e.source} ({a}) imports {e.target} ({b}); "
                            f"{a} may import only {', '.join(r for r in ROOMS if r in ALLOWED.get(a, ()))}")
    return messages


def unknown_rooms(graph: Graph) -> list[str]:
    return [f"{m.path}: sub-package {m.name} is no room ({', '.join(ROOMS[1:])}); add it to "
            "rooms.ROOMS and rooms.ALLOWED, CONTRIBUTING.md and the package docstring, or move it into one"
            for m in graph.modules.values()
            if m.is_package and m.name.count(".") == 1 and graph.room(m.name) not in ROOMS]


def missing_modules(graph: Graph) -> list[str]:
    return [f"{graph.where(e.source, e.line)}: {e.source} imports {e.target}, which is no module of the package"
            for e in graph.edges if e.target not in graph.modules]


def leaf_imports(graph: Graph, leaves=LEAVES) -> list[str]:
    return [f"{graph.where(e.source, e.line)}: {e.source} is a leaf and imports {e.target}; it may import "
            "nothing from the package" for e in graph.edges if e.source in leaves]


def _calls(graph: Graph, exempt) -> list[tuple[str, str, ast.Call]]:
    return [(name, scope, node) for name, m in sorted(graph.modules.items()) if name not in exempt
            for scope, node in rooms.functions(m.tree) if isinstance(node, ast.Call)]


def file_writers(graph: Graph, exempt=WRITERS) -> list[str]:
    messages = []
    for name, scope, call in _calls(graph, exempt):
        func, what = call.func, graph.modules[name].qualname(call.func)
        method = func.attr if isinstance(func, ast.Attribute) and what is None else None
        if what in RENAMES or method == "rename" or (method == "replace" and len(call.args) == 1 and not call.keywords):
            messages.append(f"{graph.where(name, call.lineno)}: {scope or name} calls {what or '.' + method}(); "
                            f"write files with {PACKAGE}.files.atomic_write, the one atomic writer")
    return messages


def latency_timers(graph: Graph, exempt=TIMERS) -> list[str]:
    messages = []
    for name, m in sorted(graph.modules.items()):
        if name in exempt:
            continue
        for _, fn in rooms.functions(m.tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or "latency" not in fn.name.lower():
                continue
            lines = sorted({call.lineno for loop in ast.walk(fn) if isinstance(loop, LOOPS)
                            for call in ast.walk(loop)
                            if isinstance(call, ast.Call) and m.qualname(call.func) in CLOCKS})
            if lines:
                messages.append(f"{graph.where(name, fn.lineno)}: {fn.name} times calls in a loop "
                                f"(clock read at line {', '.join(map(str, lines))}); use "
                                f"{PACKAGE}.utils.latency_ms, the one latency helper")
    return messages


RULES = {
    "cycles": cycles,
    "private names": private_uses,
    "rooms": room_violations,
    "unknown rooms": unknown_rooms,
    "missing modules": missing_modules,
    "leaves": leaf_imports,
    "one atomic writer": file_writers,
    "one latency helper": latency_timers,
}


@pytest.mark.parametrize("rule", RULES)
def test_the_package_keeps_the_rule(rule):
    problems = RULES[rule](GRAPH)
    assert not problems, "\n".join(problems)


def test_the_graph_reads_every_module_and_room():
    assert {f"{PACKAGE}.settings", f"{PACKAGE}.files", f"{PACKAGE}.utils", f"{PACKAGE}.tooling.rooms"} <= set(GRAPH.modules)
    assert {GRAPH.room(name) for name in GRAPH.modules} == set(ROOMS)
    assert len(GRAPH.internal_edges()) > 50  # imports inside functions counted too


# -- each rule rejects a planted violation ------------------------------------------------------------

BASE = {  # a tiny package shaped like the real one, keeping every rule
    "mnist_course/__init__.py": (
        '"""doc"""\nimport importlib\nfrom . import settings\nfrom .settings import VERSION as __version__\n'
        'SUBMODULES = ("utils", "serving")\n'
        "def __getattr__(name):\n    return importlib.import_module(f'.{name}', __name__)\n"),
    "mnist_course/settings.py": "import os\nVERSION = '1'\ndef _env():\n    return os.environ\n",
    "mnist_course/files.py": "import os\ndef atomic_write(path, data):\n    os.replace(path + '.tmp', path)\n",
    "mnist_course/utils.py": (
        "import time\nfrom .settings import VERSION\n"
        "def latency_ms(fn):\n    for _ in range(3):\n        t0 = time.perf_counter()\n        fn()\n"
        "    return time.perf_counter() - t0\n"),
    "mnist_course/exercises/__init__.py": "from .checks import check\n",
    "mnist_course/exercises/checks.py": "from .. import utils\ndef check():\n    return utils.latency_ms\n",
    "mnist_course/serving/__init__.py": "",
    "mnist_course/serving/export.py": "from ..files import atomic_write\nfrom .. import settings\nX = settings.__doc__\n",
    "mnist_course/bench/__init__.py": "",
    "mnist_course/bench/load.py": (
        "import time\nfrom ..serving import export\n"
        "def client():\n    while time.perf_counter() < 1:\n        pass\n"),
    "mnist_course/tooling/__init__.py": "",
    "mnist_course/tooling/site.py": (
        "import mnist_course as mc\nfrom ..exercises import check\nfrom ..bench import load\n"
        "def build(text):\n    return text.replace('a', 'b'), mc.serving.export\n"),
}

PLANTED = [  # (rule, {path: source} added to BASE, what the message must say)
    ("cycles", {"mnist_course/utils.py": BASE["mnist_course/utils.py"] + "def f():\n    from . import data\n",
                "mnist_course/data.py": "from .utils import latency_ms\n"},
     "mnist_course.data → mnist_course.utils → mnist_course.data (mnist_course/data.py:1 imports"),
    ("cycles", {"mnist_course/a.py": "from . import b\n", "mnist_course/b.py": "import mnist_course.c\n",
                "mnist_course/c.py": "from .a import x\n"},
     "mnist_course.a → mnist_course.b → mnist_course.c → mnist_course.a"),
    ("cycles", {"mnist_course/exercises/checks.py": "from . import check\n"},  # a name from the package's __init__
     "mnist_course.exercises → mnist_course.exercises.checks → mnist_course.exercises"),
    ("private names", {"mnist_course/data.py": "from .settings import _env\n"},
     "mnist_course/data.py:1: mnist_course.data uses mnist_course.settings._env"),
    ("private names", {"mnist_course/data.py": "import mnist_course.settings as s\ndef f():\n    return s._env()\n"},
     "mnist_course/data.py:3: mnist_course.data uses mnist_course.settings._env"),
    ("private names", {"mnist_course/bench/x.py": "from .. import settings\nsettings._env()\n"},
     "mnist_course/bench/x.py:2: mnist_course.bench.x uses mnist_course.settings._env"),
    ("private names", {"mnist_course/data.py": "import mnist_course\nmnist_course.settings._env()\n"},
     "mnist_course/data.py:2: mnist_course.data uses mnist_course.settings._env"),
    ("rooms", {"mnist_course/data.py": "def f():\n    from .tooling import site\n"},
     "mnist_course/data.py:2: mnist_course.data (core) imports mnist_course.tooling.site (tooling)"),
    ("rooms", {"mnist_course/data.py": "import mnist_course as mc\ndef f():\n    return mc.serving.export\n"},
     "mnist_course/data.py:3: mnist_course.data (core) imports mnist_course.serving (serving)"),
    ("rooms", {"mnist_course/exercises/checks.py": "from ..serving.export import atomic_write\n"},
     "mnist_course.exercises.checks (exercises) imports mnist_course.serving.export (serving)"),
    ("rooms", {"mnist_course/serving/export.py": "from mnist_course.bench.load import client\n"},
     "mnist_course.serving.export (serving) imports mnist_course.bench.load (bench)"),
    ("rooms", {"mnist_course/bench/load.py": "from ..tooling import site\n"},
     "mnist_course.bench.load (bench) imports mnist_course.tooling.site (tooling)"),
    ("rooms", {"mnist_course/bench/load.py": "from ..exercises import check\n"},
     "mnist_course.bench.load (bench) imports mnist_course.exercises (exercises)"),
    ("unknown rooms", {"mnist_course/extras/__init__.py": ""}, "sub-package mnist_course.extras is no room"),
    ("missing modules", {"mnist_course/tooling/site.py": "from ..exercises.gone import check\n"},
     "mnist_course/tooling/site.py:1: mnist_course.tooling.site imports mnist_course.exercises.gone, which is no module"),
    ("missing modules", {"mnist_course/tooling/cli.py": "import importlib\ndef f():\n    importlib.import_module('mnist_course.gone')\n"},
     "mnist_course/tooling/cli.py:3: mnist_course.tooling.cli imports mnist_course.gone, which is no module"),
    ("rooms", {"mnist_course/data.py": "from importlib import import_module\nimport_module('mnist_course.bench.load')\n"},
     "mnist_course/data.py:2: mnist_course.data (core) imports mnist_course.bench.load (bench)"),
    ("leaves", {"mnist_course/settings.py": "def f():\n    from .files import atomic_write\n"},
     "mnist_course/settings.py:2: mnist_course.settings is a leaf and imports mnist_course.files"),
    ("leaves", {"mnist_course/files.py": "import mnist_course\n"},
     "mnist_course/files.py:1: mnist_course.files is a leaf and imports mnist_course"),
    ("one atomic writer", {"mnist_course/training.py": "import os\nclass H:\n    def save(self, p):\n        os.replace(p, p)\n"},
     "mnist_course/training.py:4: H.save calls os.replace()"),
    ("one atomic writer", {"mnist_course/serving/x.py": "import tempfile as t\ndef f():\n    return t.mkstemp()\n"},
     "mnist_course/serving/x.py:3: f calls tempfile.mkstemp()"),
    ("one atomic writer", {"mnist_course/x.py": "from os import rename\nrename('a', 'b')\n"},
     "mnist_course/x.py:2: mnist_course.x calls os.rename()"),
    ("one atomic writer", {"mnist_course/x.py": "from pathlib import Path\ndef f(tmp):\n    tmp.replace(Path('b'))\n"},
     "mnist_course/x.py:3: f calls .replace()"),
    ("one atomic writer", {"mnist_course/x.py": "def f(tmp, path):\n    tmp.rename(path)\n"},
     "mnist_course/x.py:2: f calls .rename()"),
    ("one latency helper", {"mnist_course/bench/latency.py": (
        "from time import perf_counter\ndef onnx_latency(sess):\n    times = []\n    for _ in range(9):\n"
        "        t0 = perf_counter()\n        sess()\n        times.append(perf_counter() - t0)\n    return times\n")},
     "mnist_course/bench/latency.py:2: onnx_latency times calls in a loop (clock read at line 5, 7)"),
    ("one latency helper", {"mnist_course/drawing.py": (
        "import time\ndef latency(f):\n    return [time.perf_counter() for _ in range(3)]\n")},
     "mnist_course/drawing.py:2: latency times calls in a loop (clock read at line 3)"),
]


def test_the_planted_package_keeps_every_rule():
    graph = build_graph(BASE)
    assert {rule: RULES[rule](graph) for rule in RULES} == {rule: [] for rule in RULES}
    assert {e.target for e in graph.edges if e.source == f"{PACKAGE}.tooling.site"} == {
        PACKAGE, f"{PACKAGE}.exercises", f"{PACKAGE}.bench.load", f"{PACKAGE}.serving", f"{PACKAGE}.serving.export"}
    assert not [e for e in graph.edges if e.source == PACKAGE and e.target != f"{PACKAGE}.settings"]  # lazy: no edge


@pytest.mark.parametrize("rule, files, expected", PLANTED, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(PLANTED)])
def test_a_planted_violation_is_reported(rule, files, expected):
    problems = RULES[rule](build_graph({**BASE, **files}))
    assert any(expected in p for p in problems), "\n".join(problems) or "nothing reported"


def test_the_allowed_writer_and_timer_are_found_when_not_allowed():
    """The real files.py and utils.py are what the rules would reject anywhere else."""
    assert any(m.startswith("mnist_course/files.py:") and "os.replace()" in m for m in file_writers(GRAPH, exempt={}))
    assert any(m.startswith("mnist_course/utils.py:") and "latency_ms times calls in a loop" in m
               for m in latency_timers(GRAPH, exempt={}))


def test_contributing_shows_the_rooms_as_the_code_imports_them():
    path = rooms.contributing_path()
    text = path.read_text(encoding="utf-8")
    assert rooms.with_diagram(text, rooms.diagram(GRAPH)) == text, (
        f"{path}: the rooms diagram differs from the code's imports; regenerate it with "
        "`mnist-course readme --update`")


def test_the_diagram_command_checks_and_updates_the_block(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "CONTRIBUTING.md"
    doc.write_text(f"# x\n\n{rooms.START}\n```mermaid\nflowchart TD\n```\n{rooms.END}\n\nafter\n")
    monkeypatch.setattr(rooms, "contributing_path", lambda: doc)
    assert rooms.main(["--check"]) == 1
    assert "mnist-course readme --update" in capsys.readouterr().err
    assert rooms.main(["--update"]) == 0
    assert rooms.main(["--check"]) == 0
    text = doc.read_text()
    assert text.startswith("# x\n\n<!-- rooms:start -->\n```mermaid\nflowchart TD\n") and text.endswith("<!-- rooms:end -->\n\nafter\n")
    assert '    tooling -->|"' in text and '| core' in text
    doc.write_text("no markers")
    assert rooms.main(["--update"]) == 1 and "markers" in capsys.readouterr().err


def test_the_diagram_has_every_room_and_only_allowed_arrows():
    counts, arrows = rooms.room_graph(GRAPH)
    assert set(counts) == set(ROOMS) and sum(counts.values()) == len(GRAPH.modules)
    assert all(b in ALLOWED[a] for a, b in arrows)
    planted = rooms.diagram(build_graph({**BASE, "mnist_course/data.py": "from .tooling import site\n"}))
    assert '    core -->|"1 import 1"| tooling' in planted.splitlines()
    assert '    core["core (mnist_course): 5 modules"]' in planted.splitlines()


def test_dunder_names_are_not_private():
    assert not rooms.is_private("__version__") and not rooms.is_private("__getattr__")
    assert rooms.is_private("_env") and rooms.is_private("__mangled")
