"""The instructor's batch run: every notebook executed with papermill in fast mode, from another
directory, into a temporary folder; then the results file and figures are checked, and that the
run changed none of the course's tracked figures/ and results/ nor its models/ folder."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mnist_course as mc
from mnist_course.tooling.runner import course_notebooks

pytestmark = pytest.mark.slow

KEPT_RUN = mc.repo_root() / "build" / "test" / "fast-run"  # this test's run, kept for tests/test_site.py


def snapshot(*folders: Path) -> dict[str, str]:
    """{path: sha256} of every file under the folders (recursively)."""
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest()
            for folder in folders if folder.is_dir() for f in sorted(folder.rglob("*")) if f.is_file()}


def top_level(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("*") if f.is_file()}


def test_course_runs_every_notebook_in_fast_mode(tmp_path):
    out, figures, results = tmp_path / "executed", tmp_path / "figures", tmp_path / "results.json"
    shutil.rmtree(KEPT_RUN, ignore_errors=True)  # a failed run leaves none for tests/test_site.py
    # Figures as outputs (the inline backend, as in `make course`): tests/test_site.py shows them.
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_PROGRESS="0",
               MPLBACKEND="module://matplotlib_inline.backend_inline",
               MNIST_COURSE_FIGURES=str(figures), MNIST_COURSE_RESULTS=str(results))
    env.pop("MNIST_COURSE_RECORD", None)
    temp = tmp_path / "tmp"  # the notebooks' temporary files: nothing may be left behind (notebook 12 once was)
    temp.mkdir()
    env["TMPDIR"] = str(temp)
    env.setdefault("MNIST_COURSE_MODELS", str(tmp_path / "models"))  # CI: build/test/models, reused by test_browser
    models = mc.settings.resolve_path(env["MNIST_COURSE_MODELS"])
    root = mc.repo_root()
    course_files = snapshot(root / "figures", root / "results", root / "models")
    models_before = top_level(models) if models.is_dir() else {}
    # Started from an unrelated directory, as an instructor's script would be.
    # SOLVE=True fills every exercise with its reference solution: every check must pass. (nbval runs
    # the untouched notebooks, where every exercise is "not attempted yet" and nothing stops.)
    proc = subprocess.run([sys.executable, "-m", "mnist_course", "course", "--output", str(out), "-p", "SOLVE", "True"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    notebooks = course_notebooks()
    entries = json.loads(results.read_text())["results"].values()
    for nb in notebooks:
        assert (out / nb.name).is_file(), f"{nb.name} was not written"
        executed = json.loads((out / nb.name).read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        printed = "".join("".join(o["text"]) for c in executed["cells"] for o in c.get("outputs", [])
                          if o.get("output_type") == "stream")  # stored as a list of lines
        checked = {exercise_id for exercise_id, _ in mc.exercises.check_calls(nb)}
        passed = set(re.findall(r"^✓ (\d\d\.\d+) ", printed, re.M))
        assert checked and passed == checked, f"{nb.name}: with SOLVE=True these checks did not pass: {checked - passed}"
        assert any(e["notebook"] == nb.stem for e in entries), f"{nb.name} recorded no result"
        assert list(figures.glob(f"{nb.name[:2]}_*.png")), f"{nb.name} saved no figure"
    assert all(e["mode"] == "fast" and e["dataset"] == "mnist" and e["seed"] == 0 for e in entries)
    assert snapshot(root / "figures", root / "results", root / "models") == course_files, \
        "a fast run must not touch figures/, results/ or models/"
    assert top_level(models) == models_before, "fast-mode models belong in <models>/fast, not beside the full ones"
    assert (models / "fast" / "course_cnn.safetensors").is_file(), "fast-mode course models belong in <models>/fast"
    left = sorted(p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_"))  # PyTorch's own cache
    assert not left, f"the notebooks left temporary files behind: {left}"
    # Keep the run: tests/test_site.py builds the website from it instead of running the course again.
    shutil.copytree(out, KEPT_RUN / "notebooks")
    shutil.copytree(figures, KEPT_RUN / "figures")
    shutil.copyfile(results, KEPT_RUN / "results.json")


def test_course_runner_rejects_unknown_notebook(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mnist_course", "course", "--only", "99", "--output", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "matches no notebook" in proc.stderr
