"""The course runner (`mnist-course course`, mnist_course.tooling.runner): parameters checked before anything runs,
--record as the only way to the tracked outputs, and a lock against two runs into the same folders.
Notebooks are not executed here: run_notebook is replaced by a stand-in that notes its calls."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mnist_course.tooling import runner as course


@pytest.fixture()
def runner(monkeypatch, tmp_path):
    """(calls, main): main(args) runs the course runner with a stand-in for run_notebook."""
    for var in ("MNIST_COURSE_FAST", "MNIST_COURSE_RECORD", "MNIST_COURSE_FIGURES", "MNIST_COURSE_MODELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MNIST_COURSE_RESULTS", str(tmp_path / "results" / "results.json"))
    calls = []

    def fake_run_notebook(path, output_dir, parameters=None, log_output=False):
        calls.append((path.name[:2], dict(parameters or {}), os.environ.get("MNIST_COURSE_RECORD"),
                      sorted(p.name for p in output_dir.iterdir())))
        return output_dir / path.name

    monkeypatch.setattr(course, "run_notebook", fake_run_notebook)
    return calls, lambda *args: course.main([*args, "--output", str(tmp_path / "out")])


def test_unknown_parameter_is_refused_before_running(runner):
    calls, main = runner
    with pytest.raises(SystemExit, match="SEEDD not declared by any of the chosen notebooks.*SEED"):
        main("--only", "01", "-p", "SEEDD", "5")
    assert calls == []


@pytest.mark.parametrize("value", ["false", "maybe", "0"])
def test_fast_must_be_a_bool(runner, value):
    calls, main = runner
    with pytest.raises(SystemExit, match=r"FAST must be True or False.*-p FAST False \(capital"):
        main("--only", "01", "-p", "FAST", value)
    assert calls == []


def test_parameters_go_only_to_the_notebooks_that_declare_them(runner, capsys):
    calls, main = runner
    assert main("--only", "01", "02", "-p", "CPU_THREADS", "1", "-p", "SEED", "3") == 0
    assert [(nb, params) for nb, params, *_ in calls] == [("01", {"SEED": 3}), ("02", {"CPU_THREADS": 1, "SEED": 3})]
    assert "CPU_THREADS is not a parameter of notebook(s) 01" in capsys.readouterr().out


def test_only_record_sets_the_recording_switch(runner, monkeypatch):
    calls, main = runner
    monkeypatch.setenv("MNIST_COURSE_RECORD", "1")  # left over in a shell: a plain run is still private
    assert main("--only", "01") == 0
    assert calls[-1][2] is None
    assert main("--only", "01", "--record") == 0
    assert calls[-1][2] == "1"
    with pytest.raises(SystemExit):
        main("--only", "01", "--record", "--fast")


def test_a_second_run_into_the_same_folder_is_refused(runner, tmp_path, capsys):
    calls, main = runner
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / course.LOCK_NAME).write_text(f"{other.pid}\nmnist-course course\n2026-01-01 10:00:00\n")
        with pytest.raises(SystemExit, match=f"another course run \\(pid {other.pid}.*is writing to .*out"):
            main("--only", "01")
        assert calls == []
        # the same for a run with another output folder but the same results file
        (tmp_path / "out" / course.LOCK_NAME).unlink()
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / course.LOCK_NAME).write_text(f"{other.pid}\nx\ny\n")
        with pytest.raises(SystemExit, match=f"pid {other.pid}"):
            main("--only", "01")
        assert calls == []
    finally:
        other.kill()
        other.wait()
    # the other run has ended: its lock is stale, taken over, and released at the end
    assert main("--only", "01") == 0
    assert "stale lock" in capsys.readouterr().out
    assert course.LOCK_NAME in calls[-1][3]  # held while the notebooks run
    assert not (tmp_path / "out" / course.LOCK_NAME).exists() and not (tmp_path / "results" / course.LOCK_NAME).exists()


def test_the_recorded_run_forgets_a_notebooks_old_numbers(runner, tmp_path):
    """A number a notebook no longer records must not stay in results.json (and the README) as current."""
    import json

    calls, main = runner
    path = tmp_path / "results" / "results.json"
    path.parent.mkdir()
    keys = ["mnist/01_exploring_mnist/old", "mnist/02_softmax_regression_numpy/kept", "fashion/01_exploring_mnist/kept"]
    path.write_text(json.dumps({"results": {k: {"value": 1} for k in keys}}))
    assert main("--only", "01") == 0  # a private run forgets nothing (and writes elsewhere anyway)
    assert set(keys) <= set(json.loads(path.read_text())["results"])
    assert main("--only", "01", "--record") == 0  # (the runner may add numbers of its own, e.g. run times)
    assert set(keys) & set(json.loads(path.read_text())["results"]) == set(keys[1:])
