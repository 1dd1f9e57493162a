"""A learner's run is private: a notebook run the way JupyterLab runs it (kernel started in
notebooks/, no MNIST_COURSE_* settings but the data root, full mode) leaves `git status` clean.

The repository's tracked files (as they are in the working tree) are copied into a temporary git
repository, and the copy's own `mnist_course` is imported (PYTHONPATH), so its repo_root() is the
copy's. Notebook 01 is the cheapest notebook in full mode (about a minute on 2 CPU cores)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mnist_course as mc

pytestmark = pytest.mark.slow

NOTEBOOK = "01_exploring_mnist.ipynb"

# Executes one notebook with nbclient as JupyterLab's "Run All" does; the executed notebook stays
# in memory (a learner who *saves* it changes the .ipynb itself: that is their edit, not the course's).
RUN_ALL = """
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, kernel_name="python3", timeout=1200,
               resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
print("executed", path)
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def copy_repository(dest: Path) -> Path:
    """The working tree's tracked files, committed in a fresh git repository at dest."""
    root = mc.repo_root()
    files = _git(root, "ls-files", "-z").split("\0")
    for name in filter(None, files):
        src = root / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "copy")
    return dest


def learner_env(repo: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_COURSE_") and k != "MPLBACKEND"}
    data = os.environ.get("MNIST_COURSE_DATA")
    if data:  # the only setting kept: where MNIST is (offline machines)
        env["MNIST_COURSE_DATA"] = data
    env["PYTHONPATH"] = str(repo)  # the copy's mnist_course, not the installed one
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_learners_full_mode_run_leaves_git_status_clean(tmp_path, mnist):
    repo = copy_repository(tmp_path / "repo")
    assert _git(repo, "status", "--porcelain") == ""
    env = learner_env(repo)
    check = subprocess.run([sys.executable, "-c", "import mnist_course as mc; print(mc.repo_root())"],
                           cwd=repo / "notebooks", env=env, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == str(repo), "the copy's own library must be imported"
    proc = subprocess.run([sys.executable, "-c", RUN_ALL, str(repo / "notebooks" / NOTEBOOK)],
                          cwd=repo / "notebooks", env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    status = _git(repo, "status", "--porcelain", "--untracked-files=all")
    assert status == "", f"a learner's run changed the repository:\n{status}"
    # ... and its outputs went to the private run folder instead.
    private = repo / "build" / "my-run"
    assert list((private / "figures").glob("01_*.png")), "notebook 01's figures are not in build/my-run/figures"
    assert (private / "results.json").is_file()
