"""``mnist-course grade``: grade a class's notebooks safely, and show the instructor what the class
got wrong.

    mnist-course grade SUBMISSIONS --out OUT                 # every learner, 2 at a time by default
    mnist-course grade SUBMISSIONS --out OUT --jobs 8 --timeout 30 --memory 1024
    mnist-course grade SUBMISSIONS --out OUT/shard-3 --shard 3/10     # one batch job of ten
    mnist-course grade --merge OUT/shard-* --out OUT                  # the ten gradebooks as one
    mnist-course grade SUBMISSIONS --out OUT --container localhost/mnist-course-lab:latest

Learners. SUBMISSIONS holds one folder (or notebook) per learner, at any depth: a folder that holds
a course notebook (``NN_name.ipynb``) is a learner, named after the folder (after the folder above
it for ``my-notebooks/`` or ``notebooks/``), with every notebook in it and below it (its own
sub-folders, unless one of them holds course notebooks of its own); a notebook with another name,
outside such a folder, is a learner on its own, named after the file. Hidden folders
(``.ipynb_checkpoints``) are skipped. Two learners with one name get their paths as ids.

Grading. Each learner runs in a process of its own (forked from this one, which has imported the
checks once; with ``--container``, a container of its own), which copies the learner's notebooks to
a temporary folder and runs each notebook's checks with :mod:`mnist_course.exercises.sandbox`, the
runner of ``mnist-course status``: a child process per notebook, time, memory, file-size and task
limits, a private HOME, Landlock (Linux) and an audit hook keeping the instructor's files out of
reach. ``--jobs N`` learners at a time.

Results in OUT: ``gradebook.csv`` (a row per learner, a column per exercise: pass / fail / error /
timeout / missing, then total, flags and the learner's wall seconds), ``gradebook.json`` (everything, messages
included), ``report.html`` (offline: pass rate per exercise as a plot, the most common named
mistakes, integrity flags, time per notebook, every learner) and ``learners/<id>.html`` (one
learner's messages, flags and output). An existing gradebook is never overwritten without ``--force``.

Exit status: 0 when every learner was graded (whatever their grades), 1 when the grader could not
grade a learner (their row says why; the rest is written), 2 for bad arguments, 130 if interrupted.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..exercises import EXERCISES, exercises_of
from ..exercises.sandbox import (
    COURSE_NAME,
    STATUSES,
    Limits,
    find_notebooks,
    run_learner,
    sandbox_info,
    warm_up,
)
from ..files import atomic_write

GRADEBOOK_VERSION = 1
WORKSPACES = ("my-notebooks", "notebooks")  # a learner's folder of notebooks, named after the folder above it

# ------------------------------------------------------------------------------ learners


def find_learners(root: str | Path) -> list[tuple[str, Path]]:
    """(id, path) of every learner under root (see the module's docstring), sorted by id."""
    root = Path(root)
    if root.is_file():
        return [(root.stem, root)]
    notebooks = find_notebooks(root)
    folders = {nb.parent for nb in notebooks if COURSE_NAME.match(nb.name)}
    learners: list[Path] = sorted(folders)
    for nb in notebooks:
        if COURSE_NAME.match(nb.name):
            continue
        if not any(folder == nb.parent or folder in nb.parents for folder in folders):
            learners.append(nb)
    def name_of(p: Path) -> str:
        if p.is_file():
            return p.stem
        if p.name in WORKSPACES and p != root:  # alice/my-notebooks/ is alice's
            return p.parent.name
        return p.resolve().name if p == root else p.name

    names = Counter(name_of(p) for p in learners)
    found = []
    for p in learners:
        name = name_of(p)
        if names[name] > 1 and p != root:
            name = str(p.relative_to(root).with_suffix("") if p.is_file() else p.relative_to(root))
        found.append((name, p))
    return sorted(found)


def learner_notebooks(path: Path, all_learners: list[Path]) -> list[Path]:
    """The notebooks that belong to a learner folder: every one below it that is not below
    another learner's folder inside it."""
    if path.is_file():
        return [path]
    inner = [p for p in all_learners if p != path and path in p.parents]
    return [nb for nb in find_notebooks(path) if not any(q == nb or q in nb.parents for q in inner)]


def shard(learners: list, spec: str | None) -> list:
    """The learners of shard i/N: every N-th, starting at the i-th (1-based), of the sorted list."""
    if not spec:
        return learners
    m = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--shard {spec!r}: write i/N with 1 <= i <= N, e.g. --shard 2/8")
    i, n = int(m.group(1)), int(m.group(2))
    return learners[i - 1::n]


# ------------------------------------------------------------------------------ running learners


class Job:
    """One learner being graded: a forked worker or a container, and the pipe its results come on."""

    def __init__(self, learner_id: str, path: Path, pid: int | None = None, proc=None, fd: int = -1):
        self.id, self.path, self.pid, self.proc, self.fd = learner_id, path, pid, proc, fd
        self.buffer = bytearray()
        self.started = time.monotonic()
        self.stderr = b""


def _worker(path: Path, notebooks: list[Path], limits: Limits, fd: int) -> None:
    """A forked learner process: copy, confine, run every notebook, write the JSON, leave."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from ..exercises import sandbox

        workdir = Path(tempfile.mkdtemp(prefix="mnist-course-grade-"))
        try:
            try:  # from here on this process reads the Python installation and the learner, writes its folder
                sandbox.landlock([*sandbox.read_roots(proc=True), path], [workdir, Path("/dev/null")])
            except OSError:
                pass
            result = run_learner(path, limits, workdir=workdir, notebooks=notebooks)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        data = (json.dumps({"event": "learner", "result": result}) + "\n").encode()
    except BaseException as e:  # noqa: BLE001 (the grader reports it in the learner's row)
        data = (json.dumps({"event": "failed", "message": f"{type(e).__name__}: {e}"}) + "\n").encode()
        code = 1
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os._exit(code)


def _fork_learner(learner_id: str, path: Path, notebooks: list[Path], limits: Limits) -> Job:
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _worker(path, notebooks, limits, w)
    os.close(w)
    return Job(learner_id, path, pid=pid, fd=r)


def container_engine() -> str | None:
    """podman, else docker, when one is installed (None otherwise)."""
    return next((e for e in ("podman", "docker") if shutil.which(e)), None)


def check_container(image: str) -> str:
    """The engine to run `image` with, or ValueError saying why there is none."""
    engine = container_engine()
    if engine is None:
        raise ValueError("--container needs podman or docker, and neither is installed (e.g. apt-get install "
                         "podman); without --container each learner runs in a sandboxed process instead")
    probe = [engine, "image", "exists", image] if engine == "podman" else [engine, "image", "inspect", image]
    try:
        found = subprocess.run(probe, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ValueError(f"{engine} does not answer ({e})") from None
    if found.returncode != 0:
        raise ValueError(f"{engine} has no image {image!r}: build it (docs/instructors.md, 'Grading in "
                         f"containers') or pull it; {engine} said: {found.stderr.decode(errors='replace').strip()[:200]}")
    return engine


def container_command(engine: str, image: str, path: Path, limits: Limits) -> list[str]:
    """One learner in a container: no network, the submission read-only, a read-only root file
    system with a small /tmp, memory and CPU limits, no capabilities; inside, mnist-course status
    --json runs the same sandboxed runner."""
    inside = f"/submission/{path.name}"
    return [engine, "run", "--rm", "--network=none", f"--memory={limits.memory_mb + 1536}m", "--cpus=1",
            "--pids-limit=256", "--read-only", "--tmpfs=/tmp:rw,size=512m", "--cap-drop=ALL",
            "--security-opt=no-new-privileges", "-e", "HOME=/tmp", "-e", "MNIST_COURSE_PROGRESS=0",
            "-v", f"{path.resolve()}:{inside}:ro", image,
            "mnist-course", "status", "--json", "--timeout", f"{limits.timeout:g}", "--memory", str(limits.memory_mb),
            inside]


def _start_container(learner_id: str, path: Path, engine: str, image: str, limits: Limits) -> Job:
    proc = subprocess.Popen(container_command(engine, image, path, limits), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return Job(learner_id, path, proc=proc, fd=proc.stdout.fileno())


def _finish(job: Job) -> dict:
    """The learner's result from what its process wrote; {"error": ...} when there is none."""
    if job.proc is not None:
        job.stderr = job.proc.stderr.read()[-2000:]
        code = job.proc.wait()
        text = job.buffer.decode("utf-8", "replace").strip()
        if code in (0, 1) and text:
            try:
                data = json.loads(text.splitlines()[-1])
                return {**data, "container": True}
            except ValueError:
                pass
        why = job.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return {"error": f"the container ended with exit code {code}: {why[0][:300]}"}
    _, status = os.waitpid(job.pid, 0)
    for line in job.buffer.decode("utf-8", "replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "learner":
            return event["result"]
        if event.get("event") == "failed":
            return {"error": f"the grader's process for this learner failed: {event.get('message')}"}
    how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"
    return {"error": f"the grader's process for this learner ended ({how}) without results"}


def _kill(job: Job) -> None:
    try:
        if job.proc is not None:
            job.proc.kill()
            job.proc.wait()
        else:
            os.kill(job.pid, signal.SIGKILL)
            os.waitpid(job.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def grade_learners(learners: list[tuple[str, Path]], limits: Limits, jobs: int = 2, image: str | None = None,
                   engine: str | None = None, log=print) -> dict[str, dict]:
    """Grade every (id, path) learner, `jobs` at a time; learner id -> run_learner's result (or
    {"error": why}). log(line) reports each learner as it finishes."""
    paths = [p for _, p in learners]
    todo = list(learners)
    running: dict[int, Job] = {}
    results: dict[str, dict] = {}
    sel = selectors.DefaultSelector()
    backstop = {lid: (len(learner_notebooks(p, paths)) * 12 + 4) * limits.timeout + 120 for lid, p in learners}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                learner_id, path = todo.pop(0)
                notebooks = learner_notebooks(path, paths)
                job = (_start_container(learner_id, path, engine, image, limits) if image
                       else _fork_learner(learner_id, path, notebooks, limits))
                running[job.fd] = job
                sel.register(job.fd, selectors.EVENT_READ, job)
            for key, _ in sel.select(timeout=1.0):
                job = key.data
                data = os.read(job.fd, 1 << 16)
                if data:
                    job.buffer += data
                    continue
                sel.unregister(job.fd)
                del running[job.fd]
                result = _finish(job)
                if job.proc is None:
                    os.close(job.fd)
                result["wall_seconds"] = round(time.monotonic() - job.started, 3)
                results[job.id] = result
                log(_progress_line(len(results), len(learners), job.id, result))
            for job in list(running.values()):
                if time.monotonic() - job.started > backstop[job.id]:
                    sel.unregister(job.fd)
                    del running[job.fd]
                    _kill(job)
                    results[job.id] = {"error": f"still running after {backstop[job.id]:.0f} s: stopped",
                                       "wall_seconds": round(time.monotonic() - job.started, 3)}
                    log(_progress_line(len(results), len(learners), job.id, results[job.id]))
    except BaseException:
        for job in running.values():
            _kill(job)
        raise
    finally:
        sel.close()
    return results


def _progress_line(done: int, total: int, learner_id: str, result: dict) -> str:
    if "error" in result:
        return f"[{done}/{total}] {learner_id}: not graded: {result['error']}"
    counts = Counter(o["status"] for run in result.get("notebooks", []) for o in run["outcomes"])
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    return f"[{done}/{total}] {learner_id}: {parts or 'no exercises'} ({result.get('wall_seconds', 0):.1f} s)"


# ------------------------------------------------------------------------------ the gradebook


def _exercise_columns(results: dict[str, dict]) -> list[str]:
    """Every exercise of every course notebook that some learner handed in, and every exercise id
    that some notebook checks, in the registry's order."""
    numbers, ids = set(), set()
    for result in results.values():
        for run in result.get("notebooks", []):
            if run.get("notebook"):
                numbers.add(run["notebook"])
            ids.update(o["exercise"] for o in run["outcomes"])
    ids |= {ex.id for n in numbers for ex in exercises_of(n)}
    return [i for i in EXERCISES if i in ids]


def learner_row(learner_id: str, path: str, result: dict, columns: list[str]) -> dict:
    """One learner's gradebook entry: grades per exercise, total, flags, notes, time and runs."""
    grades, messages, flags, seen = {}, {}, [], {}
    for run in result.get("notebooks", []):
        flags += [f"{run['file']}: {f}" for f in run["flags"]]
        if run.get("error"):
            flags.append(f"{run['file']}: {run['error']}")
        for o in run["outcomes"]:
            flags += [f"{run['file']}: {f}" for f in o.get("flags", [])]
            ex = o["exercise"]
            if ex in seen and o["status"] == "missing":
                continue
            if ex in seen and grades[ex] != "missing":
                flags.append(f"{ex} is checked in {seen[ex]} and in {run['file']}: the first counts")
                continue
            seen[ex] = run["file"]
            grades[ex], messages[ex] = o["status"], o["message"]
    error = result.get("error")
    for ex in columns:
        if ex not in grades:
            grades[ex] = "error" if error else "missing"
            messages[ex] = error or "no notebook of this learner checks it"
    return {"id": learner_id, "path": path, "grades": {ex: grades[ex] for ex in columns},
            "messages": {ex: messages[ex] for ex in columns},
            "total": sum(grades[ex] == "pass" for ex in columns), "flags": list(dict.fromkeys(flags)),
            "notes": result.get("notes", []), "error": error, "seconds": result.get("seconds"),
            "wall_seconds": result.get("wall_seconds"), "notebooks": result.get("notebooks", []),
            "container": bool(result.get("container"))}


def write_gradebook(out: Path, book: dict) -> list[Path]:
    """OUT/gradebook.json and OUT/gradebook.csv (atomically)."""
    columns = book["exercises"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["learner", *columns, "total", "flags", "seconds"])
    for row in book["learners"]:
        writer.writerow([row["id"], *(row["grades"][c] for c in columns), row["total"], len(row["flags"]),
                         "" if row["wall_seconds"] is None else f"{row['wall_seconds']:.2f}"])
    paths = [atomic_write(out / "gradebook.json", json.dumps(book, indent=1) + "\n"),
             atomic_write(out / "gradebook.csv", buf.getvalue())]
    return paths


def mistake_name(message: str) -> str:
    """The named mistake in a check's message: without the case it was seen on, the hint pointer
    and the numbers (so the same mistake on other numbers counts once)."""
    text = message.split("  [hint(")[0].strip()
    if ": " in text:
        text = text.split(": ", 1)[1]
    text = re.sub(r"(?<![\w.])[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
    return text[:240]


# ------------------------------------------------------------------------------ the report


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .2em .55em; border-bottom: 1px solid #eee;
  text-align: left; vertical-align: top; } th { background: #f6f6f6; }
td.pass { background: #dff3e0; } td.fail { background: #fde2e0; } td.error { background: #fbe6c8; }
td.timeout { background: #e9dcf5; } td.missing { background: #eeeeee; color: #666; }
.num { text-align: right; font-variant-numeric: tabular-nums; } .small { font-size: .85em; color: #555; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; max-height: 24em; white-space: pre-wrap; }
.flag { color: #8a4b00; } img { max-width: 100%; }
"""


def _page(title: str, body: str, up: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head><body>{up}{body}</body></html>\n")


def _table(head: list[str], rows: list[list[str]], classes: list[list[str]] | None = None) -> str:
    """An HTML table; cells are HTML already (escape before)."""
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for r, row in enumerate(rows):
        cls = classes[r] if classes else [""] * len(row)
        out.append("<tr>" + "".join(f'<td class="{c}">{cell}</td>' for cell, c in zip(row, cls)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def pass_rate_plot(book: dict) -> str:
    """The share of learners per status, for every exercise, as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns, learners = book["exercises"], book["learners"]
    colors = {"pass": "#4caf50", "fail": "#e53935", "error": "#fb8c00", "timeout": "#8e24aa", "missing": "#bdbdbd"}
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(columns) + 1.4))
    left = [0.0] * len(columns)
    for status in STATUSES:
        share = [100 * sum(r["grades"][c] == status for r in learners) / max(1, len(learners)) for c in columns]
        ax.barh(range(len(columns)), share, left=left, color=colors[status], label=status)
        left = [a + b for a, b in zip(left, share)]
    ax.set_yticks(range(len(columns)), [f"{c} {EXERCISES[c].function}" for c in columns], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of the {len(learners)} learners")
    ax.legend(ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _slug(learner_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", learner_id).strip("._") or "learner"
    slug, n = base, 2
    while slug.lower() in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug.lower())
    return slug


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def write_report(out: Path, book: dict) -> list[Path]:
    """OUT/report.html and OUT/learners/<id>.html, offline (the plot is inside the page)."""
    e = html.escape
    columns, learners = book["exercises"], book["learners"]
    taken: set[str] = set()
    slugs = {r["id"]: _slug(r["id"], taken) for r in learners}
    n = max(1, len(learners))
    written = []

    head = (f"<h1>Gradebook: {len(learners)} learners, {len(columns)} exercises</h1>"
            f'<p class="small">Graded {e(book["graded_at"])} from {e(book["submissions"])}'
            f'{" (shard " + e(book["shard"]) + ")" if book.get("shard") else ""}; '
            f'{book["wall_seconds"]:.0f} s wall time, {book["jobs"]} at a time; limits per notebook run: '
            f'{book["limits"]["timeout"]:g} s, {book["limits"]["memory_mb"]} MB; sandbox: {e(_sandbox_words(book))}. '
            f'Files: <a href="gradebook.csv">gradebook.csv</a>, <a href="gradebook.json">gradebook.json</a>.</p>')

    rows, classes = [], []
    for c in columns:
        counts = Counter(r["grades"][c] for r in learners)
        rows.append([e(c), e(EXERCISES[c].function), e(EXERCISES[c].title),
                     f'{100 * counts["pass"] / n:.0f} %', *(str(counts[s]) for s in STATUSES)])
        classes.append(["", "", "", "num", *(["num"] * len(STATUSES))])
    rates = (f'<h2 id="pass-rate">Pass rate per exercise</h2><img alt="pass rate per exercise" '
             f'src="{pass_rate_plot(book)}">' + _table(["exercise", "function", "title", "pass rate", *STATUSES],
                                                        rows, classes))

    mistakes: dict[tuple[str, str], list[str]] = {}
    for r in learners:
        for c in columns:
            if r["grades"][c] == "fail":
                mistakes.setdefault((c, mistake_name(r["messages"][c])), []).append(r["id"])
    top = sorted(mistakes.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:20]
    mistake_rows = [[e(c), e(name), str(len(who)),
                     ", ".join(f'<a href="learners/{slugs[w]}.html">{e(w)}</a>' for w in who)] for (c, name), who in top]
    mistakes_html = ('<h2 id="mistakes">Most common mistakes</h2><p class="small">The mistakes the checks name, '
                     "counted over the class (numbers in a message count as one).</p>"
                     + (_table(["exercise", "mistake", "learners", "who"], mistake_rows) if top else "<p>None.</p>"))

    flagged = [r for r in learners if r["flags"] or r["error"]]
    flag_rows = [[f'<a href="learners/{slugs[r["id"]]}.html">{e(r["id"])}</a>',
                  "<br>".join(e(f) for f in ([r["error"]] if r["error"] else []) + r["flags"][:8])
                  + (f' <span class="small">(+{len(r["flags"]) - 8} more)</span>' if len(r["flags"]) > 8 else "")]
                 for r in flagged]
    flags_html = ('<h2 id="flags">Integrity and limits</h2><p class="small">Answers that call the reference solutions '
                  "or the library's own implementation, exercise cells deleted, renamed, retyped or reordered, code "
                  "the sandbox stopped, large output.</p>"
                  + (_table(["learner", "flags"], flag_rows) if flagged else "<p>Nothing flagged.</p>"))

    times: dict[str, list[tuple[float, str]]] = {}
    for r in learners:
        for run in r["notebooks"]:
            key = run.get("notebook") or run["file"]
            times.setdefault(key, []).append((run["seconds"], r["id"]))
    time_rows = [[e(k), str(len(v)), f"{_median([s for s, _ in v]):.2f}", f"{max(v)[0]:.2f}", e(max(v)[1])]
                 for k, v in sorted(times.items())]
    times_html = ('<h2 id="time">Time per notebook</h2>'
                  + _table(["notebook", "learners", "median s", "max s", "slowest"], time_rows,
                           [["", "num", "num", "num", ""]] * len(time_rows)))

    learner_rows, learner_classes = [], []
    for r in learners:
        learner_rows.append([f'<a href="learners/{slugs[r["id"]]}.html">{e(r["id"])}</a>', str(r["total"]),
                             *(e(r["grades"][c]) for c in columns), str(len(r["flags"])),
                             "" if r["wall_seconds"] is None else f'{r["wall_seconds"]:.1f}'])
        learner_classes.append(["", "num", *(r["grades"][c] for c in columns), "num", "num"])
    learners_html = ('<h2 id="learners">Learners</h2>'
                     + _table(["learner", "total", *(e(c) for c in columns), "flags", "s"], learner_rows,
                              learner_classes))
    written.append(atomic_write(out / "report.html", _page("Gradebook", head + rates + mistakes_html + flags_html
                                                          + times_html + learners_html)))
    (out / "learners").mkdir(exist_ok=True)
    for r in learners:
        written.append(atomic_write(out / "learners" / f"{slugs[r['id']]}.html", _learner_page(r, columns)))
    return written


def _sandbox_words(book: dict) -> str:
    info = book.get("sandbox") or {}
    if book.get("container"):
        return f"a container per learner ({book['container']}) with the runner's limits inside"
    parts = ["a process per notebook" if info.get("fork") else "no fork: in process, no limits"]
    if info.get("landlock_abi"):
        parts.append(f"Landlock ABI {info['landlock_abi']}")
    if info.get("rlimits"):
        parts.append("rlimits")
    parts.append(f"user {info.get('user', '?')}")
    return ", ".join(parts)


def _learner_page(r: dict, columns: list[str]) -> str:
    e = html.escape
    body = [f'<h1>{e(r["id"])}</h1><p class="small">{e(r["path"])}: {r["total"]} of {len(columns)} exercises pass'
            + (f'; graded in {r["wall_seconds"]:.1f} s' if r["wall_seconds"] is not None else "") + "</p>"]
    if r["error"]:
        body.append(f'<p class="flag">Not graded: {e(r["error"])}</p>')
    rows = [[e(c), e(EXERCISES[c].function), e(r["grades"][c]), e(r["messages"][c])] for c in columns]
    body.append(_table(["exercise", "function", "status", "message"], rows,
                       [["", "", r["grades"][c], ""] for c in columns]))
    if r["flags"]:
        body.append("<h2>Flags</h2><ul>" + "".join(f'<li class="flag">{e(f)}</li>' for f in r["flags"]) + "</ul>")
    for note in r["notes"]:
        body.append(f'<p class="small">{e(note)}</p>')
    for run in r["notebooks"]:
        body.append(f'<h2>{e(run["file"])}</h2><p class="small">{run["seconds"]:.2f} s, {run["processes"]} '
                    f'process{"es" if run["processes"] != 1 else ""}</p>')
        if run.get("error"):
            body.append(f'<p class="flag">{e(run["error"])}</p>')
        rows = [[e(o["exercise"]), e(o["status"]), e(o["message"]), f'{o.get("seconds", 0):.2f}'] for o in run["outcomes"]]
        body.append(_table(["exercise", "status", "message", "s"], rows,
                           [["", o["status"], "", "num"] for o in run["outcomes"]]))
        for note in run.get("notes", []):
            body.append(f'<p class="small">{e(note)}</p>')
        if run["output_bytes"]:
            kept = len(run["output"].encode())
            more = f" (first {kept:,} of {run['output_bytes']:,} bytes)" if run["output_bytes"] > kept else ""
            body.append(f"<details><summary>Output{more}</summary><pre>{e(run['output'])}</pre></details>")
    return _page(f"{r['id']}: gradebook", "".join(body), '<p class="small"><a href="../report.html">← the class</a></p>')


# ------------------------------------------------------------------------------ the command


def build_book(rows: list[dict], columns: list[str], **info) -> dict:
    return {"version": GRADEBOOK_VERSION, "exercises": columns, "statuses": list(STATUSES), **info,
            "learners": sorted(rows, key=lambda r: r["id"])}


def _refuse_existing(out: Path, force: bool) -> str | None:
    if (out / "gradebook.csv").exists() or (out / "gradebook.json").exists():
        if not force:
            return (f"{out} already holds a gradebook: choose another --out, or add --force to replace it "
                    "(hand edits to gradebook.csv would be lost)")
    elif out.exists() and not out.is_dir():
        return f"{out} is a file, not a folder: choose another --out"
    return None


def merge(sources: list[Path], out: Path) -> dict:
    """One gradebook from several (the shards of one class): learners joined, exercises united."""
    books = []
    for s in sources:
        path = s / "gradebook.json" if s.is_dir() else s
        try:
            books.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a gradebook ({e}); --merge takes the --out folders of mnist-course grade") from None
    ids = Counter(r["id"] for b in books for r in b["learners"])
    twice = [i for i, k in ids.items() if k > 1]
    if twice:
        raise ValueError(f"learners in more than one gradebook: {', '.join(sorted(twice)[:5])}: merge each shard once")
    columns = [i for i in EXERCISES if any(i in b["exercises"] for b in books)]
    rows = []
    for b in books:
        for r in b["learners"]:
            for c in columns:
                r["grades"].setdefault(c, "missing")
                r["messages"].setdefault(c, "not in this learner's shard's exercises")
            r["grades"] = {c: r["grades"][c] for c in columns}
            r["total"] = sum(v == "pass" for v in r["grades"].values())
            rows.append(r)
    first = books[0]
    return build_book(rows, columns, graded_at=first["graded_at"], submissions=first["submissions"],
                      shard=f"{len(books)} shards merged", wall_seconds=sum(b["wall_seconds"] for b in books),
                      jobs=first["jobs"], limits=first["limits"], sandbox=first.get("sandbox"),
                      container=first.get("container"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-course grade",
        description="Grade a class's notebooks in sandboxed processes (or containers): gradebook.csv, "
                    "gradebook.json and an offline report.html in OUT.")
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSIONS",
                        help="a folder with one folder (or notebook) per learner, at any depth")
    parser.add_argument("--out", required=True, metavar="OUT", help="the folder for the gradebook and report")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="learners graded at a time (default 2)")
    parser.add_argument("--timeout", type=float, default=Limits.timeout, metavar="S",
                        help=f"wall seconds per notebook run (default {Limits.timeout:g})")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, metavar="MB",
                        help=f"memory a notebook's checks may add, in MB (default {Limits.memory_mb})")
    parser.add_argument("--shard", metavar="i/N", help="grade only every N-th learner from the i-th (one batch job of N)")
    parser.add_argument("--container", metavar="IMAGE",
                        help="each learner in a container of IMAGE (podman or docker): no network, read-only inputs")
    parser.add_argument("--merge", action="store_true",
                        help="SUBMISSIONS are the OUT folders of earlier runs (shards): join their gradebooks")
    parser.add_argument("--force", action="store_true", help="replace a gradebook already in OUT")
    args = parser.parse_args(argv)
    out = Path(args.out)
    refused = _refuse_existing(out, args.force)
    if refused:
        parser.error(refused)
    if not args.submissions:
        parser.error("name the submissions folder, e.g. mnist-course grade submissions/ --out graded/")
    if args.jobs < 1 or args.timeout <= 0 or args.memory <= 0:
        parser.error("--jobs, --timeout and --memory must be positive")
    for s in args.submissions:
        if not Path(s).exists():
            parser.error(f"{s}: no such file or folder")
    if args.merge:
        try:
            book = merge([Path(s) for s in args.submissions], out)
        except ValueError as e:
            parser.error(str(e))
        out.mkdir(parents=True, exist_ok=True)
        write_gradebook(out, book)
        write_report(out, book)
        print(f"merged {len(book['learners'])} learners: {out / 'gradebook.csv'}, {out / 'report.html'}")
        return 0
    if len(args.submissions) != 1:
        parser.error("grade one submissions folder at a time (or use --merge with the OUT folders of shards)")
    root = Path(args.submissions[0])
    learners = find_learners(root)
    if not learners:
        parser.error(f"{root}: no notebook (.ipynb) in it, at any depth: nothing to grade")
    try:
        learners = shard(learners, args.shard)
    except ValueError as e:
        parser.error(str(e))
    engine = None
    if args.container:
        try:
            engine = check_container(args.container)
        except ValueError as e:
            print(f"mnist-course grade: {e}", file=sys.stderr)
            return 2
    elif not hasattr(os, "fork"):
        parser.error("grading needs fork (Linux, macOS); on Windows use --container IMAGE or WSL")
    limits = Limits(timeout=args.timeout, memory_mb=args.memory)
    where = f"in containers of {args.container} ({engine})" if args.container else "in sandboxed processes"
    print(f"grading {len(learners)} learners from {root} {where}, {args.jobs} at a time, "
          f"{limits.timeout:g} s and {limits.memory_mb} MB per notebook run", file=sys.stderr)
    t0 = time.monotonic()
    if not args.container:
        warm_up()
    try:
        results = grade_learners(learners, limits, args.jobs, args.container, engine,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("mnist-course grade: interrupted; nothing written", file=sys.stderr)
        return 130
    columns = _exercise_columns(results)
    rows = [learner_row(lid, str(path.relative_to(root)) if path != root else path.name, results[lid], columns)
            for lid, path in learners]
    wall = time.monotonic() - t0
    book = build_book(rows, columns, graded_at=time.strftime("%Y-%m-%d %H:%M:%S"), submissions=str(root.resolve()),
                      shard=args.shard, wall_seconds=round(wall, 2), jobs=args.jobs,
                      limits={"timeout": limits.timeout, "memory_mb": limits.memory_mb, "file_mb": limits.file_mb,
                              "output_kb": limits.output_kb},
                      sandbox=sandbox_info(), container=args.container)
    out.mkdir(parents=True, exist_ok=True)
    write_gradebook(out, book)
    write_report(out, book)
    failed = [r["id"] for r in rows if r["error"]]
    print(f"graded {len(rows) - len(failed)} of {len(rows)} learners in {wall:.0f} s: {out / 'gradebook.csv'}, "
          f"{out / 'report.html'}" + (f"; not graded: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
