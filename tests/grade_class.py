"""A class of 30 learners for the grader's tests, written from the course's own notebooks.

Every learner hands in every course notebook present in notebooks/, each exercise cell filled with
the reference solution (its source, renamed nothing), a mutant from tests/test_exercises.py (a
realistic wrong version whose check names its mistake), or left as the stub. Together they hold:

- every mistake the checks name: each of MUTANTS' wrong versions once, spread over 12 learners
  (``mistakes-01`` ...), at most one mutant per exercise per learner; an exercise whose reference
  uses a mutated function of the same notebook (``cross_entropy_grad`` uses ``softmax``) is left as
  the stub there, and a mutant that uses another exercise's reference (``S.softmax``) gets the
  learner's own, correct one;
- one fault each, in the first exercise of the first notebook, every other cell correct: an
  infinite loop, ``os.remove`` of an instructor's file, a bounded fork bomb, a 3.2 GB allocation,
  ``SystemExit``, ``os._exit``, ``KeyboardInterrupt``, 100 MB of output, reading another learner's
  notebook; answers that call the reference solutions or the library's own implementation;
  exercise cells deleted, renamed, reordered and retyped as markdown;
- a learner who changed nothing (every exercise not attempted), a perfect one, one who handed in
  a single notebook under their own name, learners at two depths (section-a/, section-b/).

``make_class(root, instructor_file)`` writes it and returns what the gradebook must say:
learner id -> {"grades": {id: status}, "words": {id: text in the message}, "flags": [text in a flag]}.

    python tests/grade_class.py OUT      # write a class into OUT (and OUT/expected.json) to grade by hand
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_exercises import MUTANTS as BASE_MUTANTS  # noqa: E402

from mnist_course.exercises import EXERCISES, check_calls  # noqa: E402
from mnist_course.exercises import solutions as S  # noqa: E402

MISTAKE_LEARNERS = 12


def all_mutants() -> dict[str, list]:
    """MUTANTS of tests/test_exercises.py, with those of tests/test_lesson_NN.py not in it yet."""
    mutants = dict(BASE_MUTANTS)
    for path in sorted(Path(__file__).resolve().parent.glob("test_lesson_*.py")):
        module = importlib.import_module(path.stem)
        for ex_id, rows in getattr(module, "MUTANTS", {}).items():
            mutants.setdefault(ex_id, rows)
    return mutants


MUTANTS = all_mutants()


def course_notebooks() -> list[Path]:
    """The course notebooks present, with at least one registered exercise."""
    return [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
            if any(i in EXERCISES for i, _ in check_calls(p))]


PRELUDE = {"np", "torch", "nn", "F", "math"}  # what the runner's namespace holds before the notebook's imports


def _free_names(src: str) -> list[str]:
    tree = ast.parse(src)
    bound = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return [n for n in dict.fromkeys(names) if n not in bound and not hasattr(builtins, n)]


def _needs(src: str, module, seen: set[str]) -> list[str]:
    """The statements that make `src` (from `module`) run on its own in a notebook cell: imports
    for the modules it names, the source of the module's functions and constants it uses."""
    out = []
    own = {ex.function for ex in EXERCISES.values()}  # another exercise's function: the learner's own
    for name in _free_names(src):
        if name in seen or name in PRELUDE or name == "S" or name in own or not hasattr(module, name):
            continue
        seen.add(name)
        value = getattr(module, name)
        if inspect.ismodule(value):
            out.append(f"import {value.__name__} as {name}\n")
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            helper = textwrap.dedent(inspect.getsource(value))
            out += [*_needs(helper, module, seen), helper]
        else:  # a module-level constant: its assignment, as written
            tree = ast.parse(inspect.getsource(module))
            node = next((n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign)) and name in
                         [t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                          if isinstance(t, ast.Name)]), None)
            if node is None:
                raise RuntimeError(f"{module.__name__}.{name} is neither a module, a function nor a constant")
            stmt = ast.get_source_segment(inspect.getsource(module), node) + "\n"
            out += [*_needs(stmt, module, seen), stmt]
    return out


def _inline_closure(fn, src: str) -> str:
    """A mutant made by a factory (a closure): its free variables written in as literals."""
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    if not cells:
        return src
    values = {k: c.cell_contents for k, c in cells.items()}

    class Inline(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id in values and isinstance(node.ctx, ast.Load):
                return ast.parse(repr(values[node.id]), mode="eval").body
            return node

    return ast.unparse(Inline().visit(ast.parse(src))) + "\n"


def _rewrite(src: str, name: str) -> tuple[str, list[str]]:
    """S.name (this exercise's reference) -> _right_name, S.x -> x (the learner's own x)."""
    extra = []
    if re.search(rf"\bS\.{name}\b", src):
        src = re.sub(rf"\bS\.{name}\b", f"_right_{name}", src)
        extra.append(_source(getattr(S, name), f"_right_{name}"))
    return re.sub(r"\bS\.(\w+)", r"\1", src), extra


def _source(fn, name: str) -> str:
    """A function's source, renamed `name`, with S.x (another exercise's reference) as plain x (the
    learner's own), S.name (its own exercise's reference) as a helper _right_name written beside it,
    a factory's variables as literals, preceded by what it needs from its test module (helpers,
    constants, module imports)."""
    src = _inline_closure(fn, textwrap.dedent(inspect.getsource(fn)))
    src = re.sub(rf"^def {fn.__name__}\(", f"def {name}(", src, count=1, flags=re.M)
    src, helpers = _rewrite(src, name)
    for helper in _needs(src, sys.modules[fn.__module__], {name, f"_right_{name}"}):
        helper, more = _rewrite(helper, name)
        helpers += [*more, helper]
    imports = [h for h in helpers if h.startswith("import ")]
    rest = [h for h in helpers if not h.startswith("import ")]
    return "".join(dict.fromkeys(imports)) + "\n\n".join([*dict.fromkeys(rest), src]).rstrip() + "\n"


def _reference(ex_id: str, name: str | None = None) -> str:
    ex = EXERCISES[ex_id]
    return _source(getattr(S, ex.function), name or ex.function)


def _uses(ex_id: str) -> set[str]:
    """The other exercises (same notebook) whose function the reference of ex_id calls."""
    nb = ex_id.split(".")[0]
    src = inspect.getsource(getattr(S, EXERCISES[ex_id].function))
    return {other for other, ex in EXERCISES.items() if other != ex_id and other.split(".")[0] == nb
            and re.search(rf"\b{ex.function}\(", src)}


def _mutant_uses(fn, ex_id: str) -> set[str]:
    """The other exercises (same notebook) whose correct function the mutant calls (S.x)."""
    nb = ex_id.split(".")[0]
    names = set(re.findall(r"\bS\.(\w+)", inspect.getsource(fn)))
    return {other for other, ex in EXERCISES.items()
            if other != ex_id and other.split(".")[0] == nb and ex.function in names}


def _replace_def(cell_source: str, name: str, new: str) -> str:
    """The cell with its top-level `def name` replaced by `new` (source of one or more statements)."""
    tree = ast.parse(cell_source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = cell_source.splitlines(keepends=True)
    return "".join(lines[: node.lineno - 1]) + new + "".join(lines[node.end_lineno:])


# ------------------------------------------------------------------------------ the faults


def _fault(kind: str, ex_id: str, instructor_file: Path, other_notebook: Path) -> tuple[str, str]:
    """(imports to put at the top of the cell, the def) for one fault in exercise ex_id: the
    function does the bad thing, then returns the right answer (so a grader without the limit
    would pass it)."""
    name = EXERCISES[ex_id].function
    args = ast.parse(inspect.getsource(getattr(S, name))).body[0].args
    params = ", ".join(a.arg for a in args.args)
    call = f"return _right_{name}({params})"
    body = {
        "loop": "while True:\n        pass",
        "remove": f"os.remove({str(instructor_file)!r})\n    {call}",
        "forkbomb": "for _ in range(30):  # bounded: 30 children that sleep 60 s\n"
                    "        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n    " + call,
        "alloc": f"big = np.ones(400_000_000)  # 3.2 GB\n    big[-1] = 2\n    {call}",
        "sysexit": "raise SystemExit(3)",
        "osexit": "os._exit(3)",
        "kbdint": "raise KeyboardInterrupt",
        "flood": f"if not getattr({name}, 'printed', False):\n        {name}.printed = True\n"
                 "        for _ in range(100):\n            print('x' * ((1 << 20) - 1))\n    " + call,
        "snoop": f"answer = open({str(other_notebook)!r}).read()\n    {call}",
        "solution": f"return _answer({params})",
        "library": f"return mc.numpy_nets.{name}({params})",
    }[kind]
    signature = ast.unparse(args)
    imports = {"remove": "import os\n", "forkbomb": "import os\nimport time\n", "osexit": "import os\n",
               "solution": f"from mnist_course.exercises.solutions import {name} as _answer\n",
               "library": "import mnist_course as mc\n"}.get(kind, "")
    helper = _reference(ex_id, f"_right_{name}") + "\n\n" if "_right_" in body else ""
    return imports, f"{helper}def {name}({signature}):\n    {body}\n"


FAULTS = {  # learner -> (fault, expected status, words in the message)
    "loop": ("loop", "timeout", "still running after"),
    "remove": ("remove", "error", "stopped by the sandbox: remove"),
    "forkbomb": ("forkbomb", "error", "starting a process"),
    "alloc": ("alloc", "error", "went over the memory limit"),
    "sysexit": ("sysexit", "error", "raised SystemExit(3)"),
    "osexit": ("osexit", "error", "ended with exit code 3"),
    "kbdint": ("kbdint", "error", "raised KeyboardInterrupt"),
    "flood": ("flood", "pass", "passed"),
    "snoop": ("snoop", "error", "stopped by the sandbox: reading"),
    "calls-solution": ("solution", "fail", "the course's reference solution"),
    "calls-library": ("library", "fail", "the library's own"),
}


# ------------------------------------------------------------------------------ the class


def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def _exercise_cells(nb) -> dict[str, int]:
    from mnist_course.exercises import cell_check_calls

    return {i: k for k, c in enumerate(nb.cells) if c.cell_type == "code" for i, _ in cell_check_calls(c.source)}


def _fill(nb, answers: dict[str, str]) -> None:
    """Replace the stub of each exercise cell: answers maps id -> "ref", "stub" or (imports, source)."""
    cells = _exercise_cells(nb)
    for ex_id, k in cells.items():
        answer = answers.get(ex_id, "ref")
        if answer == "stub":
            continue
        imports, src = ("", _reference(ex_id)) if answer == "ref" else answer
        nb.cells[k].source = imports + _replace_def(nb.cells[k].source, EXERCISES[ex_id].function, src)


def _plan_mistakes(ids: list[str], hosts: list[str], spare: list[tuple[str, set[str]]]) -> dict[str, dict]:
    """Every mutant of MUTANTS once: learner -> {id: (mutant, words) or "stub"}. The mistake learners
    (hosts) take them in turn; a mutant none of them can take (more mutants of one exercise, or of
    an exercise and the one using it, than hosts) goes to a spare learner (the fault learners), in a
    notebook the spare's own fault leaves alone."""
    plans: dict[str, dict] = {name: {} for name in [*hosts, *(n for n, _ in spare)]}
    blocked = {name: notebooks for name, notebooks in spare}
    turn = 0  # where the search starts among the hosts: spread the mutants over them
    for ex_id in ids:
        dependents = {o for o in ids if ex_id in _uses(o)}  # their references call ex_id's function: stubs
        for mutant, words in MUTANTS.get(ex_id, []):
            needs = _mutant_uses(mutant, ex_id)  # exercises whose correct function the mutant calls
            order = hosts[turn % len(hosts):] + hosts[: turn % len(hosts)] + [n for n, _ in spare]
            for name in order:
                plan = plans[name]
                mutated = {o: v for o, v in plan.items() if isinstance(v, tuple)}
                needed = {n for o, v in mutated.items() for n in _mutant_uses(v[0], o)}
                if ex_id in plan or needs & set(plan) or dependents & (set(mutated) | needed) or ex_id in needed \
                        or ex_id.split(".")[0] in blocked.get(name, ()):
                    continue
                plan[ex_id] = (mutant, words)
                plan.update({o: "stub" for o in dependents})
                turn += 1
                break
            else:
                raise RuntimeError(f"no learner left for the mutant {mutant.__name__} of {ex_id}")
    return plans


def make_class(root: Path, instructor_file: Path) -> dict[str, dict]:
    """Write the class under root (see the module's docstring); what the gradebook must say."""
    notebooks = course_notebooks()
    by_id = {i: nb for nb in notebooks for i, _ in check_calls(nb)}
    ids = [i for i in EXERCISES if i in by_id]
    first = ids[0]
    n1 = [i for i in ids if i.split(".")[0] == first.split(".")[0]]
    edits = ["deleted-cell", "renamed-cell", "reordered-cells", "retyped-cell"]
    hosts = [f"mistakes-{k:02d}" for k in range(1, MISTAKE_LEARNERS + 1)]
    spare_notebooks = {first.split(".")[0], "02"}
    plans = _plan_mistakes(ids, hosts, [(name, spare_notebooks) for name in [*FAULTS, *edits]])
    expected: dict[str, dict] = {}

    def learner(name: str, folder: str, answers: dict, grades: dict, words: dict, flags=(), edit=None):
        plan = plans.get(name, {})  # the mutants a learner hosts, beside their own fault
        answers = {**{i: ("", _source(v[0], EXERCISES[i].function)) if isinstance(v, tuple) else v
                      for i, v in plan.items()}, **answers}
        grades = {**{i: "fail" if isinstance(v, tuple) else "missing" for i, v in plan.items()}, **grades}
        words = {**{i: [v[1]] for i, v in plan.items() if isinstance(v, tuple)}, **words}
        for path in notebooks:
            nb = nbformat.read(str(path), as_version=4)
            _fill(nb, answers)
            if edit:
                edit(path, nb)
            _write(nb, root / folder / name / path.name)
        expected[name] = {"grades": {i: grades.get(i, "pass") for i in ids}, "words": words, "flags": list(flags)}

    # the learner whose notebook the snoop reads, and the perfect one
    learner("perfect", "section-b", {}, {}, {})
    for name, (kind, status, words) in FAULTS.items():
        ex_id = "02.1" if kind == "library" else first
        fault = _fault(kind, ex_id, instructor_file, root / "section-b" / "perfect" / by_id[first].name)
        flags = {"flood": ["printed 10"], "solution": ["mnist_course.exercises.solutions"],
                 "library": ["02.1 softmax calls mnist_course.numpy_nets.softmax",
                             "02.3 calls mnist_course.numpy_nets.softmax, the library's own softmax"]}.get(kind, [])
        learner(name, "section-a", {ex_id: fault}, {ex_id: status}, {ex_id: [words]}, flags)

    def delete(path, nb):
        if path == by_id[n1[1]]:
            nb.cells.pop(_exercise_cells(nb)[n1[1]])

    def rename(path, nb):
        if path == by_id[first]:
            k = _exercise_cells(nb)[first]
            fn = EXERCISES[first].function
            nb.cells[k].source = re.sub(rf"\b{fn}\b", f"my_{fn}", nb.cells[k].source)

    def reorder(path, nb):
        if path == by_id[first]:
            cells = _exercise_cells(nb)
            a, b = cells[n1[0]], cells[n1[1]]
            nb.cells[a], nb.cells[b] = nb.cells[b], nb.cells[a]

    def retype(path, nb):
        if path == by_id[first]:
            k = _exercise_cells(nb)[n1[-1]]
            nb.cells[k] = nbformat.v4.new_markdown_cell(nb.cells[k].source)

    learner("deleted-cell", "section-a", {}, {n1[1]: "missing"}, {n1[1]: ["its cell was deleted"]},
            [f"{n1[1]} deleted"], delete)
    learner("renamed-cell", "section-a", {}, {}, {}, [f"{first} is checked on `my_"], rename)
    learner("reordered-cells", "section-a", {}, {}, {}, ["exercise cells reordered"], reorder)
    learner("retyped-cell", "section-a", {}, {n1[-1]: "missing"}, {n1[-1]: ["retyped"]}, [f"{n1[-1]} retyped"], retype)
    learner("untouched", "section-b", {i: "stub" for i in ids}, {i: "missing" for i in ids},
            {i: ["not attempted yet"] for i in ids})
    for k, name in enumerate(hosts, 1):
        learner(name, "section-b" if k % 2 else "section-a", {}, {}, {})
    # one notebook handed in alone, named after its author
    single = by_id[ids[-1]]
    nb = nbformat.read(str(single), as_version=4)
    _fill(nb, {})
    _write(nb, root / "dana.ipynb")
    mine = {i for i, _ in check_calls(single)}
    expected["dana"] = {"grades": {i: "pass" if i in mine else "missing" for i in ids}, "words": {}, "flags": []}
    return expected


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/grade_class.py OUT")
    out = Path(sys.argv[1])
    instructor = out / "instructor" / "grades-2025.csv"
    instructor.parent.mkdir(parents=True, exist_ok=True)
    instructor.write_text("learner,grade\nalice,A\n")
    expected = make_class(out / "submissions", instructor)
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    print(f"{len(expected)} learners in {out / 'submissions'}; expected grades in {out / 'expected.json'}")
