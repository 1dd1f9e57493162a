"""nbval really compares the stored reference outputs of the `# NBVAL_CHECK_OUTPUT` cells, and
`mnist-course nbrefs` stores and checks them the way nbval compares them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

import mnist_course as mc
from mnist_course.tooling import nbrefs

CHEAP = "02"  # the quickest notebook with a checked cell (~10 s under nbval in fast mode)


def _changed(text: str) -> str:
    """text with its last visible character replaced by another one."""
    i = len(text.rstrip()) - 1
    return text[:i] + ("X" if text[i] != "X" else "Y") + text[i + 1:]


@pytest.mark.slow
def test_nbval_fails_when_a_stored_output_differs(tmp_path):
    path = nbrefs.pick_notebooks(mc.repo_root() / "notebooks", [CHEAP])[0]
    nb = nbformat.read(path, as_version=4)
    code = nbrefs.code_cells(nb)
    n = next((n for n, c in enumerate(code) if nbrefs.is_checked(c) and c.execution_count is not None
              and any(o.output_type == "stream" and o.text.strip() for o in c.outputs)), None)
    assert n is not None, f"{path.name} has no checked cell with stored text output: run `make nbval-refs`"
    out = next(o for o in code[n].outputs if o.output_type == "stream" and o.text.strip())
    out.text = _changed(out.text)
    for folder in ("stored", "changed"):
        (tmp_path / folder).mkdir()
    (tmp_path / "stored" / path.name).write_bytes(path.read_bytes())
    nbformat.write(nb, tmp_path / "changed" / path.name)
    # the Makefile's TEST_ENV, with the outputs in tmp_path
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_RECORD="0", MNIST_COURSE_PROGRESS="0",
               MPLBACKEND="Agg", OMP_NUM_THREADS="1", MNIST_COURSE_FIGURES=str(tmp_path / "figures"),
               MNIST_COURSE_RESULTS=str(tmp_path / "results.json"), MNIST_COURSE_MODELS=str(tmp_path / "models"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
                           "-rf", "stored", "changed"], cwd=tmp_path, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+::Cell \d+)", proc.stdout, re.M)
    assert failed == [f"changed/{path.name}::Cell {n}"], proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "Cell outputs differ" in proc.stdout and proc.returncode == 1


def _notebook(*cells):
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def _checked(*outputs, count=1):
    return new_code_cell("# NBVAL_CHECK_OUTPUT\nshow()", outputs=list(outputs), execution_count=count)


def _stdout(text):
    return new_output("stream", name="stdout", text=text)


def _figure(png):
    return new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})


def _injected():
    return new_code_cell("SEED = 1", metadata={"tags": ["injected-parameters"]}, execution_count=1)


def test_check_reports_a_differing_output_and_ignores_what_nbval_ignores(tmp_path, capsys):
    (tmp_path / "refs").mkdir(), (tmp_path / "run").mkdir()
    stored = _notebook(_checked(_stdout("a = 1\nb = 2\n"), _figure("AAAA")), new_code_cell("print(3)"))
    nbformat.write(stored, tmp_path / "refs" / "01_demo.ipynb")

    def check(*cells):
        nbformat.write(_notebook(*cells), tmp_path / "run" / "01_demo.ipynb")
        return nbrefs.main(["--check", str(tmp_path / "run"), "--notebooks", str(tmp_path / "refs")])

    # papermill's injected cell, streams split in two, another picture, an unchecked cell's output: equal
    assert check(_injected(), _checked(_stdout("a = 1\n"), _stdout("b = 2\n"), _figure("BBBB"), count=7),
                 new_code_cell("print(3)", outputs=[_stdout("3\n")], execution_count=8)) == 0
    capsys.readouterr()
    assert check(_checked(_stdout("a = 1\nb = 3\n"), _figure("AAAA")), new_code_cell("print(3)")) == 1
    err = capsys.readouterr().err
    assert "01_demo.ipynb::Cell 0" in err and "stdout differs" in err and "-b = 2" in err and "+b = 3" in err
    assert check(_checked(_stdout("a = 1\nb = 2\n")), new_code_cell("print(3)")) == 1, "a missing text/plain"
    assert "text/plain differs" in capsys.readouterr().err


def test_check_needs_stored_references_and_the_same_code(tmp_path, capsys):
    (tmp_path / "refs").mkdir(), (tmp_path / "run").mkdir()
    nbformat.write(_notebook(_checked(count=None)), tmp_path / "refs" / "01_demo.ipynb")
    nbformat.write(_notebook(_checked(_stdout("1\n"))), tmp_path / "run" / "01_demo.ipynb")
    args = ["--check", str(tmp_path / "run"), "--notebooks", str(tmp_path / "refs")]
    assert nbrefs.main(args) == 1 and "make nbval-refs" in capsys.readouterr().err
    nbformat.write(_notebook(new_code_cell("# NBVAL_CHECK_OUTPUT\nother()")), tmp_path / "run" / "01_demo.ipynb")
    assert nbrefs.main(args) == 2 and "other code" in capsys.readouterr().err


def test_store_keeps_only_the_checked_cells_outputs(tmp_path):
    path, executed = tmp_path / "01_demo.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(_notebook(_checked(count=None), new_code_cell("print(3)", outputs=[_stdout("old\n")], execution_count=2)), path)
    nbformat.write(_notebook(_injected(), _checked(_stdout("a\n"), _stdout("b\n"), count=2),
                             new_code_cell("print(3)", outputs=[_stdout("3\n")], execution_count=3)), executed)
    original = path.read_text()
    assert nbrefs.store_references(path, executed, original) == 1
    checked, other = nbformat.read(path, as_version=4).cells
    assert checked.execution_count == 2 and [o.text for o in checked.outputs] == ["a\nb\n"]
    assert other.outputs == [] and other.execution_count is None
    # the notebook was edited while it ran: nothing is overwritten
    edited = path.read_text().replace("print(3)", "print(4)")
    path.write_text(edited)
    with pytest.raises(ValueError, match="changed while it was running"):
        nbrefs.store_references(path, executed, original)
    assert path.read_text() == edited
