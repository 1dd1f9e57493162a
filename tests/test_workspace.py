"""make lab's learner copy: notebooks copied once, never overwritten, updates reported."""

import json

import pytest

from mnist_course.tooling import workspace


def _course(tmp_path, text="v1"):
    src = tmp_path / "notebooks"
    src.mkdir(exist_ok=True)
    for name in ("01_a.ipynb", "02_b.ipynb"):
        (src / name).write_text(json.dumps({"cells": [], "v": text}))
    (src / "scratch.ipynb").write_text("{}")  # not a course notebook: never copied
    return src


def test_copies_missing_notebooks_and_never_overwrites(tmp_path):
    src, dest = _course(tmp_path), tmp_path / "mine"
    report = workspace.prepare(dest, src)
    assert report == {"copied": ["01_a.ipynb", "02_b.ipynb"], "kept": [], "updated_upstream": []}
    assert not (dest / "scratch.ipynb").exists()
    (dest / "01_a.ipynb").write_text("my answers")  # the learner's work
    (dest / "02_b.ipynb").unlink()                   # deleted: comes back
    report = workspace.prepare(dest, src)
    assert report == {"copied": ["02_b.ipynb"], "kept": ["01_a.ipynb"], "updated_upstream": []}
    assert (dest / "01_a.ipynb").read_text() == "my answers"


def test_reports_a_course_update_without_touching_the_copy(tmp_path, capsys):
    src, dest = _course(tmp_path), tmp_path / "mine"
    workspace.prepare(dest, src)
    (dest / "01_a.ipynb").write_text("my answers")
    _course(tmp_path, text="v2")  # git pull brings new versions
    report = workspace.prepare(dest, src)
    assert report["updated_upstream"] == ["01_a.ipynb", "02_b.ipynb"]
    assert (dest / "01_a.ipynb").read_text() == "my answers"
    (dest / "01_a.ipynb").rename(dest / "01_a-mine.ipynb")  # what the note tells the learner to do
    report = workspace.prepare(dest, src)
    assert report["copied"] == ["01_a.ipynb"] and report["updated_upstream"] == ["02_b.ipynb"]
    assert json.loads((dest / "01_a.ipynb").read_text())["v"] == "v2"


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no course notebooks"):
        workspace.prepare(tmp_path / "mine", tmp_path / "empty")
    src, dest = _course(tmp_path), tmp_path / "mine"
    dest.mkdir()
    (dest / ".course-versions.json").write_text("{broken")
    with pytest.raises(ValueError, match="delete it"):
        workspace.prepare(dest, src)


def test_default_folder_is_git_ignored():
    from mnist_course.utils import repo_root

    ignored = (repo_root() / ".gitignore").read_text().split()
    assert f"{workspace.DEFAULT_DEST}/" in ignored
