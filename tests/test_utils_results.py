"""Course helpers (mode switches, seeding, progress, figures), the results file, and the generator of
the README's and docs' numbers (mnist_course.tooling.readme; the pages themselves: test_readme.py)."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import mnist_course as mc
from mnist_course import results as R
from mnist_course import settings as S
from mnist_course import utils as U
from mnist_course.tooling import readme as RM


def test_fast_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    assert mc.fast_mode() is True
    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    assert mc.fast_mode() is False
    monkeypatch.delenv("MNIST_COURSE_FAST")
    assert mc.fast_mode(default=True) is True
    monkeypatch.setenv("MNIST_COURSE_FAST", "maybe")
    with pytest.raises(ValueError, match="MNIST_COURSE_FAST='maybe' is not a yes/no value"):
        mc.fast_mode()


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    mc.seed_everything(7)
    first = draw()
    mc.seed_everything(7)
    assert draw() == first
    mc.seed_everything(8)
    assert draw() != first
    with pytest.raises(ValueError, match="non-negative integer"):
        mc.seed_everything(-1)


def test_progress_switch(monkeypatch):
    mc.set_progress(None)
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    assert mc.progress(range(3)).disable is True
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "1")
    assert U.progress_enabled() is True
    mc.set_progress(False)
    try:
        bar = mc.progress(range(3))
        assert bar.disable is True and list(bar) == [0, 1, 2]
    finally:
        mc.set_progress(None)


def test_get_device():
    assert mc.get_device("cpu").type == "cpu"
    assert mc.get_device().type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            mc.get_device("cuda")


def test_get_device_mps_without_mps_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS is not available here.*use 'cpu'"):
        mc.get_device("mps")


def test_save_figure_goes_to_figures_dir(isolated_outputs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = mc.save_figure(fig, "99_test")
    plt.close(fig)
    assert path == isolated_outputs / "figures" / "99_test.png" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="plain file name"):
        mc.save_figure(fig, "../escape")


OUTPUT_VARS = ("MNIST_COURSE_FAST", "MNIST_COURSE_FIGURES", "MNIST_COURSE_RESULTS", "MNIST_COURSE_MODELS",
               "MNIST_COURSE_RECORD")


@pytest.fixture()
def default_outputs(monkeypatch):
    """No output settings at all, as in JupyterLab; restores the run state afterwards."""
    for var in OUTPUT_VARS:
        monkeypatch.delenv(var, raising=False)
    saved = dict(S._RUN)
    yield mc.repo_root()
    S._RUN.update(saved)


def test_setup_notebook_sets_mode_and_paths(default_outputs, monkeypatch, capsys):
    root = default_outputs
    assert mc.setup_notebook(seed=3, fast=True, figures="build/x-figures") is True
    assert "fast mode | seed 3" in capsys.readouterr().out
    assert mc.fast_mode() is True
    assert mc.figures_dir(create=False) == root / "build" / "x-figures"
    assert R.results_path() == root / "build" / "fast" / "results.json"
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    assert mc.setup_notebook(seed=3, fast=None) is True
    assert mc.setup_notebook(seed=3, fast=False) is False
    assert R.results_path() == root / "build" / "my-run" / "results.json"


def test_a_learners_run_is_private_and_only_the_recorded_run_writes_tracked_files(default_outputs, monkeypatch):
    root = default_outputs
    # full mode, no settings (JupyterLab): the private run folder
    assert (mc.figures_dir(create=False), R.results_path(), mc.models_dir(create=False)) == (
        root / "build" / "my-run" / "figures", root / "build" / "my-run" / "results.json", root / "models")
    # fast mode: its own folders, models included, whether or not a run is being recorded
    for record in ("0", "1"):
        monkeypatch.setenv("MNIST_COURSE_RECORD", record)
        monkeypatch.setenv("MNIST_COURSE_FAST", "1")
        assert (mc.figures_dir(create=False), R.results_path(), mc.models_dir(create=False)) == (
            root / "build" / "fast" / "figures", root / "build" / "fast" / "results.json", root / "models" / "fast")
    with pytest.raises(ValueError, match="full mode only"):
        mc.setup_notebook(0, fast=True)
    # the recorded course run (make course), full mode: the tracked files
    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    assert (mc.figures_dir(create=False), R.results_path(), mc.models_dir(create=False)) == (
        root / "figures", root / "results" / "results.json", root / "models")
    # a fast-mode models folder also under an explicit MNIST_COURSE_MODELS
    monkeypatch.setenv("MNIST_COURSE_MODELS", "/tmp/some-models")
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    assert mc.models_dir(create=False) == Path("/tmp/some-models/fast").resolve()


def test_fast_mode_refuses_the_tracked_figures_and_results(default_outputs, monkeypatch):
    root = default_outputs
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    monkeypatch.setenv("MNIST_COURSE_RESULTS", str(root / "results" / "results.json"))
    with pytest.raises(ValueError, match="fast mode never writes the course's tracked results"):
        R.record("99_x", "k", 1.0, "K")
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="fast mode never writes the course's tracked figures"):
        mc.save_figure(fig, "99_x", folder=root / "figures")
    plt.close(fig)
    assert not (root / "figures" / "99_x.png").exists()


def test_relative_paths_are_taken_from_the_repository_root(default_outputs, monkeypatch, tmp_path):
    root = default_outputs
    monkeypatch.chdir(tmp_path)  # e.g. the kernel's folder, notebooks/
    monkeypatch.setenv("MNIST_COURSE_FIGURES", "build/t-figs")
    monkeypatch.setenv("MNIST_COURSE_RESULTS", "build/t-results.json")
    monkeypatch.setenv("MNIST_COURSE_MODELS", "build/t-models")
    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    assert mc.figures_dir(create=False) == root / "build" / "t-figs"
    assert R.results_path() == root / "build" / "t-results.json"
    assert mc.models_dir(create=False) == root / "build" / "t-models"
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("name, value", [
    ("fast", "false"), ("fast", "maybe"), ("fast", 1), ("seed", "5"), ("seed", True), ("seed", 1.5),
    ("dataset", "digits"), ("figures", 3), ("results", ""),
])
def test_setup_notebook_rejects_wrong_parameter_types(default_outputs, name, value):
    """papermill's `-p FAST false` passes the string "false", which bool() would call true."""
    param = name.upper()
    with pytest.raises(ValueError, match=f"{param} must be .*got {value!r}"):
        mc.setup_notebook(**{"seed": 0, "fast": True, name: value})
    with pytest.raises(ValueError, match=r"-p FAST False \(capital"):
        mc.setup_notebook(0, "false")
    assert os.environ.get("MNIST_COURSE_FAST") is None  # nothing was applied


def test_setup_notebook_takes_the_notebooks_dataset_and_record_stores_it(default_outputs, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_COURSE_RESULTS", str(tmp_path / "r.json"))
    namespace = {"mc": mc, "DATASET": "fashion"}  # a notebook's globals after its parameters cell
    exec("FAST = mc.setup_notebook(4, True)", namespace)
    assert S.current_run() == {"seed": 4, "dataset": "fashion"}
    assert mc.figures_dir(create=False) == default_outputs / "build" / "fast" / "figures" / "fashion"
    entry = R.record("01_a", "acc", 91.0, "Accuracy", "%")
    assert (entry["dataset"], entry["seed"], entry["mode"]) == ("fashion", 4, "fast")
    assert set(json.loads((tmp_path / "r.json").read_text())["results"]) == {"fashion/01_a/acc"}


@pytest.mark.parametrize("value", ["True", "false", 1])
def test_setup_notebook_rejects_a_solve_parameter_that_is_not_a_bool(default_outputs, value):
    """papermill's `-p SOLVE true` is the string "true": it would silently leave every exercise unsolved."""
    with pytest.raises(ValueError, match=r"SOLVE must be True .*-p SOLVE True"):
        exec("FAST = mc.setup_notebook(0, True)", {"mc": mc, "SOLVE": value})
    exec("FAST = mc.setup_notebook(0, True)", {"mc": mc, "SOLVE": True})  # a real bool is fine


# ------------------------------------------------------------------------------------ results

def test_record_merges_and_keeps_other_entries(tmp_path):
    path = tmp_path / "r.json"
    R.record("01_a", "x", 1.5, "X", "%", path=path, fast=False, dataset="mnist", seed=0)
    R.record("02_b", "y", 3, "Y", path=path, fast=True, dataset="mnist", seed=1)
    R.record("01_a", "x", 2.5, "X again", "%", path=path, fast=False, dataset="mnist", seed=0)
    data = json.loads(path.read_text())["results"]
    assert set(data) == {"mnist/01_a/x", "mnist/02_b/y"}
    assert data["mnist/01_a/x"]["value"] == 2.5 and data["mnist/02_b/y"]["mode"] == "fast"
    assert data["mnist/02_b/y"]["seed"] == 1
    with pytest.raises(ValueError, match="only finite numbers"):
        R.record("01_a", "z", float("nan"), "Z", path=path)


def test_results_are_keyed_by_dataset(tmp_path):
    path = tmp_path / "r.json"
    R.record("04_a", "acc", 99.1, "Accuracy", "%", path=path, fast=False, dataset="mnist", seed=0)
    R.record("04_a", "acc", 90.2, "Accuracy", "%", path=path, fast=False, dataset="fashion", seed=0)
    data = json.loads(path.read_text())["results"]
    assert {k: v["value"] for k, v in data.items()} == {"mnist/04_a/acc": 99.1, "fashion/04_a/acc": 90.2}
    sentence, _, *table = RM.markdown_table({"results": data}).splitlines()
    assert sentence.startswith("All 2 numbers: full mode, seed 0,")  # the same on every row: said once
    assert table[0] == "| Notebook | Result | Value | Dataset |"
    assert table[2] == "| 04_a | Accuracy | 99.10% | mnist |"  # MNIST first
    assert table[3] == "| 04_a | Accuracy | 90.20% | fashion |"


def test_record_accepts_numpy_and_torch_scalars(tmp_path):
    path = tmp_path / "r.json"
    assert R.record("01_a", "f32", np.float32(0.25), "F", path=path)["value"] == 0.25
    assert R.record("01_a", "i64", np.int64(7), "I", path=path)["value"] == 7
    assert R.record("01_a", "t", torch.tensor(0.5), "T", path=path)["value"] == 0.5
    data = json.loads(path.read_text())["results"]
    assert {v["key"]: type(v["value"]) for v in data.values()} == {"f32": float, "i64": int, "t": float}
    with pytest.raises(TypeError, match="record a number"):
        R.record("01_a", "vec", torch.tensor([0.5, 0.6]), "V", path=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.lock"]


def test_record_leaves_no_temporary_file_and_keeps_permissions(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    R.record("01_a", "x", 1.0, "X", path=path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600
    path.chmod(0o640)
    R.record("01_a", "y", 2.0, "Y", path=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        R.record("01_a", "z", 3.0, "Z", path=path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.lock"]


def test_readme_update_is_atomic(tmp_path, monkeypatch):
    results, readme = tmp_path / "r.json", tmp_path / "README.md"
    readme.write_text(f"{RM.START}\nold\n{RM.END}\n")
    R.record("01_a", "acc", 98.0, "Accuracy", "%", path=results)
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        RM.update_readme(readme, results)
    assert readme.read_text() == f"{RM.START}\nold\n{RM.END}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "r.json", "r.json.lock"]


def test_broken_results_file_is_not_overwritten(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON.*never overwritten"):
        R.record("01_a", "x", 1.0, "X", path=path)
    assert path.read_text() == "{ not json"


def test_readme_table_update_and_check(tmp_path):
    results = tmp_path / "r.json"
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{RM.START}\nold\n{RM.END}\n\nafter\n")
    R.record("01_a", "acc", 98.765, "Accuracy", "%", digits=2, path=results, fast=False, dataset="mnist", seed=2)
    assert RM.check_readme(readme, results) is False
    assert RM.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert RM.main(["--results", str(results), "--readme", str(readme), "--update"]) == 0
    text = readme.read_text()
    assert "All 1 number: dataset mnist, full mode, seed 2, recorded on " in text
    assert "| 01_a | Accuracy | 98.77% |" in text and text.endswith("after\n") and "old" not in text
    assert RM.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0


def test_readme_without_markers_is_a_clear_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    assert RM.main(["--results", str(tmp_path / "none.json"), "--readme", str(readme), "--check"]) == 2
    assert "has no markers" in capsys.readouterr().err


def test_benchmark_block_is_copied_from_its_report(tmp_path):
    results, bench, readme = tmp_path / "r.json", tmp_path / "benchmark.md", tmp_path / "README.md"
    readme.write_text(f"{RM.START}\n{RM.END}\n\n{RM.BENCH_START}\nold report\n{RM.BENCH_END}\n")
    bench.write_text("| pipeline | images / s |\n|---|---|\n| in-memory | 100 |\n")
    assert RM.check_readme(readme, results, bench) is False
    assert RM.update_readme(readme, results, bench) is True
    assert "| in-memory | 100 |" in readme.read_text() and "old report" not in readme.read_text()
    assert RM.check_readme(readme, results, bench) is True
    bench.write_text("a newer run\n")
    assert RM.check_readme(readme, results, bench) is False


def test_inline_values_are_rewritten_and_an_unknown_key_is_an_error(tmp_path, capsys):
    results, page = tmp_path / "r.json", tmp_path / "page.md"
    R.record("06_b", "acc", 99.5, "Accuracy", "%", path=results, fast=False, dataset="mnist", seed=0)
    page.write_text("It reaches <!-- value:mnist/06_b/acc -->98.00%<!-- /value --> on the test set.\n")
    assert RM.main(["--results", str(results), "--readme", str(page), "--update"]) == 0
    assert page.read_text() == "It reaches <!-- value:mnist/06_b/acc -->99.50%<!-- /value --> on the test set.\n"
    page.write_text("<!-- value:mnist/06_b/renamed -->99.50%<!-- /value -->\n")
    assert RM.main(["--results", str(results), "--readme", str(page), "--check"]) == 2
    assert "'mnist/06_b/renamed', which the results file does not hold" in capsys.readouterr().err


def test_repository_pages_match_the_results_files():
    """Every number in README.md and docs/*.md is generated from results/results.json and
    results/benchmark.md: `mnist-course readme --check` (all pages, every block present) passes."""
    results = R.tracked_results_path()
    entries = R.load_results(results)["results"]
    assert all(k == f"{e.get('dataset')}/{e['notebook']}/{e['key']}" and e["mode"] == "full" and "seed" in e
               for k, e in entries.items()), "results.json: every entry is keyed <dataset>/<notebook>/<key>"
    pages = RM.generated_pages(RM.default_pages(), results, required=tuple(RM.BLOCKS))
    stale = [page.name for page, (text, new) in pages.items() if text != new]
    assert not stale, f"generated numbers are stale in {stale}: run `make readme` and commit."
