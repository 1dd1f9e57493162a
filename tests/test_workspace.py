"""mnist-course lab (make lab): notebooks copied once, without outputs, never overwritten, updates
reported; the JupyterLab command line and environment it starts (JupyterLab itself is not started here)."""

import json
import os
import sys
import sysconfig

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


def test_copies_carry_no_outputs(tmp_path):
    from mnist_course.settings import repo_root

    course = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    stored = [c for nb in course for c in json.loads(nb.read_text())["cells"] if c.get("outputs")]
    assert stored, "the course notebooks keep nbval references: a copy must drop them"
    report = workspace.prepare(tmp_path / "mine", repo_root() / "notebooks")
    assert report["copied"] == [nb.name for nb in course]
    for nb in course:
        copy = json.loads((tmp_path / "mine" / nb.name).read_text())
        original = json.loads(nb.read_text())
        assert [c["source"] for c in copy["cells"]] == [c["source"] for c in original["cells"]]
        for cell in copy["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{nb.name} copied with outputs"
    assert workspace.prepare(tmp_path / "mine", repo_root() / "notebooks")["updated_upstream"] == []


def test_a_course_change_only_in_outputs_is_no_update(tmp_path):
    src, dest = tmp_path / "notebooks", tmp_path / "mine"
    src.mkdir()
    cell = {"cell_type": "code", "source": ["1 + 1"], "metadata": {}, "outputs": [], "execution_count": None}
    (src / "01_a.ipynb").write_text(json.dumps({"cells": [cell]}))
    workspace.prepare(dest, src)
    cell.update(outputs=[{"output_type": "stream", "name": "stdout", "text": ["2\n"]}], execution_count=1)
    (src / "01_a.ipynb").write_text(json.dumps({"cells": [cell]}))  # new nbval references
    assert workspace.prepare(dest, src)["updated_upstream"] == []


def test_jupyterlab_runs_from_this_python_and_as_root_with_allow_root(tmp_path):
    command = workspace.jupyter_command(tmp_path, uid=1000, shell="/bin/bash")
    assert command[:4] == [sys.executable, "-m", "jupyterlab", str(tmp_path)]
    assert "--allow-root" not in command
    assert "--allow-root" in workspace.jupyter_command(tmp_path, uid=0)
    assert workspace.jupyter_command(tmp_path, ["--allow-root"], uid=0).count("--allow-root") == 1
    assert workspace.jupyter_command(tmp_path, ["--no-browser", "--port", "8889"], uid=1000)[-3:] == [
        "--no-browser", "--port", "8889"]
    if os.name == "posix":  # terminals: a plain shell, whose PATH is JupyterLab's (a login shell resets it)
        assert "--ServerApp.terminado_settings=shell_command=/bin/bash" in command


def test_jupyterlab_finds_the_course_command_first_on_path():
    scripts = sysconfig.get_path("scripts")
    env = workspace.jupyter_environment({"PATH": os.pathsep.join(["/usr/bin", scripts, "/bin"]), "HOME": "/h"})
    assert env["PATH"].split(os.pathsep) == [scripts, "/usr/bin", "/bin"] and env["HOME"] == "/h"
    assert workspace.jupyter_environment({})["PATH"] == scripts


def test_lab_options(tmp_path, capsys, monkeypatch):
    _course(tmp_path)  # tmp_path/notebooks
    monkeypatch.setattr(workspace, "repo_root", lambda: tmp_path)  # a stand-in course
    assert workspace.main(["--copy-only", "--dest", str(tmp_path / "mine")]) == 0
    assert "copied into" in capsys.readouterr().out and (tmp_path / "mine" / "01_a.ipynb").exists()
    with pytest.raises(SystemExit) as exit_info:
        workspace.main(["--copy-only", "--", "--port", "8889"])
    assert exit_info.value.code == 2 and "would be unused" in capsys.readouterr().err
