"""The instructor's batch run: every notebook executed with papermill in fast mode, from another
directory, into a temporary folder; then the results file and figures are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mnist_course as mc
from mnist_course.course import course_notebooks

pytestmark = pytest.mark.slow


def test_course_runs_every_notebook_in_fast_mode(tmp_path):
    out, figures, results = tmp_path / "executed", tmp_path / "figures", tmp_path / "results.json"
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_PROGRESS="0", MPLBACKEND="Agg",
               MNIST_COURSE_FIGURES=str(figures), MNIST_COURSE_RESULTS=str(results))
    env.setdefault("MNIST_COURSE_MODELS", str(tmp_path / "models"))
    tracked = mc.repo_root() / "results" / "results.json"
    tracked_before = tracked.read_bytes()
    # Started from an unrelated directory, as an instructor's script would be.
    proc = subprocess.run([sys.executable, "-m", "mnist_course.course", "--output", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    notebooks = course_notebooks()
    entries = json.loads(results.read_text())["results"].values()
    for nb in notebooks:
        assert (out / nb.name).is_file(), f"{nb.name} was not written"
        executed = json.loads((out / nb.name).read_text())
        assert not [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert any(e["notebook"] == nb.stem for e in entries), f"{nb.name} recorded no result"
        assert list(figures.glob(f"{nb.name[:2]}_*.png")), f"{nb.name} saved no figure"
    assert all(e["mode"] == "fast" for e in entries)
    assert tracked.read_bytes() == tracked_before, "a fast run must not touch results/results.json"


def test_course_runner_rejects_unknown_notebook(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mnist_course.course", "--only", "99", "--output", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "matches no notebook" in proc.stderr
