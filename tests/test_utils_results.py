"""Course helpers (mode switches, seeding, progress, figures) and the results file / README table."""

from __future__ import annotations

import json
import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import mnist_course as mc
from mnist_course import results as R
from mnist_course import utils as U


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


def test_save_figure_goes_to_figures_dir(isolated_outputs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = mc.save_figure(fig, "99_test")
    plt.close(fig)
    assert path == isolated_outputs / "figures" / "99_test.png" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="plain file name"):
        mc.save_figure(fig, "../escape")


def test_setup_notebook_sets_mode_and_paths(monkeypatch, capsys):
    for var in ("MNIST_COURSE_FAST", "MNIST_COURSE_FIGURES", "MNIST_COURSE_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    assert mc.setup_notebook(seed=3, fast=True, figures="build/x-figures") is True
    assert "fast mode | seed 3" in capsys.readouterr().out
    assert mc.fast_mode() is True
    assert mc.figures_dir(create=False) == mc.repo_root() / "build" / "x-figures"
    assert R.results_path() == mc.repo_root() / "results" / "results-fast.json"
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    assert mc.setup_notebook(seed=3, fast=None) is True
    assert mc.setup_notebook(seed=3, fast=False) is False
    assert R.results_path() == mc.repo_root() / "results" / "results.json"


# ------------------------------------------------------------------------------------ results

def test_record_merges_and_keeps_other_entries(tmp_path):
    path = tmp_path / "r.json"
    R.record("01_a", "x", 1.5, "X", "%", path=path, fast=False)
    R.record("02_b", "y", 3, "Y", path=path, fast=True)
    R.record("01_a", "x", 2.5, "X again", "%", path=path, fast=False)
    data = json.loads(path.read_text())["results"]
    assert set(data) == {"01_a/x", "02_b/y"}
    assert data["01_a/x"]["value"] == 2.5 and data["02_b/y"]["mode"] == "fast"
    with pytest.raises(ValueError, match="only finite numbers"):
        R.record("01_a", "z", float("nan"), "Z", path=path)


def test_broken_results_file_is_not_overwritten(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON.*never overwritten"):
        R.record("01_a", "x", 1.0, "X", path=path)
    assert path.read_text() == "{ not json"


def test_readme_table_update_and_check(tmp_path):
    results = tmp_path / "r.json"
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{R.START}\nold\n{R.END}\n\nafter\n")
    R.record("01_a", "acc", 98.765, "Accuracy", "%", digits=2, path=results, fast=False)
    assert R.check_readme(readme, results) is False
    assert R.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert R.main(["--results", str(results), "--readme", str(readme), "--update"]) == 0
    text = readme.read_text()
    assert "| 01_a | Accuracy | 98.77% | full |" in text and text.endswith("after\n") and "old" not in text
    assert R.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0


def test_readme_without_markers_is_a_clear_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    assert R.main(["--results", str(tmp_path / "none.json"), "--readme", str(readme), "--check"]) == 2
    assert "has no markers" in capsys.readouterr().err


def test_benchmark_block_is_copied_from_its_report(tmp_path):
    results, bench, readme = tmp_path / "r.json", tmp_path / "benchmark.md", tmp_path / "README.md"
    readme.write_text(f"{R.START}\n{R.END}\n\n{R.BENCH_START}\nold report\n{R.BENCH_END}\n")
    bench.write_text("| pipeline | images / s |\n|---|---|\n| in-memory | 100 |\n")
    assert R.check_readme(readme, results, bench) is False
    assert R.update_readme(readme, results, bench) is True
    assert "| in-memory | 100 |" in readme.read_text() and "old report" not in readme.read_text()
    assert R.check_readme(readme, results, bench) is True
    bench.write_text("a newer run\n")
    assert R.check_readme(readme, results, bench) is False


def test_repository_readme_table_matches_results_file():
    """The README's tables are generated from results/results.json and results/benchmark.md."""
    readme, results = mc.repo_root() / "README.md", mc.repo_root() / "results" / "results.json"
    assert R.BENCH_START in readme.read_text(), "the README must show the benchmark report"
    assert R.check_readme(readme, results), "README results/benchmark tables are stale: run `make readme` and commit."
