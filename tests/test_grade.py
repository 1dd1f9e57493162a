"""mnist-course grade and the sandboxed runner it shares with mnist-course status.

The class: tests/grade_class.py writes 30 learners from the course's notebooks (every mutant of the
checks once, an infinite loop, os.remove of an instructor's file, a bounded fork bomb, a 3.2 GB
allocation, SystemExit, os._exit, KeyboardInterrupt, 100 MB of output, reading another learner's
notebook, answers that call the reference solutions or the library, deleted / renamed / reordered /
retyped exercise cells). It is graded once, end to end, by the command (2 at a time, 20 s per
notebook run), and every test of the first part reads that run: each learner's row says exactly
what tests/grade_class.py planted, nothing else; the instructor's files are untouched; no process
outlives the grader; the report opens in Chromium with no broken image or link.

Then: exit codes (grade and status), learners at any depth, shards and their merge, each sandbox
layer on its own (Landlock without the audit hook, the audit hook without Landlock), and the
container mode where podman or docker and the image exist.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mnist_course.exercises import EXERCISES, sandbox, status
from mnist_course.tooling import grade

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grade_class  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
TIMEOUT = 20  # seconds per notebook run in the class's grading: the infinite loop costs this once;
# the slowest notebook's checks take a few seconds on a loaded machine


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _processes_naming(text: str) -> list[str]:
    """Command lines of live processes that contain `text` (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{d.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The 30-learner class, written and graded once by `mnist-course grade`."""
    base = tmp_path_factory.mktemp("class")
    instructor = base / "instructor" / "grades-2025.csv"
    instructor.parent.mkdir()
    instructor.write_text("learner,grade\nalice,A\n")
    submissions = base / "submissions"
    expected = grade_class.make_class(submissions, instructor)
    before = {"instructor": _digest(instructor.parent), "submissions": _digest(submissions)}
    out = base / "graded"
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "mnist_course", "grade", str(submissions), "--out", str(out),
                          "--jobs", "2", "--timeout", str(TIMEOUT)], capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    left = _processes_naming(str(out))
    book = json.loads((out / "gradebook.json").read_text()) if (out / "gradebook.json").exists() else None
    print(f"\n30-learner class graded in {wall:.1f} s wall (grader's own count {book and book['wall_seconds']} s)")
    return {"base": base, "instructor": instructor, "submissions": submissions, "out": out, "run": run,
            "expected": expected, "before": before, "book": book, "left": left, "wall": wall}


# ------------------------------------------------------------------------------ the class


@pytest.mark.slow
def test_the_class_is_graded_with_exit_status_0(graded):
    run = graded["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "graded 30 of 30 learners" in run.stderr
    assert run.stderr.count("] ") >= 30, "a progress line per learner"
    assert len(graded["expected"]) == 30 and len(graded["book"]["learners"]) == 30


@pytest.mark.slow
def test_every_learner_lands_in_their_own_row(graded):
    """Each planted mistake and fault is in its learner's row with its message; every other cell
    of that learner grades as planted (pass, or missing where a stub was left)."""
    rows = {r["id"]: r for r in graded["book"]["learners"]}
    assert set(rows) == set(graded["expected"])
    problems = []
    for learner, want in graded["expected"].items():
        row = rows[learner]
        for ex, status_ in want["grades"].items():
            if row["grades"][ex] != status_:
                problems.append(f"{learner} {ex}: {row['grades'][ex]}, expected {status_}: {row['messages'][ex][:160]}")
        for ex, words in want["words"].items():
            problems += [f"{learner} {ex}: {w!r} not in {row['messages'][ex][:160]!r}" for w in words
                         if w not in row["messages"][ex]]
        for flag in want["flags"]:
            if not any(flag in f for f in row["flags"]):
                problems.append(f"{learner}: no flag with {flag!r} in {row['flags']}")
        assert row["total"] == sum(v == "pass" for v in row["grades"].values())
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_named_mistake_of_the_checks_is_in_the_class(graded):
    planted = sum(len(w) for learner, e in graded["expected"].items() for ex, w in e["words"].items()
                  if e["grades"][ex] == "fail" and learner not in ("calls-solution", "calls-library"))
    present = {i for nb in grade_class.course_notebooks() for i, _ in sandbox.check_calls(nb)}
    assert planted == sum(len(grade_class.MUTANTS.get(i, [])) for i in present) >= 2 * len(present)


@pytest.mark.slow
def test_the_faults_are_stopped_by_the_limits_they_name(graded):
    rows = {r["id"]: r for r in graded["book"]["learners"]}
    first = graded["book"]["exercises"][0]
    assert f"still running after {TIMEOUT} s" in rows["loop"]["messages"][first]
    assert "went over the memory limit (2048 MB)" in rows["alloc"]["messages"][first]
    assert "starting a process (os.fork)" in rows["forkbomb"]["messages"][first]
    assert str(graded["instructor"]) in rows["remove"]["messages"][first]
    flood = next(run for run in rows["flood"]["notebooks"] if any(o["exercise"] == first for o in run["outcomes"]))
    assert flood["output_bytes"] >= 100 << 20 and len(flood["output"]) <= 64 << 10
    json_size = (graded["out"] / "gradebook.json").stat().st_size
    assert json_size < 8 << 20, f"gradebook.json is {json_size} bytes: the flood's output was kept"
    osexit = next(run for run in rows["osexit"]["notebooks"] if any(o["exercise"] == first for o in run["outcomes"]))
    assert osexit["processes"] == 2, "the rest of the notebook ran in a fresh child"


@pytest.mark.slow
def test_the_gradebook_csv_has_a_row_per_learner_and_a_column_per_exercise(graded):
    with open(graded["out"] / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    columns = graded["book"]["exercises"]
    assert rows[0] == ["learner", *columns, "total", "flags", "seconds"]
    present = {i for nb in grade_class.course_notebooks() for i, _ in sandbox.check_calls(nb)}
    assert set(columns) == present and columns == [i for i in EXERCISES if i in present]
    assert len(rows) == 31
    for row in rows[1:]:
        grades = row[1:1 + len(columns)]
        assert set(grades) <= {"pass", "fail", "error", "timeout", "missing"}
        assert int(row[1 + len(columns)]) == grades.count("pass")


@pytest.mark.slow
def test_the_instructors_files_are_untouched(graded):
    assert graded["instructor"].read_text() == "learner,grade\nalice,A\n"
    assert _digest(graded["instructor"].parent) == graded["before"]["instructor"]
    assert _digest(graded["submissions"]) == graded["before"]["submissions"]


@pytest.mark.slow
def test_nothing_outlives_the_grader(graded):
    assert graded["left"] == [], "processes of the grading (the fork bomb's?) are still running"


@pytest.mark.slow
def test_the_report_opens_in_chromium_with_no_broken_image_or_link(graded):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium or set MNIST_COURSE_CHROMIUM")
    out = graded["out"]
    report = (out / "report.html").read_text()
    for section in ("Pass rate per exercise", "Most common mistakes", "Integrity and limits", "Time per notebook"):
        assert section in report
    problems, pages = [], [out / "report.html", out / "learners" / "flood.html", out / "learners" / "snoop.html"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True)
        try:
            page = browser.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            for path in pages:
                page.goto(path.as_uri(), wait_until="load")
                images = page.evaluate("[...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
                problems += [f"{path.name}: broken image {alt}" for alt, ok in images if not ok]
                links = page.evaluate("[...document.links].map(a => a.href)")
                problems += [f"{path.name}: broken link {href}" for href in links
                             if href.startswith("file://") and not Path(href[len("file://"):].split("#")[0]).exists()]
                if path.name == "report.html":
                    assert len(images) == 1 and sum(href.endswith(".html") for href in links) >= 30
            problems += errors
        finally:
            browser.close()
    assert not problems, problems


# ------------------------------------------------------------------------------ exit codes


def _notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def _notebook_02(path: Path, softmax: str | None = None) -> Path:
    """Notebook 02's three exercises, answered with the references (or softmax's body replaced)."""
    cells = ["import numpy as np\nfrom mnist_course.exercises import check"]
    for ex_id in ("02.1", "02.2", "02.3"):
        src = grade_class._reference(ex_id)
        if ex_id == "02.1" and softmax is not None:
            src = softmax
        cells.append(f"{src}\ncheck({ex_id!r}, {EXERCISES[ex_id].function})")
    return _notebook(path, cells)


def test_status_exit_codes(tmp_path, capsys):
    good = _notebook_02(tmp_path / "good" / "deeper" / "02_softmax.ipynb")
    assert status.main(["--status", str(tmp_path / "good")]) == 0, "a folder is searched at any depth"
    assert "3 of 3 exercises pass" in capsys.readouterr().out
    _notebook_02(tmp_path / "bad" / "02_softmax.ipynb", "def softmax(z):\n    return np.exp(z)\n")
    assert status.main(["--status", str(tmp_path / "bad")]) == 1
    _notebook_02(tmp_path / "stub" / "02_softmax.ipynb", "def softmax(z):\n    raise NotImplementedError\n")
    assert status.main(["--status", str(tmp_path / "stub")]) == 1
    assert status.main(["--status", str(tmp_path / "good"), str(tmp_path / "bad")]) == 1
    assert status.main(["--status", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty" / ".ipynb_checkpoints").mkdir(parents=True)
    _notebook(tmp_path / "empty" / ".ipynb_checkpoints" / "02_softmax-checkpoint.ipynb", ["x = 1"])
    assert status.main(["--status", str(tmp_path / "empty")]) == 2
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert status.main(["--status", str(tmp_path / "broken.ipynb")]) == 1
    assert "could not read it as a notebook" in capsys.readouterr().out
    assert status.main(["--status", str(good), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [o["status"] for o in data["notebooks"][0]["outcomes"]] == ["pass"] * 3


def test_status_and_the_command_say_the_same(tmp_path):
    """The learner's own check runs the grader's runner: the same words for the same notebook."""
    nb = _notebook_02(tmp_path / "ann" / "02_softmax.ipynb", "def softmax(z):\n    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)\n")
    mine = {o.exercise: (o.status, o.message) for o in status.notebook_status(nb)}
    out = tmp_path / "graded"
    run = subprocess.run([sys.executable, "-m", "mnist_course", "grade", str(tmp_path / "ann"), "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    row = json.loads((out / "gradebook.json").read_text())["learners"][0]
    assert {ex: (row["grades"][ex], row["messages"][ex]) for ex in mine} == mine
    assert mine["02.1"][0] == "fail" and "+-1000" in mine["02.1"][1]


def test_grade_exit_codes_and_what_it_refuses(tmp_path, capsys):
    _notebook_02(tmp_path / "class" / "ann" / "02_softmax.ipynb")
    out = tmp_path / "out"
    for argv, words in (([str(tmp_path / "nowhere"), "--out", str(out)], "no such file or folder"),
                        ([str(tmp_path / "class"), "--out", str(out), "--shard", "3/2"], "--shard '3/2'"),
                        ([str(tmp_path / "class"), "--out", str(out), "--jobs", "0"], "must be positive"),
                        ([str(tmp_path), "--out", str(out), "--shard", "x"], "--shard 'x'")):
        with pytest.raises(SystemExit) as e:
            grade.main(argv)
        assert e.value.code == 2 and words in capsys.readouterr().err
    (tmp_path / "nothing").mkdir()
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path / "nothing"), "--out", str(out)])
    assert "nothing to grade" in capsys.readouterr().err
    assert grade.main([str(tmp_path / "class"), "--out", str(out)]) == 0
    (out / "gradebook.csv").write_text("learner,01.1\nann,A+ (hand-edited)\n")
    with pytest.raises(SystemExit) as e:
        grade.main([str(tmp_path / "class"), "--out", str(out)])
    assert e.value.code == 2 and "already holds a gradebook" in capsys.readouterr().err
    assert "hand-edited" in (out / "gradebook.csv").read_text(), "a gradebook is not overwritten silently"
    assert grade.main([str(tmp_path / "class"), "--out", str(out), "--force"]) == 0
    assert "hand-edited" not in (out / "gradebook.csv").read_text()


def test_a_learner_the_grader_cannot_grade_gives_exit_status_1(tmp_path, monkeypatch, capsys):
    """The learner's process dies (here: the runner itself raises): their row says so, the others
    are graded, the command exits 1."""
    for name in ("ann", "bob"):
        _notebook_02(tmp_path / "class" / name / "02_softmax.ipynb")
    real = grade.run_learner

    def broken_for_bob(path, *args, **kwargs):
        if Path(path).name == "bob":
            raise RuntimeError("disk on fire")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(grade, "run_learner", broken_for_bob)  # the forked workers inherit it
    assert grade.main([str(tmp_path / "class"), "--out", str(tmp_path / "out")]) == 1
    rows = {r["id"]: r for r in json.loads((tmp_path / "out" / "gradebook.json").read_text())["learners"]}
    assert set(rows["ann"]["grades"].values()) == {"pass"}
    assert set(rows["bob"]["grades"].values()) == {"error"} and "disk on fire" in rows["bob"]["error"]
    assert "not graded: bob" in capsys.readouterr().err


# ------------------------------------------------------------------------------ learners, shards, merge


def test_learners_are_found_at_any_depth(tmp_path):
    root = tmp_path / "subs"
    for rel in ("sec-a/ann/01_x.ipynb", "sec-a/ann/extra/notes.ipynb", "sec-b/bob/week1/02_y.ipynb",
                "sec-b/bob/01_x.ipynb", "carl.ipynb", "sec-a/dora/01_x.ipynb", "sec-b/dora/01_x.ipynb",
                "sec-a/ann/.ipynb_checkpoints/01_x-checkpoint.ipynb", "sec-b/eve/my-notebooks/01_x.ipynb"):
        _notebook(root / rel, ["x = 1"])
    found = dict(grade.find_learners(root))
    assert set(found) == {"ann", "bob", "week1", "carl", "sec-a/dora", "sec-b/dora", "eve"}
    paths = list(found.values())
    assert [p.name for p in grade.learner_notebooks(found["ann"], paths)] == ["01_x.ipynb", "notes.ipynb"]
    assert [p.name for p in grade.learner_notebooks(found["bob"], paths)] == ["01_x.ipynb"]
    assert grade.find_learners(root / "carl.ipynb") == [("carl", root / "carl.ipynb")]


def test_shards_split_the_class_and_merge_back(tmp_path, capsys):
    learners = [(f"l{i:02d}", Path(f"l{i:02d}")) for i in range(10)]
    shards = [grade.shard(learners, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(sum(shards, [])) == learners and [len(s) for s in shards] == [4, 3, 3]
    for name in ("ann", "bob", "cat"):
        _notebook_02(tmp_path / "class" / name / "02_softmax.ipynb",
                     "def softmax(z):\n    return z\n" if name == "bob" else None)
    for i in (1, 2):
        assert grade.main([str(tmp_path / "class"), "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/2"]) == 0
    assert grade.main(["--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "all")]) == 0
    book = json.loads((tmp_path / "all" / "gradebook.json").read_text())
    assert [r["id"] for r in book["learners"]] == ["ann", "bob", "cat"]
    assert [r["total"] for r in book["learners"]] == [3, 1, 3]
    assert (tmp_path / "all" / "report.html").exists() and (tmp_path / "all" / "learners" / "bob.html").exists()
    with pytest.raises(SystemExit):
        grade.main(["--merge", str(tmp_path / "s1"), str(tmp_path / "s1"), "--out", str(tmp_path / "twice")])
    assert "more than one gradebook" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the sandbox's layers


def _fault_notebook(tmp_path: Path, body: str) -> Path:
    return _notebook(tmp_path / "learner" / "02_softmax.ipynb", [
        "import os\nimport numpy as np\nfrom mnist_course.exercises import check",
        f"def softmax(z):\n{body}\n    e = np.exp(z - z.max(axis=1, keepdims=True))\n"
        "    return e / e.sum(axis=1, keepdims=True)\n\ncheck('02.1', softmax)"])


@pytest.mark.parametrize("layer", ["landlock", "audit hook"])
def test_each_layer_alone_keeps_the_files_safe(tmp_path, monkeypatch, layer):
    """Landlock without the audit hook's file checks, and the audit hook without Landlock: either
    alone refuses removing the instructor's file and reading another learner's notebook."""
    if layer == "landlock" and sandbox.landlock_abi() < 1:
        pytest.skip("this kernel has no Landlock")
    secret = tmp_path / "instructor" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("42")
    other = _notebook(tmp_path / "other" / "02_softmax.ipynb", ["x = 1"])
    if layer == "landlock":
        real = sandbox.Guard.__init__
        monkeypatch.setattr(sandbox.Guard, "__init__", lambda self, r, w, files=True: real(self, r, w, files=False))
    else:
        monkeypatch.setattr(sandbox, "landlock", lambda read, write: 0)
    sandbox.warm_up(["02.1"], set())
    for body in (f"    os.remove({str(secret)!r})", f"    open({str(other)!r}).read()"):
        nb = _fault_notebook(tmp_path, body)
        outcome = sandbox.run_notebook(nb).outcomes[0]
        assert outcome.status == ("error" if layer == "audit hook" else "fail"), outcome.message
        assert ("stopped by the sandbox" if layer == "audit hook" else "PermissionError") in outcome.message
    assert secret.read_text() == "42"


def test_without_confinement_the_same_faults_get_through(tmp_path):
    """The control: confine=False runs the learner's code with neither layer, and os.remove works."""
    secret = tmp_path / "instructor" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("42")
    sandbox.warm_up(["02.1"], set())
    outcome = sandbox.run_notebook(_fault_notebook(tmp_path, f"    os.remove({str(secret)!r})"), confine=False).outcomes[0]
    assert not secret.exists() and "FileNotFoundError" in outcome.message  # removed at the first of its calls


def test_the_profiler_sees_the_reference_behind_a_helper(tmp_path):
    """Not only a direct call: a helper of the learner's that calls the solutions fails the answer."""
    nb = _notebook(tmp_path / "02_softmax.ipynb", [
        "import numpy as np\nfrom mnist_course.exercises import check, reference",
        "def _mine(z):\n    return reference('02.1')(z)\n\ndef softmax(z):\n    return _mine(z)\n\ncheck('02.1', softmax)",
        "from mnist_course.exercises.solutions import cross_entropy\ncheck('02.2', cross_entropy)"])
    sandbox.warm_up(["02.1", "02.2"], set())
    run = sandbox.run_notebook(nb)
    first, second = run.outcomes[:2]
    assert first.status == "fail" and "the course's reference solution" in first.message
    assert second.status == "fail" and "mnist_course.exercises.solutions.cross_entropy" in second.message
    assert any("calls mnist_course.exercises.core.reference" in f for f in first.flags), first.flags


def test_answers_cannot_change_the_checks_tools_or_read_the_instructors_environment(tmp_path, monkeypatch):
    """np.allclose = lambda ...: True in a cell is put back before the checks (flagged); done inside the
    function, it fails the exercise; the environment's secrets and the terminal are out of reach."""
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    nb = _notebook(tmp_path / "02_softmax.ipynb", [
        "import os\nimport numpy as np\nfrom mnist_course.exercises import check",
        "np.allclose = lambda *a, **k: True\n\ndef softmax(z):\n    return z\n\ncheck('02.1', softmax)",
        "def cross_entropy(z, y):\n    import torch\n    torch.Tensor.allclose = lambda *a, **k: True\n    return 0.0\n\n"
        "check('02.2', cross_entropy)",
        "def cross_entropy_grad(z, y):\n    print('token:', os.environ.get('SECRET_TOKEN'))\n    return input()\n\n"
        "check('02.3', cross_entropy_grad)"])
    sandbox.warm_up(["02.1", "02.2", "02.3"], set())
    run = sandbox.run_notebook(nb)
    first, second, third = run.outcomes
    assert first.status == "fail" and "differs from the right answer" in first.message
    assert any("replaced numpy.allclose" in f for f in run.flags)
    assert second.status == "fail" and "replaced torch.Tensor.allclose" in second.message
    assert third.status == "fail" and "EOFError" in third.message
    assert "token: None" in run.output and "hunter2" not in run.output
    import numpy as np
    import torch

    assert not np.allclose(1, 2) and "allclose" not in vars(torch.Tensor), "the parent's modules are untouched"


# ------------------------------------------------------------------------------ containers


@pytest.mark.slow
def test_grading_in_a_container(tmp_path):
    image = os.environ.get("MNIST_COURSE_GRADE_IMAGE", "localhost/mnist-course-lab:latest")
    try:
        engine = grade.check_container(image)
    except ValueError as e:
        pytest.skip(f"no container grading here: {e}")
    _notebook_02(tmp_path / "class" / "ann" / "02_softmax.ipynb")
    _notebook_02(tmp_path / "class" / "bob" / "02_softmax.ipynb", "def softmax(z):\n    return z\n")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "mnist_course", "grade", str(tmp_path / "class"), "--out", str(out),
                          "--container", image], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {r["id"]: r for r in json.loads((out / "gradebook.json").read_text())["learners"]}
    assert rows["ann"]["total"] == 3 and rows["bob"]["grades"]["02.1"] == "fail"
    assert rows["ann"]["container"], f"graded by {engine} in {image}"


def test_container_mode_without_an_engine_says_why(tmp_path, monkeypatch, capsys):
    _notebook_02(tmp_path / "class" / "ann" / "02_softmax.ipynb")
    monkeypatch.setattr(grade.shutil, "which", lambda name: None)
    assert grade.main([str(tmp_path / "class"), "--out", str(tmp_path / "out"), "--container", "img"]) == 2
    assert "needs podman or docker, and neither is installed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
