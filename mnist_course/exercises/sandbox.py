"""The runner behind ``mnist-course status`` and ``mnist-course grade``: a saved notebook's checks,
run in a process of their own, with limits, away from the caller's files.

What runs. Not the notebook: a learner's kernel here executes what the check of an exercise needs
and nothing else. For each notebook (:func:`plan_notebook`): every top-level ``import`` of its code
cells, then, cell by cell, the top-level statements of each cell that calls ``check("NN.k", name)``
(the learner's function, helpers and constants; each statement on its own, one that fails does not
stop the next; not the ``check`` calls; ``SOLVE`` is False) and then that check, in the notebook's
order (a later exercise may use an earlier one's function). No data loading, no training: the
verdicts do not depend on the lesson cells above, and the notebook's own ``check`` line, which runs
only the function, prints the same verdict. The exercise must be checked on a function written in
the notebook: one imported from ``mnist_course`` (the reference) fails.

Where it runs (:func:`run_notebook`). A child process forked from the caller, which has already
imported the checks and run every reference once (:func:`warm_up`), so a child starts in
milliseconds. The child:

- starts its own session (killed as a group: nothing it starts outlives it) and dies with its parent;
- works in a temporary copy of the learner's notebooks and ``.py`` files, with a private ``HOME``,
  ``TMPDIR`` and caches; it never sees the submission itself;
- gets ``resource.setrlimit`` limits: address space (``memory_mb`` over what the runner maps
  already), CPU seconds, file size, open files, tasks, no core dumps;
- when started as root, drops to the user ``nobody`` (the limit on tasks does not bind root);
- on Linux 5.13+, is confined with Landlock: it may read the Python installation, the system
  libraries and its own copy, write only its copy, and (kernel ABI 4+) open no TCP connection
  (ABI 6+: signal no process outside);
- runs the learner's code under an audit hook (``sys.addaudithook``) that refuses, with a message
  saying so, starting processes (``os.fork``, ``subprocess``, ``os.system``...), signals to
  other processes, sockets, ``ctypes`` libraries, and opening, removing or renaming files outside
  the allowed folders. Where Landlock is missing the hook is what keeps the files safe (Python-level
  only: C code can get past it; use ``mnist-course grade --container`` for a hard boundary);
- while a check runs, profiles the calls the learner's code makes: calling the reference solutions
  (``mnist_course.exercises``) or the library's own implementation of an exercise
  (``mnist_course.numpy_nets.softmax`` for ``softmax``) fails the exercise with a message naming
  it; other calls into ``mnist_course`` are flagged.

The parent reads the child's verdicts (one JSON line per step) and its output (the first
``output_kb`` kept, the rest counted), and kills the group after ``timeout`` seconds. A step that
ends the child (``os._exit``, a signal, the time limit) is charged to its exercise (error or
timeout) and the rest of the notebook runs again in a fresh child.

Elsewhere: macOS forks the same way but has no Landlock (the audit hook only) and does not enforce
the address-space limit; Windows has no fork: the checks run in the calling process, without
limits (status says so; ``grade`` needs ``--container`` there).

Statuses (the gradebook's words): ``pass``, ``fail`` (the check names the mistake), ``error``
(the code could not be judged: it raised SystemExit or KeyboardInterrupt, ended the process, went
over a limit or did something the sandbox refused), ``timeout`` and ``missing`` (not attempted,
or the exercise's cell is gone).

API: :func:`find_notebooks`, :func:`plan_notebook`, :func:`run_notebook`, :func:`run_learner`,
:func:`warm_up`, :class:`Limits`, :func:`sandbox_info`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .core import EXERCISES, check, exercises_of, reference

STATUSES = ("pass", "fail", "error", "timeout", "missing")
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # mnist_course/
COURSE_NAME = re.compile(r"^(\d\d)_.*\.ipynb$")
LEARNER_FILE = "<learner "  # the code the learner wrote is compiled with a file name starting so
NOBODY = 65534
_ENV_KEPT = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "MPLBACKEND", "PYTHONHASHSEED", "PYTHONIOENCODING"}
MAX_NOTEBOOK_MB = 50  # a bigger notebook is not graded (its outputs are not needed)
COPIED = (".ipynb", ".py")  # what the temporary copy holds of a learner's folder


@dataclass
class Limits:
    """What one notebook's child may use: wall seconds per run (a run that ends early is continued
    in a fresh child), address space beyond what the runner maps already, the largest file it may
    write, and how much of its output (stdout and stderr together) is kept."""

    timeout: float = 60.0
    memory_mb: int = 2048
    file_mb: int = 64
    output_kb: int = 64


@dataclass
class Outcome:
    """One exercise's verdict: status is one of STATUSES; flags are integrity notes."""

    exercise: str
    function: str
    status: str
    message: str
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)

    def line(self) -> str:
        mark = {"pass": "✓", "fail": "✗", "error": "!", "timeout": "⏱", "missing": "○"}[self.status]
        return f"{mark} {self.exercise} {self.function}: {self.message}"


@dataclass
class NotebookRun:
    """What running one notebook's checks gave: its exercises' outcomes in the notebook's order,
    its flags (deleted, renamed, reordered or moved exercise cells...), the first output_kb of what
    it printed and how many bytes it printed, the wall seconds and how many child processes it took."""

    file: str
    notebook: str | None
    outcomes: list[Outcome]
    flags: list[str]
    notes: list[str]
    output: str = ""
    output_bytes: int = 0
    seconds: float = 0.0
    processes: int = 0
    error: str = ""  # the notebook could not be read (then outcomes is empty)
    sandbox: dict = field(default_factory=dict)  # how its first child was confined: user, limits, landlock

    def to_json(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------ finding notebooks


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)


def find_notebooks(path: str | Path) -> list[Path]:
    """A notebook itself, or every notebook below a folder, at any depth, sorted; hidden folders
    (``.ipynb_checkpoints``, ``.git``) and ``__pycache__`` are skipped."""
    return [p for p in _files(Path(path)) if p.suffix == ".ipynb"]


def _files(root: Path) -> list[Path]:
    """Every regular file below root (root itself if it is one), sorted; links are not followed
    (a link to / in a submission would walk the whole disk), hidden folders and __pycache__ skipped."""
    if root.is_file():
        return [root]
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [Path(folder) / f for f in files if not f.startswith(".") and not os.path.islink(os.path.join(folder, f))]
    return sorted(found)


# ------------------------------------------------------------------------------ what a notebook runs


@dataclass
class Step:
    """One thing a child does: "imports" (every top-level import of the notebook), "cell" (an
    exercise cell's top-level statements but its check calls: nodes are their indexes in the cell)
    or "check" (one exercise)."""

    kind: str
    cell: int = -1
    nodes: list[int] = field(default_factory=list)
    exercise: str = ""
    function: str = ""


@dataclass
class Plan:
    """A notebook read and judged without running it: its code cells, the steps a child runs, the
    exercises it should hold (from its number NN and the registry), those missing with the reason,
    and the flags and per-exercise static notes of the integrity checks."""

    file: str
    notebook: str | None
    cells: list[str]
    steps: list[Step]
    expected: list[str]
    missing: dict[str, str]
    flags: list[str]
    static: dict[str, list[str]]
    imports: list[tuple[int, int]]  # (cell, node) of every top-level import


_CHECK_TEXT = re.compile(r"""check\(\s*["'](\d\d\.\d+)["']""")


def parse_cell(source: str) -> ast.Module | None:
    """One code cell's source parsed, with its IPython magics and shell lines (% and !) turned
    into `pass`; None for a cell that does not parse."""
    lines = [("pass  # " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def calls_in(tree: ast.AST) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a parsed cell, in order."""
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) >= 2
                and (getattr(node.func, "id", None) == "check" or getattr(node.func, "attr", None) == "check")
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and isinstance(node.args[1], ast.Name)):
            calls.append((node.args[0].value, node.args[1].id))
    return calls


def cell_check_calls(source: str) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in one code cell's source
    (IPython magics are skipped; a cell that does not parse has none)."""
    tree = parse_cell(source)
    return calls_in(tree) if tree is not None else []


def check_calls(path: str | Path) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a saved notebook, in order."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return [call for c in nb.cells if c.cell_type == "code" for call in cell_check_calls(c.source)]


def _library_names(trees: list[ast.Module]) -> dict[str, str]:
    """Names the notebook's top-level imports bind to the course's package: name -> what it is."""
    bound = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "mnist_course":
                        bound[(a.asname or a.name).split(".")[0]] = a.name if a.asname else "mnist_course"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mnist_course" \
                    and not node.level:
                for a in node.names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


_SUSPECT = {"reference": "the reference solutions", "solution": "the reference solutions",
            "solutions": "the reference solutions", "EXERCISES": "the exercise registry",
            "check": "the checks", "mnist_course": "the course's library"}


def _static_notes(fn: ast.AST, bound: dict[str, str]) -> list[str]:
    """What in a learner's function refers to the course's package (read, not run)."""
    local = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)} if hasattr(fn, "args") else set()
    seen = []
    for node in ast.walk(fn):
        name = None
        if isinstance(node, ast.Name) and node.id not in local:
            name = node.id
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] == "mnist_course" for m in mods):
                seen.append(f"imports {mods[0]} inside the function")
            continue
        if name in bound:
            seen.append(f"uses {name} ({bound[name]})")
        elif name in _SUSPECT and name not in bound and name != "check":
            seen.append(f"uses {name} ({_SUSPECT[name]})")
    return sorted(set(seen))


def notebook_number(path: Path, ids: list[str]) -> str | None:
    """The course notebook a file is: NN from its name "NN_..."; else the notebook most of its
    checked exercise ids belong to; else None."""
    m = COURSE_NAME.match(path.name)
    if m:
        return m.group(1)
    numbers = [i.split(".")[0] for i in ids if i in EXERCISES]
    return max(set(numbers), key=numbers.count) if numbers else None


def plan_notebook(path: str | Path, name: str | None = None) -> Plan:
    """Read a saved notebook (nbformat) and decide what its child runs; judge its exercise cells
    against the registry: missing (deleted, or retyped as markdown or raw), renamed (checked on
    another function name), reordered, moved from another notebook, checked twice, unknown ids,
    and what each exercise's function refers to in the course's package. Nothing is read from
    cell metadata: an exercise is its ``check("NN.k", name)`` call."""
    import nbformat

    path = Path(path)
    name = name or path.name
    nb = nbformat.read(str(path), as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    text_cells = [c.source for c in nb.cells if c.cell_type != "code"]
    trees = [parse_cell(s) for s in cells]
    calls = [(i, ex_id, fn) for i, t in enumerate(trees) if t is not None for ex_id, fn in calls_in(t)]
    number = notebook_number(path, [c[1] for c in calls])
    expected = [ex.id for ex in exercises_of(number)] if number else []
    flags, static = [], {}
    bound = _library_names([t for t in trees if t is not None])

    last = {}  # id -> (cell, name) of its last check call: the one that counts, as in a kernel
    for cell, ex_id, fn in calls:
        if ex_id not in EXERCISES:
            flags.append(f"check({ex_id!r}, {fn}) names no exercise of the course")
            continue
        if ex_id in last:
            flags.append(f"{ex_id} is checked more than once; the last check counts")
        last[ex_id] = (cell, fn)
    for ex_id, (_cell, fn) in last.items():
        want = EXERCISES[ex_id].function
        if fn != want:
            flags.append(f"{ex_id} is checked on `{fn}`, not `{want}`: its cell was changed (renamed)")
        if number and ex_id.split(".")[0] != number:
            flags.append(f"{ex_id} belongs to notebook {ex_id.split('.')[0]} but is checked here (moved)")
    order = [i for i in dict.fromkeys(ex_id for _, ex_id, _ in calls) if i in expected]
    if order != [i for i in expected if i in order]:
        flags.append(f"exercise cells reordered: {', '.join(order)} (the course has {', '.join(expected)})")
    missing = {}
    for ex_id in expected:
        if ex_id in last:
            continue
        retyped = any(ex_id in _CHECK_TEXT.findall(s) for s in text_cells)
        missing[ex_id] = ("its cell is a markdown or raw cell now (retyped): make it a code cell again"
                          if retyped else f"no check({ex_id!r}, ...) in {name}: its cell was deleted")
        flags.append(f"{ex_id} " + ("retyped: its cell is not a code cell" if retyped else "deleted: no exercise cell"))

    steps = [Step("imports")]
    imports = [(i, j) for i, t in enumerate(trees) if t is not None
               for j, node in enumerate(t.body) if isinstance(node, (ast.Import, ast.ImportFrom))]
    own = {node.name for i, t in enumerate(trees) if t is not None and any(c == i for c, _, _ in calls)
           for node in t.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    bound = {k: v for k, v in bound.items() if k not in own}  # the learner's own softmax is no import
    for i, t in enumerate(trees):
        here = [(ex_id, fn) for c, ex_id, fn in calls if c == i and last.get(ex_id) == (c, fn)]
        if t is None or not any(c == i for c, _, _ in calls):
            continue
        defs = [j for j, node in enumerate(t.body)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        steps.append(Step("cell", i, [j for j, node in enumerate(t.body) if not calls_in(node)]))
        for ex_id, fn in here:
            steps.append(Step("check", i, exercise=ex_id, function=fn))
            node = next((t.body[j] for j in reversed(defs) if t.body[j].name == fn), None)
            if node is None:  # defined in an earlier exercise cell
                node = next((tt.body[j] for s in steps if s.kind == "cell" for tt in [trees[s.cell]]
                             for j in s.nodes if getattr(tt.body[j], "name", None) == fn), None)
            notes = _static_notes(node, bound) if node is not None else []
            if notes:
                static[ex_id] = notes
                flags.append(f"{ex_id} {fn}: " + "; ".join(notes))
    return Plan(name, number, cells, steps, expected, missing, flags, static, imports)


# ------------------------------------------------------------------------------ the child's confinement


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


_LANDLOCK_ABI: int | None = None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none, or not Linux)."""
    global _LANDLOCK_ABI
    if _LANDLOCK_ABI is None:
        _LANDLOCK_ABI = 0
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = _libc()
                libc.syscall.restype = ctypes.c_long
                _LANDLOCK_ABI = max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))
            except (OSError, AttributeError):
                _LANDLOCK_ABI = 0
    return _LANDLOCK_ABI


def read_roots(proc: bool = False) -> list[Path]:
    """What confined code may read besides its own folder: the Python installation and packages,
    the course's package, the system's libraries and configuration, a few /proc (all of it with
    proc: a process whose children need their own /proc/self), /sys and /dev entries. Not /home,
    /root, /tmp, /work or wherever the instructor's files are."""
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(PACKAGE_DIR),
             *(sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib"))}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site.py
        pass
    roots.update(["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc/self", "/proc/cpuinfo",
                  "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null",
                  "/dev/zero", "/dev/urandom", "/dev/random", *(["/proc"] if proc else [])])
    return sorted({Path(r) for r in roots if r and os.path.exists(r)})


def landlock(read: list[Path], write: list[Path]) -> int:
    """Confine this process (and its children) with Landlock: read-only beneath `read`, read and write
    beneath `write`, no TCP (ABI 4+), no signals outside (ABI 6+). Returns the ABI used (0: none)."""
    import ctypes

    abi = landlock_abi()
    if abi < 1:
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    fs_all = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
    if abi >= 2:
        fs_all |= 1 << 13  # REFER
    if abi >= 3:
        fs_all |= 1 << 14  # TRUNCATE
    if abi >= 5:
        fs_all |= 1 << 15  # IOCTL_DEV
    file_rights = (1 | 2 | 4) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    read_rights = 1 | 4 | 8  # EXECUTE, READ_FILE, READ_DIR

    class Ruleset(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    attr = Ruleset(fs_all, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for paths, rights in ((read, read_rights), (write, fs_all)):
            for p in paths:
                try:
                    fd = os.open(p, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                allowed = rights & file_rights if not os.path.isdir(p) else rights
                rule = PathBeneath(allowed, fd)
                done = libc.syscall(445, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
                os.close(fd)
                if done < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {p}")
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


class Guard:
    """The audit hook's state in a child: armed while the learner's code may run; what it refused."""

    def __init__(self, read: list[Path], write: list[Path], files: bool = True):
        self.read = [str(p) for p in read]
        self.write = [str(p) for p in write]
        self.files = files  # check paths (always: Landlock is the second layer where present)
        self.armed = False
        self.violations: list[str] = []

    def _inside(self, path, roots) -> bool:
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return True  # a file descriptor or something that is no path
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)

    def refuse(self, what: str):
        self.violations.append(what)
        raise PermissionError(f"the grader's sandbox refused this: {what}")

    _PROCESS = {"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile",
                "subprocess.Popen", "pty.spawn", "os.fork_exec"}
    _NET = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
            "socket.gethostbyname", "socket.gethostbyaddr"}
    _WRITES = {"os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.mkdir", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
               "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr"}

    def __call__(self, event: str, args: tuple):
        if not self.armed:
            return
        if event in self._PROCESS:
            self.refuse(f"starting a process ({event})")
        elif event in self._NET:
            self.refuse(f"network access ({event})")
        elif event in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle"):
            self.refuse(f"loading C code with ctypes ({event})")
        elif event in ("os.kill", "os.killpg", "signal.pthread_kill") and args and args[0] not in (0, os.getpid()):
            self.refuse(f"signalling another process ({event} {args[0]})")
        elif not self.files:
            return
        elif event == "open" and args and not isinstance(args[0], int):
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writes = (mode and any(c in str(mode) for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            if writes and not self._inside(path, self.write):
                self.refuse(f"writing {os.fsdecode(path)} (outside its own folder)")
            if not self._inside(path, self.read + self.write):
                self.refuse(f"reading {os.fsdecode(path)} (outside its own folder)")
        elif event in self._WRITES:
            for p in [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]:
                if not self._inside(p, self.write):
                    self.refuse(f"{event.split('.')[-1]} {os.fsdecode(p)} (outside its own folder)")
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            if not self._inside(args[0], self.read + self.write):
                self.refuse(f"listing {os.fsdecode(args[0])} (outside its own folder)")


def _tasks_of(uid: int) -> int:
    """How many tasks (threads) the user runs now (for RLIMIT_NPROC, which counts them all)."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                text = Path(f"/proc/{d}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if int(fields.get("Uid", "-1").split()[0]) == uid:
                n += int(fields.get("Threads", "1"))
    return n


def _world_readable(path: Path) -> bool:
    """Whether every folder up to `path` lets others in and the path itself lets others read."""
    import stat

    p = path.resolve()
    try:
        for parent in [p, *p.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH or (parent == p and not mode & stat.S_IROTH):
                return False
    except OSError:
        return False
    return True


def _can_drop() -> bool:
    """Whether this process is root and the Python installation and the course are readable by nobody."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and \
        all(_world_readable(Path(p)) for p in (sys.prefix, sys.base_prefix, PACKAGE_DIR))


def _drop_to_nobody() -> bool:
    """As root, become the user nobody when the Python installation and the course are readable
    by it; returns whether it did."""
    if not _can_drop():
        return False
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def _set_limits(limits: Limits, uid: int) -> None:
    import resource

    def set_limit(which, value):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))

    cpu = int(limits.timeout) + 5
    set_limit(resource.RLIMIT_CPU, cpu)
    set_limit(resource.RLIMIT_FSIZE, limits.file_mb << 20)
    set_limit(resource.RLIMIT_CORE, 0)
    set_limit(resource.RLIMIT_NOFILE, 256)
    if Path("/proc/self/statm").exists():  # address space: what is mapped now, plus the budget
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        set_limit(resource.RLIMIT_AS, mapped + (limits.memory_mb << 20))
    if hasattr(resource, "RLIMIT_NPROC") and Path("/proc").is_dir():
        set_limit(resource.RLIMIT_NPROC, _tasks_of(uid) + 16)  # threads, not processes: forks are refused


# ------------------------------------------------------------------------------ the child


class _Watch:
    """The attributes of the modules and classes the checks rely on (NumPy, PyTorch, math, builtins,
    the course's package), as they were before the learner's code ran: what a step rebinds or
    deletes is put back and reported (``np.allclose = lambda *a, **k: True`` would pass every check).
    Added attributes (a submodule imported) are fine."""

    NAMES = ("numpy", "numpy.testing", "math", "builtins", "torch", "torch.nn.functional", "torch.testing")

    def __init__(self):
        import torch

        owners = {name: mod for name, mod in list(sys.modules.items())
                  if mod is not None and (name in self.NAMES or name.startswith("mnist_course"))}
        owners.update({"torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module})
        self.saved = [(name, owner, dict(vars(owner))) for name, owner in owners.items()]

    def changed(self) -> list[str]:
        """What was rebound or deleted since the start (now put back); empty when nothing was."""
        found = []
        for name, owner, before in self.saved:
            now = vars(owner)
            for key, value in before.items():
                if now.get(key, _MISSING) is not value and not (key.startswith("__") and key != "__import__"):
                    found.append(f"{name}.{key}")
                    try:
                        setattr(owner, key, value)
                    except (AttributeError, TypeError):
                        pass
            if isinstance(owner, type):  # on a class, a new attribute hides the base class's: Tensor.allclose
                for key in [k for k in now if k not in before]:
                    found.append(f"{name}.{key}")
                    try:
                        delattr(owner, key)
                    except (AttributeError, TypeError):
                        pass
        return found


_MISSING = object()


class _Profiler:
    """Calls from the learner's code into the course's package, while a check runs."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.package = str(PACKAGE_DIR) + os.sep
        self.calls: list[tuple[str, str]] = []  # (module, function)

    def __call__(self, frame, event, arg):
        if event == "call":
            try:
                self._call(frame)
            except BaseException:  # noqa: BLE001, S110 (a profiler that raises is switched off: never)
                pass

    def _call(self, frame):
        code = frame.f_code
        if not code.co_filename.startswith(self.package):
            return
        back = frame.f_back
        if back is None:
            return
        caller = back.f_code.co_filename
        if caller.startswith(LEARNER_FILE) or caller.startswith(self.workdir):
            module = frame.f_globals.get("__name__", "?")
            self.calls.append((module, getattr(code, "co_qualname", code.co_name)))


def _judge_calls(calls: list[tuple[str, str]], exercise_id: str) -> tuple[str | None, list[str]]:
    """What the learner's calls into the course's package mean. Calling the reference solutions
    (mnist_course.exercises.solutions, or reference() / solution()) or the library's own function
    of this very exercise (numpy_nets.softmax for softmax) fails the exercise: the message; calling
    the library's function of another exercise (its softmax inside cross_entropy_grad) is flagged.
    Anything else (the methods of objects a check hands over, the library's helpers) is fine."""
    own = EXERCISES[exercise_id].function
    names = {ex.function for ex in EXERCISES.values()}
    fail, flags = None, []
    for module, fn in dict.fromkeys(calls):
        where, short = f"{module}.{fn}", fn.split(".")[-1]
        if module == "mnist_course.exercises.solutions" or (
                module == "mnist_course.exercises.core" and short in ("reference", "solution")):
            fail = fail or (f"your function calls {where}, the course's reference solution, instead of "
                            "computing the answer itself: write it yourself.")
        elif module.startswith("mnist_course.exercises"):
            continue  # a check's own objects (a fake device, a model it built)
        elif short == own:
            fail = fail or (f"your function calls {where}, the library's own {short}, instead of "
                            "computing the answer itself: the exercise is to write it.")
        elif short in names:
            flags.append(f"{exercise_id} calls {where}, the library's own {short}")
    return fail, flags


def _emit(fd: int, obj: dict) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _binds(node: ast.stmt) -> list[str]:
    """The names a top-level statement binds: def, class, import, or a plain assignment's targets."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return [n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)]


def _exec_nodes(tree: ast.Module, nodes: list[int], filename: str, namespace: dict) -> dict[str, object]:
    """Execute some top-level statements of a parsed cell, each on its own (one that raises does not
    stop the next); name -> True or the error its statement raised ("line N: ..." under "" for a
    statement that binds no name)."""
    done: dict[str, object] = {}
    for j in nodes:
        node = tree.body[j]
        try:
            exec(compile(ast.Module([node], []), filename, "exec"), namespace)  # noqa: S102 (the sandbox)
            value = True
        except BaseException as e:  # noqa: BLE001 (SystemExit and KeyboardInterrupt are the learner's)
            value = f"{type(e).__name__}: {e}"
        for name in _binds(node) or [""]:
            if name or value is not True:
                done[name or f"line {node.lineno}"] = value
    return done


def _child_steps(plan: Plan, start: int, skip: set[int], emit, workdir: str, guard: Guard, limits: Limits):
    """Run the plan's steps from `start` (the imports and defs of earlier steps first, silently),
    reporting each step's begin and end with emit(dict)."""
    import numpy as np
    import torch

    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "SOLVE": False}
    namespace.update({"np": np, "numpy": np, "torch": torch, "nn": torch.nn, "F": torch.nn.functional})
    import math

    namespace["math"] = math
    trees = {}
    defined: dict[str, object] = {}
    watch = _Watch()

    def tree(i):
        if i not in trees:
            trees[i] = parse_cell(plan.cells[i])
        return trees[i]

    for k, step in enumerate(plan.steps):
        if k in skip or (k < start and step.kind == "check"):
            continue
        report = k >= start
        if report:
            emit({"step": k, "event": "begin"})
        guard.violations.clear()
        t0 = time.perf_counter()
        if step.kind == "imports":
            guard.armed = True
            failed = []
            for cell, j in plan.imports:
                result = _exec_nodes(tree(cell), [j], f"{LEARNER_FILE}{plan.file} cell {cell}>", namespace)
                failed += [f"{n}: {v}" for n, v in result.items() if v is not True]
            guard.armed = False
            if not report:
                watch.changed()
            else:
                emit({"step": k, "event": "end", "notes": [f"import failed: {f}" for f in failed][:10],
                      "violations": guard.violations[:5], "tampered": watch.changed()[:5]})
        elif step.kind == "cell":
            guard.armed = True
            done = _exec_nodes(tree(step.cell), step.nodes, f"{LEARNER_FILE}{plan.file} cell {step.cell}>", namespace)
            guard.armed = False
            defined.update(done)
            if report:
                failed = [f"code cell {step.cell}, {n if n.startswith('line') else '`' + n + '`'}: {v}"
                          for n, v in done.items() if v is not True]
                emit({"step": k, "event": "end", "violations": guard.violations[:5], "notes": failed[:10],
                      "tampered": watch.changed()[:5]})
            else:
                watch.changed()
        else:
            outcome = _child_check(step, namespace, defined, guard, workdir, limits)
            outcome.seconds = round(time.perf_counter() - t0, 4)
            tampered = watch.changed()
            if tampered:
                outcome.status = "fail"
                outcome.message = (f"your code replaced {', '.join(tampered[:3])} while it was checked, so the check "
                                   "cannot be trusted (put back now): do not change NumPy, PyTorch or the course's code.")
                outcome.flags.append(f"{step.exercise} {step.function} replaced {', '.join(tampered[:3])}")
            emit({"step": k, "event": "end", "outcome": asdict(outcome)})


def _child_check(step: Step, namespace: dict, defined: dict, guard: Guard, workdir: str, limits: Limits) -> Outcome:
    import inspect

    ex_id, fn_name = step.exercise, step.function
    if fn_name not in namespace or defined.get(fn_name, True) is not True:
        why = defined.get(fn_name) or f"no top-level `def {fn_name}` found in the notebook"
        return Outcome(ex_id, fn_name, "fail", f"could not run it: {why}.")
    fn = namespace[fn_name]
    try:
        code = getattr(inspect.unwrap(fn), "__code__", None)
    except ValueError:  # a cycle of __wrapped__
        code = None
    mine = code is not None and (code.co_filename.startswith(LEARNER_FILE) or code.co_filename.startswith(workdir))
    origin = getattr(fn, "__module__", None) or type(fn).__module__
    if not mine and callable(fn) and str(origin).startswith("mnist_course"):
        what = f"{origin}.{getattr(fn, '__qualname__', fn_name)}"
        return Outcome(ex_id, fn_name, "fail", f"`{fn_name}` is {what}, the course's own code, not a function written "
                       f"in the notebook: write `def {fn_name}` yourself.", flags=[f"{ex_id} {fn_name} is {what}"])
    profiler = _Profiler(workdir)
    guard.armed = True
    sys.setprofile(profiler)
    try:
        result = check(ex_id, namespace[fn_name], quiet=True)
        status = {"passed": "pass", "failed": "fail", "not attempted": "missing"}[result.status]
        message = result.message
    except BaseException as e:  # noqa: BLE001 (SystemExit, KeyboardInterrupt... raised by the learner's code)
        status, message = "error", f"your function raised {type(e).__name__}" + (f"({e})" if str(e) else "") + \
            " out of the check: it stops a notebook; return a value instead."
    finally:
        tampered = sys.getprofile() is not profiler
        sys.setprofile(None)
        guard.armed = False
    fail, flags = _judge_calls(profiler.calls, ex_id)
    if guard.violations:
        status, message = "error", "stopped by the sandbox: " + "; ".join(dict.fromkeys(guard.violations[:3])) + \
            " (exercise code may only use its own folder: no processes, no network)."
    elif "raised MemoryError" in message:
        status, message = "error", f"went over the memory limit ({limits.memory_mb} MB): {message}"
    elif tampered:
        status, message = "fail", "your function turned off the grader's profiler (sys.setprofile): not graded."
    elif fail and status == "pass":
        status, message = "fail", fail
    if fail:
        flags.insert(0, f"{ex_id} {fail.split(',')[0].replace('your function', fn_name)}")
    if not mine and callable(fn):
        flags.append(f"{ex_id} {fn_name} is {origin}.{getattr(fn, '__qualname__', '?')}, not written in the notebook")
    return Outcome(ex_id, fn_name, status, message, flags=flags)


def _child(plan: Plan, start: int, skip: set[int], res_w: int, out_w: int, workdir: Path, limits: Limits,
           confine: bool) -> None:
    """The forked child: its own session, confined, then the plan's steps. Never returns."""
    code = 0
    try:
        os.setsid()
        if sys.platform.startswith("linux"):
            _libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the parent
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        keep = sorted({res_w})
        os.closerange(3, keep[0])
        os.closerange(keep[-1] + 1, 1 << 16)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
        home = workdir / "home"
        for sub in ("home", "tmp", "home/.cache", "home/.config"):
            (workdir / sub).mkdir(exist_ok=True)
        kept = {k: v for k, v in os.environ.items() if k in _ENV_KEPT or k.startswith(("LC_", "MNIST_COURSE_"))}
        os.environ.clear()  # the instructor's environment (tokens, paths) is not the learner's business
        os.environ.update(kept, HOME=str(home), TMPDIR=str(workdir / "tmp"), MPLCONFIGDIR=str(home / ".config"),
                          XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
                          TORCH_HOME=str(home / ".cache"), CUDA_VISIBLE_DEVICES="")  # the checks run on the CPU
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # input() gets EOF, not the instructor's terminal
        os.close(null)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        tempfile.tempdir = None
        notebook_dir = workdir / "work" / Path(plan.file).parent
        os.chdir(notebook_dir if notebook_dir.is_dir() else workdir / "work")
        sys.path.insert(0, os.getcwd())
        read, write = read_roots(), [workdir]
        if confine:
            uid = os.getuid()
            state = {"user": "nobody" if _drop_to_nobody() else "the caller"}
            uid = NOBODY if state["user"] == "nobody" else os.getuid()
            try:
                _set_limits(limits, uid)
                state["limits"] = "set"
            except (ImportError, ValueError, OSError) as e:  # no resource module (Windows)
                state["limits"] = f"not set ({type(e).__name__}: {e})"
            try:
                state["landlock"] = landlock(read, write + [Path("/dev/null")])
            except OSError as e:  # seccomp (some containers) may refuse it: the audit hook still guards
                state["landlock"] = f"refused ({e})"
            guard = Guard(read, write)
            sys.addaudithook(guard)
        else:
            guard, state = Guard(read, write, files=False), {"limits": "not set (confine=False)"}
        _emit(res_w, {"event": "sandbox", **state})
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)  # noqa: SIM115
        sys.dont_write_bytecode = True  # a stale .pyc is not rewritten into the installation
        _child_steps(plan, start, skip, lambda event: _emit(res_w, event), str(workdir), guard, limits)
    except BaseException as e:  # noqa: BLE001 (report, then leave)
        try:
            _emit(res_w, {"event": "crash", "message": f"{type(e).__name__}: {e}"})
        except BaseException:  # noqa: BLE001
            pass
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code)


# ------------------------------------------------------------------------------ the parent side


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        why = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (a file over the size limit)", "SIGSEGV": " (a crash)",
               "SIGKILL": " (killed, e.g. out of memory)"}.get(name, "")
        return f"was killed by {name}{why}"
    return f"ended with exit code {os.WEXITSTATUS(status)} (os._exit or sys.exit)"


def _run_child(plan: Plan, start: int, skip: set[int], workdir: Path, limits: Limits, confine: bool,
               output: bytearray, counts: list[int]) -> tuple[list[dict], str | None]:
    """Fork one child from `start`; its JSON events, and why it ended early (None: it finished)."""
    import selectors

    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(res_r)
        os.close(out_r)
        _child(plan, start, skip, res_w, out_w, workdir, limits, confine)
    os.close(res_w)
    os.close(out_w)
    deadline = time.monotonic() + limits.timeout
    sel = selectors.DefaultSelector()
    sel.register(res_r, selectors.EVENT_READ, "res")
    sel.register(out_r, selectors.EVENT_READ, "out")
    events, pending, timed_out = [], b"", False
    cap = limits.output_kb << 10
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fd)
                    continue
                if key.data == "out":
                    counts[0] += len(data)
                    if len(output) < cap:
                        output += data[: cap - len(output)]
                    continue
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        events.append(event)
        status = None
        while status is None and not timed_out:  # pipes closed: wait for the exit, within the deadline
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                timed_out = True
            else:
                time.sleep(0.01)
    finally:
        sel.close()
        for fd in (res_r, out_r):
            os.close(fd)
        try:
            os.killpg(pid, signal.SIGKILL)  # the child and anything it started
        except (ProcessLookupError, PermissionError):
            pass
        if timed_out or status is None:
            _, status = os.waitpid(pid, 0)
    if timed_out:
        return events, "timeout"
    if any(e.get("event") == "crash" for e in events):
        return events, "the grader's child failed: " + next(e["message"] for e in events if e.get("event") == "crash")
    finished = {e.get("step") for e in events if e.get("event") == "end"}
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and \
            all(k in finished for k in range(start, len(plan.steps)) if k not in skip):
        return events, None
    return events, "the notebook's process " + _describe_exit(status)


def _as_outcome(data: dict) -> Outcome:
    known = {k: data[k] for k in ("exercise", "function", "status", "message", "seconds", "flags") if k in data}
    outcome = Outcome(**known)
    if outcome.status not in STATUSES:
        outcome.status, outcome.message = "error", f"unknown status {outcome.status!r}"
    return outcome


def copy_learner(source: Path, dest: Path, notebooks: list[Path] | None = None) -> list[str]:
    """Copy a learner's notebooks and .py files (no links, nothing hidden, none over the size
    limit) into dest; notes on what was left out. notebooks: only these (and the .py files beside
    them), e.g. without a sub-folder that is another learner's."""
    notes = []
    dest.mkdir(parents=True, exist_ok=True)
    base = source if source.is_dir() else source.parent
    if notebooks is not None or source.is_file():  # notebooks and the .py files beside them (helpers)
        chosen = notebooks if notebooks is not None else [source]
        files = list(dict.fromkeys([*chosen, *(p for nb in chosen for p in sorted(nb.parent.glob("*.py"))
                                               if not p.name.startswith("."))]))
    else:
        files = [p for p in _files(source) if p.suffix in COPIED]
    for p in files:
        rel = p.relative_to(base)
        if p.is_symlink() or not p.is_file():
            notes.append(f"{rel}: a link, not copied")
            continue
        if p.stat().st_size > MAX_NOTEBOOK_MB << 20:
            notes.append(f"{rel}: {p.stat().st_size / 2**20:.0f} MB, over {MAX_NOTEBOOK_MB} MB: not graded")
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest / rel)
    return notes


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, uid, uid)


def can_fork() -> bool:
    return hasattr(os, "fork")


def run_notebook(path: str | Path, limits: Limits | None = None, workdir: Path | None = None,
                 name: str | None = None, confine: bool = True) -> NotebookRun:
    """Run one saved notebook's checks in sandboxed children (see the module's docstring).
    workdir: the learner's temporary folder (its copy under work/); made for this call when None.
    name: the notebook's path as shown (default: its file name)."""
    limits = limits or Limits()
    path = Path(path)
    name = name or path.name
    t0 = time.perf_counter()
    try:
        plan = plan_notebook(path, name)
    except Exception as e:  # a file that is no notebook: one message, the rest of the class goes on
        return NotebookRun(name, notebook_number(path, []), [], [], [],
                           error=f"could not read it as a notebook: {type(e).__name__}: {e}")
    outcomes: dict[str, Outcome] = {}
    for ex_id, why in plan.missing.items():
        outcomes[ex_id] = Outcome(ex_id, EXERCISES[ex_id].function, "missing", why)
    own = workdir is None
    if own:
        workdir = Path(tempfile.mkdtemp(prefix="mnist-course-sandbox-"))
        copy_learner(path, workdir / "work")
    notes, flags, sandbox = [], list(plan.flags), {}
    output, counts, processes = bytearray(), [0], 0
    try:
        if can_fork():
            if confine and hasattr(os, "geteuid") and os.geteuid() == 0:
                _chown_tree(workdir, NOBODY)
            start, skip = 0, set()
            while start < len(plan.steps):
                events, ended = _run_child(plan, start, skip, workdir, limits, confine, output, counts)
                processes += 1
                begun = [e["step"] for e in events if e.get("event") == "begin"]
                for e in events:
                    if e.get("event") == "sandbox" and processes == 1:
                        sandbox = {k: v for k, v in e.items() if k != "event"}
                        if sandbox.get("limits") != "set":
                            notes.append(f"the limits were {sandbox.get('limits')}")
                for e in events:
                    if e.get("event") != "end":
                        continue
                    step = plan.steps[e["step"]]
                    if "outcome" in e:
                        outcomes[step.exercise] = _as_outcome(e["outcome"])
                    notes += e.get("notes", [])
                    if e.get("tampered") and step.kind != "check":
                        what = "its imports" if step.kind == "imports" else f"code cell {step.cell}"
                        flags.append(f"{what} replaced {', '.join(e['tampered'])} (put back before the checks)")
                    if e.get("violations") and step.kind != "check":
                        what = "its imports" if step.kind == "imports" else f"code cell {step.cell}"
                        flags.append(f"{what} tried {'; '.join(e['violations'])}")
                if ended is None:
                    break
                finished = {e["step"] for e in events if e.get("event") == "end"}
                left = [k for k in range(start, len(plan.steps)) if k not in skip and k not in finished]
                if not left:
                    break
                # the step it was in when it ended; before any step: the first one it had to run
                stuck = next((k for k in begun if k not in finished), left[0])
                skip.add(stuck)
                status = "timeout" if ended == "timeout" else "error"
                why = (f"still running after {limits.timeout:g} s (the time limit per notebook run)"
                       if ended == "timeout" else ended)
                step = plan.steps[stuck]
                if step.kind == "check":
                    outcomes[step.exercise] = Outcome(step.exercise, step.function, status, why)
                else:
                    what = "its imports" if step.kind == "imports" else f"the statements of code cell {step.cell}"
                    flags.append(f"running {what}: {why}")
                    for s in plan.steps:
                        if s.kind == "check" and s.cell == step.cell and step.kind == "cell":
                            outcomes[s.exercise] = Outcome(s.exercise, s.function, status,
                                                           f"running its cell's statements: {why}")
                            skip.add(plan.steps.index(s))
                start = stuck + 1
        else:
            notes.append("no fork on this system: the checks ran in this process, without limits or sandbox")
            _in_process(plan, outcomes)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    # static notes (plan.flags) stay flags: a name can be harmless; the calls a check sees decide
    order = [i for i in plan.expected if i in outcomes] + [i for i in outcomes if i not in plan.expected]
    text = output.decode("utf-8", "replace")
    if counts[0] > len(output):
        flags.append(f"printed {counts[0] / 2**20:.1f} MB; the first {len(output) >> 10} KB kept")
    return NotebookRun(name, plan.notebook, [outcomes[i] for i in order], flags, notes, text, counts[0],
                       round(time.perf_counter() - t0, 3), processes, sandbox=sandbox)


def _in_process(plan: Plan, outcomes: dict) -> None:
    """Where no fork exists (Windows): the steps in this process, no limits (the old status)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    events = []
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        _child_steps(plan, 0, set(), events.append, tempfile.gettempdir(), Guard([], [], files=False), Limits())
    for e in events:
        if "outcome" in e:
            outcomes[e["outcome"]["exercise"]] = _as_outcome(e["outcome"])


# ------------------------------------------------------------------------------ a learner


def imports_of(path: str | Path) -> set[str]:
    """The modules a saved notebook's top-level import statements name (read, not run)."""
    import nbformat

    mods = set()
    for cell in nbformat.read(str(path), as_version=4).cells:
        tree = parse_cell(cell.source) if cell.cell_type == "code" else None
        for node in tree.body if tree is not None else []:
            if isinstance(node, ast.Import):
                mods.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods.add(node.module)
    return mods


def course_imports(notebooks_dir: str | Path | None = None) -> set[str]:
    """What the course's own notebooks (NN_*.ipynb in the repository's notebooks/) import."""
    from ..settings import repo_root

    folder = Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks"
    mods = set()
    for nb in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if folder.is_dir() else []:
        try:
            mods |= imports_of(nb)
        except Exception:  # noqa: BLE001, S112 (a notebook being edited)
            continue
    return mods


_WARM: set[str] = set()  # the exercises whose reference ran in this process


def warm_up(exercise_ids=None, modules: set[str] | None = None) -> None:
    """Before forking: import the modules that both `modules` (default: all) and the course's own
    notebooks import, and run the reference of each exercise once, so that every child starts with
    the checks' lazy imports done (PyTorch's optimisers take seconds). Only modules the course
    imports are imported here, outside the sandbox; a learner's own module never is."""
    import contextlib
    import io

    import torch

    torch.set_num_threads(1)  # children are forked: no thread pool to inherit
    trusted = course_imports()
    for m in sorted(trusted if modules is None else trusted & set(modules)):
        if m in sys.modules:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                __import__(m)
        except Exception:  # noqa: BLE001, S112 (the child will say so, if the learner needs it)
            continue
    for ex_id in exercise_ids if exercise_ids is not None else list(EXERCISES):
        if ex_id in _WARM:
            continue
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            check(ex_id, reference(ex_id), quiet=True)
        _WARM.add(ex_id)
    import gc

    gc.collect()
    gc.freeze()  # what is loaded now is never collected: children neither pause on it nor copy its pages


def sandbox_info() -> dict:
    """How children are confined here: fork, Landlock ABI, rlimits, user."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return {"fork": can_fork(), "landlock_abi": landlock_abi(), "rlimits": sys.platform != "win32",
            "user": "nobody" if _can_drop() else ("root" if root else "the caller"), "platform": sys.platform}


def run_learner(path: str | Path, limits: Limits | None = None, confine: bool = True, progress=None,
                workdir: Path | None = None, notebooks: list[Path] | None = None) -> dict:
    """Every notebook of one learner (a folder, any depth, or one notebook; or only `notebooks`) in
    a temporary copy, one after the other: {"notebooks": [NotebookRun as JSON], "notes": [...],
    "seconds": ..., "sandbox": ...}. progress(NotebookRun) is called after each notebook.
    workdir: an empty folder for the copy (the caller removes it); default a new temporary one."""
    limits = limits or Limits()
    path = Path(path)
    t0 = time.perf_counter()
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mnist-course-sandbox-")) if own else Path(workdir)
    try:
        notes = copy_learner(path, workdir / "work", notebooks)
        copies = find_notebooks(workdir / "work")
        runs = []
        for nb in copies:
            run = run_notebook(nb, limits, workdir, str(nb.relative_to(workdir / "work")), confine)
            runs.append(run)
            if progress:
                progress(run)
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return {"notebooks": [r.to_json() for r in runs], "notes": notes,
            "seconds": round(time.perf_counter() - t0, 3), "sandbox": sandbox_info()}
