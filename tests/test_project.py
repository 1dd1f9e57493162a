"""Project files and the notebook policy: only the cells nbval checks keep outputs in git (its
references), no errors, python3 kernel, the conventions of CONTRIBUTING.md; environment.yml in step
with pyproject.toml; the licence; no file that speaks of an issue tracker's numbers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import nbformat
import pytest
import yaml

import mnist_course as mc
from mnist_course.tooling.nbrefs import comparable, is_checked

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = mc.repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_they_are_numbered():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    for nb in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", nb.name), f"{nb.name}: name notebooks NN_words.ipynb"
    numbers = [nb.name[:2] for nb in NOTEBOOKS]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {numbers}"


def _code(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_policy(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3", "kernelspec must be python3"
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert "sys.path" not in _code(cell), f"cell {i}: import mnist_course (pip install -e .), no sys.path tricks"
    first = _code(code_cells[0])
    assert "import mnist_course" in first and "__version__" in first, "first code cell must import mnist_course and print its version"
    params = [c for c in code_cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (for papermill)"
    for name in ("SEED", "FAST", "DATASET", "FIGURES", "RESULTS"):
        assert re.search(rf"^{name}\s*=", _code(params[0]), re.M), f"parameters cell lacks {name}"
    assert any("mc.setup_notebook(" in _code(c) for c in code_cells), "call mc.setup_notebook(...) after the parameters"
    assert any("save_figure(" in _code(c) for c in code_cells), "every notebook saves at least one figure"
    assert any("results.record(" in _code(c) for c in code_cells), "every notebook records its headline numbers"


# Text that changes from machine to machine or run to run: absolute paths, timings and rates,
# versions, devices, memory addresses.
MACHINE_DEPENDENT = re.compile(
    r"(?:^|[\s'\"(=])(?:/|~/|[A-Za-z]:\\)\w+|\b\d+(?:\.\d+)?\s?(?:s|ms|µs|sec|seconds|min|minutes)\b|"
    r"/s\b|\b\d+\.\d+\.\d+|\b(?:cpu|cuda|mps)\b|\b0x[0-9a-f]{6,}", re.I)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_checked_cells_keep_outputs(path):
    """nbval compares a cell's stored outputs only when it has an execution count: the cells marked
    `# NBVAL_CHECK_OUTPUT` keep theirs (`make nbval-refs` stores them), all others are stripped."""
    refresh = "run `make nbval-refs` (after changing a checked cell) or clear the outputs of unchecked cells"
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for n, cell in enumerate(code):  # n: nbval's "Cell n"
        where = f"{path.name}::Cell {n}"
        if not is_checked(cell):
            assert not cell.outputs and cell.execution_count is None, f"{where} is not checked but has outputs: {refresh}"
            continue
        assert cell.source.startswith("# NBVAL_CHECK_OUTPUT\n"), f"{where}: put `# NBVAL_CHECK_OUTPUT` on the first line"
        compared = comparable(cell.outputs)
        assert compared and cell.execution_count is not None, (
            f"{where} is checked but holds no reference nbval would compare: {refresh}; "
            "a cell that prints nothing (or only a picture) should not be marked")
        assert "stderr" not in compared, f"{where}: stderr (a warning?) in a checked cell: {compared['stderr']}"
        for key, values in compared.items():
            for value in values:
                found = MACHINE_DEPENDENT.search(str(value))
                assert not found, (f"{where}: {key} holds {found.group()!r}, which depends on the machine or the "
                                   "run (path, timing, version, device): print it in an unchecked cell")


def test_no_error_outputs_anywhere():
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            assert not errors, f"{path.name} holds an error output"


def test_environment_yml_follows_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    conda = [d for d in deps if isinstance(d, str)]
    assert pip_sections == [["-e .[dev]"]], "environment.yml must install the project with `pip: -e .[dev]` only"
    assert sorted(d.split(">")[0].split("=")[0] for d in conda) == ["pip", "python"], (
        "environment.yml may list only python and pip; put packages in pyproject.toml")
    python = next(d for d in conda if d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"], "python version differs from requires-python"


def test_pyproject_has_lower_bounds_not_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
        requirement = dep.split(";")[0]  # an environment marker may compare versions
        assert "==" not in requirement and "<" not in requirement, f"{dep}: declare lower bounds, not pins"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make course" in readme
    assert re.search(r"^\s*(exec )?make test\s*$", ci, re.M), ".ci/run must call the README's test command"


def test_package_version_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert mc.__version__ == project["version"]


def test_license_is_mit_in_both_places():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project.get("license-files") == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the mnist-course authors" in text


# "issue" followed by a number: the reader of a file has no issue tracker to look it up in.
ISSUE_NUMBER = re.compile(r"\bissues?[\s#_-]*\d+", re.I)


def _project_files() -> list[str]:
    """Tracked files, and new ones git does not ignore (they will be tracked once committed)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return sorted({name for name in out.decode().split("\0") if name})


def test_no_file_names_an_issue_number():
    """Say what a change is for ("before the pipeline read photographs"), not which ticket asked for it."""
    hits = []
    for name in _project_files():
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (a figure)
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if ISSUE_NUMBER.search(line):
                hits.append(f"{name}:{n}: {line.strip()[:120]}")
    assert not hits, "issue numbers in project files:\n" + "\n".join(hits)
