"""Every papermill parameter a notebook declares is checked in its setup cell: `-p CPU_THREADS -1`,
`-p NUM_EPOCHS abc` or `-p FAST false` (the *string* "false") stop the notebook at once with one line
saying what is wrong and how to pass a good value, instead of failing (or, worse, running) later.

The parameters come from the notebooks' own `parameters` cells (read with nbformat), so a parameter
added to a notebook without a rule in ``utils.PARAMETERS`` fails here."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import mnist_course as mc
from mnist_course import settings as S
from mnist_course import utils

NOTEBOOKS = sorted((mc.repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SETUP = "FAST = mc.setup_notebook(SEED, FAST, FIGURES, RESULTS)"  # every notebook's setup call (test_project)


def parameters_cell(path: Path) -> dict[str, object]:
    """{name: default} of a notebook's `parameters` cell (every default is a literal)."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {target.id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign) for target in node.targets}


DECLARED = {path.name[:2]: parameters_cell(path) for path in NOTEBOOKS}
NAMES = sorted({name for params in DECLARED.values() for name in params})
PATHS = {"FIGURES", "RESULTS"}  # any non-empty string is a path
BAD = [-1, "abc", "false"]  # what a prober tried; a path parameter takes a string, so only -1 there
# Further values that break a rule, by the rule's kind (all names declared by a notebook are covered
# by BAD; these make sure the bounds and types are the right ones).
MORE_BAD = {
    "SEED": [1.5, True, "5"], "FAST": [1, "True"], "SOLVE": [1, None], "DATASET": [None, "digits"],
    "FIGURES": [3, ""], "RESULTS": [""],
    "CPU_THREADS": [0, 2.0, True, "4"], "NUM_EPOCHS": [0, 2.5, False], "STUDY_EPOCHS": [0, 1.0],
    "BEST_EPOCHS": [0, "None"], "BATCH_SIZE": [0, None, 64.0], "HIDDEN": [0, None, 256.5],
    "LR": [0, 0.0, math.nan, math.inf, None, True, "1e-3"], "LR_DECAY": [0, 1.5, math.nan, None],
    "MOMENTUM": [1, 1.0, -0.1, None], "TARGET_ACC": [92, 0, 1.01, None],
}
GOOD = {"CPU_THREADS": [1, 8, None], "NUM_EPOCHS": [1, None], "LR": [1, 3e-3], "LR_DECAY": [1, 0.5],
        "MOMENTUM": [0, 0.0, 0.99], "TARGET_ACC": [1, 0.5], "SEED": [0, 12], "BATCH_SIZE": [1]}


def cases() -> list[tuple[str, object]]:
    out = [(name, value) for name in NAMES for value in BAD if not (name in PATHS and isinstance(value, str))]
    return out + [(name, value) for name, values in MORE_BAD.items() for value in values]


def test_every_parameter_a_notebook_declares_has_a_rule():
    assert len(NAMES) >= 6 and "CPU_THREADS" in NAMES and "NUM_EPOCHS" in NAMES  # the reading worked
    unchecked = {name: [nb for nb, params in DECLARED.items() if name in params]
                 for name in NAMES if name not in utils.PARAMETERS}
    assert not unchecked, (f"parameters without a rule in mnist_course.utils.PARAMETERS (declared by notebooks): "
                           f"{unchecked}; add one so that a wrong papermill value stops the setup cell")


@pytest.mark.parametrize("number", sorted(DECLARED))
def test_every_notebooks_defaults_pass(number):
    utils.check_parameters(**DECLARED[number])


@pytest.mark.parametrize("name, values", sorted(GOOD.items()))
def test_good_values_pass(name, values):
    for value in values:
        utils.check_parameters(**{name: value})


@pytest.mark.parametrize("name, value", cases())
def test_a_bad_value_is_refused_in_one_line_with_the_papermill_hint(name, value):
    with pytest.raises(ValueError) as caught:
        utils.check_parameters(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"{name} must be ") and f"got {value!r}" in message, message
    assert f"-p {name} " in message or f"-y '{name}:" in message, f"{message!r} does not say how to pass it"
    assert "\n" not in message


@pytest.fixture()
def unset_mode(monkeypatch):
    """MNIST_COURSE_FAST unset (setup_notebook sets it only once the parameters are good); the run state restored."""
    monkeypatch.delenv("MNIST_COURSE_FAST", raising=False)
    saved = S.current_run()
    yield
    S.set_current_run(saved["seed"], saved["dataset"])
    os.environ.pop("MNIST_COURSE_FAST", None)


@pytest.mark.parametrize("name, value", cases())
def test_the_setup_cell_refuses_a_bad_parameter_before_applying_anything(unset_mode, name, value):
    """What a notebook's setup cell sees: its globals after the parameters cell and papermill's injected one."""
    number = next(nb for nb, params in sorted(DECLARED.items()) if name in params)
    namespace = {"mc": mc, **DECLARED[number], "FAST": True, name: value}
    with pytest.raises(ValueError) as caught:
        exec(SETUP, namespace)
    assert str(caught.value).startswith(f"{name} must be ") and f"got {value!r}" in str(caught.value)
    assert os.environ.get("MNIST_COURSE_FAST") is None, "nothing may be applied before the parameters are checked"


def test_the_setup_cell_accepts_every_notebooks_defaults(unset_mode, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("MNIST_COURSE_RESULTS", str(tmp_path / "results.json"))
    for number, params in sorted(DECLARED.items()):
        namespace = {"mc": mc, **params, "FAST": True}
        exec(SETUP, namespace)
        assert namespace["FAST"] is True, number


def test_a_bad_value_shows_one_line_not_a_traceback():
    """IPython shows an exception with _render_traceback_ as the lines it returns."""
    with pytest.raises(utils.ParameterError) as caught:
        utils.check_parameters(CPU_THREADS=-1)
    assert caught.value._render_traceback_() == [f"ParameterError: {caught.value}"]


def test_papermill_stops_notebook_01_in_its_setup_cell(tmp_path):
    """One real papermill run (its command line parses `-1` itself): the first cell after the parameters
    fails with the one-line message, and papermill's own error says it too (about 15 s)."""
    source = NOTEBOOKS[0]
    out = tmp_path / source.name
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_PROGRESS="0", MPLBACKEND="Agg",
               MNIST_COURSE_FIGURES=str(tmp_path / "figures"), MNIST_COURSE_RESULTS=str(tmp_path / "results.json"))
    env.pop("MNIST_COURSE_RECORD", None)
    proc = subprocess.run([sys.executable, "-m", "papermill", str(source), str(out), "--cwd", str(source.parent),
                           "-k", "python3", "--no-progress-bar", "-p", "CPU_THREADS", "-1"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0, "papermill ran notebook 01 with CPU_THREADS=-1 to the end"
    cells = json.loads(out.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c["metadata"].get("tags", []))
    errors = [(i, o) for i, c in enumerate(code) for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors, "no cell failed"
    where, error = errors[0]
    assert where == injected + 1, f"the error is in code cell {where}, not the setup cell {injected + 1}"
    assert "setup_notebook(" in "".join(code[where]["source"])
    assert error["ename"] == "ParameterError" and error["evalue"].startswith("CPU_THREADS must be a whole number >= 1")
    assert "-p CPU_THREADS 2" in error["evalue"]
    assert error["traceback"] == [f"ParameterError: {error['evalue']}"], "a traceback through the library"
    assert all(c.get("execution_count") is None for c in code[where + 1:]), "cells ran after the failed setup"
    assert "CPU_THREADS must be a whole number >= 1" in proc.stderr
