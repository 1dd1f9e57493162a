"""The `mnist-course` command: every tool one subcommand, each with its own --help, imported only
when used; `python -m mnist_course` is the same command; the Makefile and the notebooks name only
commands that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mnist_course.tooling import cli

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["lab", "course", "status", "grade", "train", "export", "serve", "site", "bench", "readme", "nbrefs", "words"]
EVERY = [*NAMES, "bench pictures", "bench calibrate"]


def test_help_lists_every_command_with_a_line_each(capsys):
    assert list(cli.COMMANDS) == NAMES
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in EVERY:
        line = re.search(rf"^  {name} +(\S.*)$", out, re.M)
        assert line, f"mnist-course --help does not list {name!r}:\n{out}"
    assert "python -m mnist_course" in out


def test_no_command_prints_the_help(capsys):
    assert cli.main([]) == 0
    assert "commands:" in capsys.readouterr().out


@pytest.mark.parametrize("command", EVERY)
def test_each_command_has_its_own_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    assert f"usage: mnist-course {command} " in capsys.readouterr().out


def test_an_unknown_command_names_the_commands(capsys):
    assert cli.main(["stauts"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'stauts'" in err and "did you mean 'status'" in err
    assert ", ".join(NAMES) in err


def test_python_dash_m_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "mnist_course", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in EVERY)
    bad = subprocess.run([sys.executable, "-m", "mnist_course", "nope"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "unknown command 'nope'" in bad.stderr


def test_the_console_script_is_declared_and_installed():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mnist-course": "mnist_course.tooling.cli:main"}
    script = Path(sysconfig.get_path("scripts")) / "mnist-course"
    if not script.exists():
        pytest.fail(f"{script} is missing: reinstall the package (pip install -e .) after changing pyproject.toml")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "bench calibrate" in out.stdout


HEAVY = ("torch", "papermill", "fastapi", "uvicorn", "onnx", "onnxruntime", "jupyterlab", "matplotlib")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_help_imports_no_command_module():
    """`mnist-course --help` adds nothing heavy to what `import mnist_course` already loads."""
    base = _modules_after("import mnist_course")
    after = _modules_after("from mnist_course.tooling.cli import main; main(['--help'])")
    added = after - base
    ours = sorted(m for m in added if m.startswith("mnist_course."))
    assert ours == ["mnist_course.tooling", "mnist_course.tooling.cli"]
    assert not [m for m in added if m.split(".")[0] in HEAVY]


def test_help_does_not_import_torch():  # the package loads data/utils (torch) on first use only
    assert "torch" not in _modules_after("from mnist_course.tooling.cli import main; main(['--help'])")


# ----------------------------------------------------------------------------------------- status


@pytest.fixture()
def status_calls(monkeypatch):
    """The arguments `mnist-course status` hands to the exercises' progress command."""
    from mnist_course.exercises import status

    calls = []
    monkeypatch.setattr(status, "main", lambda argv: calls.append(argv) or 0)
    return calls


def test_status_reads_my_notebooks_then_notebooks_then_here(status_calls, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # nothing to read
        cli.main(["status"])
    assert exit_info.value.code == 2 and "no my-notebooks/ or notebooks/" in capsys.readouterr().err
    (tmp_path / "01_a.ipynb").write_text("{}")  # e.g. JupyterLab's terminal, which starts in my-notebooks/
    assert cli.main(["status"]) == 0 and status_calls[-1] == ["--status", "."]
    (tmp_path / "notebooks").mkdir()
    assert cli.main(["status"]) == 0 and status_calls[-1] == ["--status", "notebooks"]
    (tmp_path / "my-notebooks").mkdir()
    assert cli.main(["status"]) == 0 and status_calls[-1] == ["--status", "my-notebooks"]
    assert f"reading {tmp_path / 'my-notebooks'}/" in capsys.readouterr().out


def test_status_paths_hint_and_solution(status_calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["status", "a.ipynb", "b"]) == 0 and status_calls[-1] == ["--status", "a.ipynb", "b"]
    assert cli.main(["status", "--hint", "02.1"]) == 0 and status_calls[-1] == ["--hint", "02.1"]
    assert cli.main(["status", "--solution", "02.1"]) == 0 and status_calls[-1] == ["--solution", "02.1"]


def test_status_runs_for_real_on_the_course_notebooks(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert cli.main(["status", "notebooks/01_exploring_mnist.ipynb"]) == 1  # its exercises are stubs: not all pass
    out = capsys.readouterr().out
    assert "01_exploring_mnist.ipynb" in out and "01.1" in out and "exercises pass" in out


# -------------------------------------------------------------- what the Makefile and notebooks name


def _mentioned_commands(text: str) -> set[str]:
    """COMMAND in `mnist-course COMMAND` as code (after a backtick, a quote or at a line's start)."""
    return set(re.findall(r"(?:^|[`\"'])mnist-course ([a-z][a-z-]*)", text, re.M))


def test_the_makefile_calls_only_the_command():
    makefile = (ROOT / "Makefile").read_text()
    assert "-m mnist_course" not in makefile, "the Makefile calls $(MC) COMMAND (the mnist-course command)"
    assert "MC     := $(VENV)/bin/mnist-course" in makefile
    for target in ("course", "course-fast", "lab", "benchmark", "readme", "nbval-refs", "export", "serve", "site"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert recipe and "$(MC) " in recipe.group(1), f"make {target} does not call mnist-course"
    course = re.search(r"^course:.*\n((?:\t.*\n)+)", makefile, re.M).group(1).splitlines()
    assert "$(MC) readme --update" in course[-2] and "$(MC) nbrefs --check" in course[-1]
    assert "--help" in re.search(r"^help:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert set(re.findall(r"\$\(MC\) ([a-z][a-z-]*)", makefile)) <= set(NAMES)


def test_the_notebooks_name_only_commands_that_exist():
    seen = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            text = "".join(cell["source"])
            stale = re.findall(r"python -m mnist_course\.\w+", text)
            assert not stale, f"{path.name}: {stale} is gone; the command is mnist-course COMMAND"
            unknown = _mentioned_commands(text) - set(NAMES)
            assert not unknown, f"{path.name} mentions mnist-course {sorted(unknown)}, which is no command"
            seen |= _mentioned_commands(text)
    assert {"status", "course", "train"} <= seen
