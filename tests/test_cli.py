"""python -m mnist_course.train: help, argument errors, a fast run, no overwrite, resume."""

import json
import os
import subprocess
import sys

import pytest

from mnist_course.train import main


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "mnist_course.train", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for flag in ("--model", "--epochs", "--optimizer", "--lr", "--batch-size", "--seed", "--dataset", "--out"):
        assert flag in out.stdout


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "at least 1"),
    (["--lr", "fast"], "expected a number"),
    (["--lr", "-1"], "positive"),
    (["--model", "resnet"], "invalid choice"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--dataset", "cifar"], "invalid choice"),
    (["--batch-size", "1.5"], "whole number"),
])
def test_bad_arguments_are_refused_clearly(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_fast_run_writes_checkpoint_and_metrics_and_never_overwrites(tmp_path, mnist, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    out = tmp_path / "run"
    assert main(["--model", "cnn_small", "--fast", "--epochs", "3", "--lr", "0.01", "--out", str(out)]) == 0
    assert {"best.safetensors", "state.pt", "history.json", "metrics.json"} <= set(os.listdir(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["config"]["model"] == "cnn_small"
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["config"]["lr"] == 0.01
    assert "test accuracy" in capsys.readouterr().out
    before = (out / "best.safetensors").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "cnn_small", "--fast", "--out", str(out)])
    assert exit_info.value.code == 2 and "already exists" in capsys.readouterr().err
    assert (out / "best.safetensors").read_bytes() == before
    assert json.loads((out / "config.json").read_text())["lr"] == 0.01
    with pytest.raises(SystemExit):  # resuming must keep the run's schedule
        main(["--model", "cnn_small", "--fast", "--lr", "0.02", "--out", str(out), "--resume"])
    assert "--lr was 0.01, now 0.02" in capsys.readouterr().err


def test_resume_needs_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", "--out", str(tmp_path / "nothing")])
    assert "no interrupted run" in capsys.readouterr().err


def test_dry_run_writes_nothing(tmp_path, mnist, capsys):
    out = tmp_path / "dry"
    assert main(["--model", "mlp", "--dry-run", "--fast", "--out", str(out)]) == 0
    assert not out.exists() and "dry run" in capsys.readouterr().out
