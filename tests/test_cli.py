"""mnist-course train (mnist_course.tooling.train): help, argument errors, a fast run, no overwrite, resume."""

import json
import os
import subprocess
import sys

import pytest

from mnist_course.tooling.train import main


def test_help_runs_through_the_command():
    out = subprocess.run([sys.executable, "-m", "mnist_course", "train", "--help"], capture_output=True, text=True,
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


# ------------------------------------------------- full-mode runs on a tiny synthetic MNIST (seconds)

TINY = ["--model", "mlp_small", "--optimizer", "sgd", "--lr", "0.01", "--epochs", "3", "--val-size", "50",
        "--quiet"]


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    from fake_data import tiny_mnist

    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    return tiny_mnist(tmp_path / "data", monkeypatch)


def interrupted(argv, stop_epoch):
    """Run the CLI with argv and stop it with KeyboardInterrupt after `stop_epoch` (as Ctrl-C would)."""
    from mnist_course import training

    real_fit = training.fit

    def fit(*args, on_epoch_end=None, **kwargs):
        def stop(epoch, history):
            on_epoch_end(epoch, history)
            if epoch == stop_epoch:
                raise KeyboardInterrupt

        return real_fit(*args, on_epoch_end=stop, **kwargs)

    with pytest.MonkeyPatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(training, "fit", fit)
        main(argv)


def results(out):
    m = json.loads((out / "metrics.json").read_text())
    rows = json.loads((out / "history.json").read_text())["rows"]
    return m["val_acc"], m["test_acc"], m["best_epoch"], [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_resume_with_only_out_reads_the_settings_and_finishes_the_same_run(tiny, tmp_path, monkeypatch, capsys):
    assert main([*TINY, "--out", str(tmp_path / "whole")]) == 0
    interrupted([*TINY, "--out", str(tmp_path / "cut")], stop_epoch=1)
    assert main(["--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert results(tmp_path / "cut") == results(tmp_path / "whole")
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert (config["model"], config["optimizer"], config["lr"], config["epochs"]) == ("mlp_small", "sgd", 0.01, 3)


def test_resume_refuses_different_settings_but_accepts_the_same_ones(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupted([*TINY, "--out", str(out)], stop_epoch=1)
    for argv, message in ([["--lr", "0.02"], "--lr was 0.01, now 0.02"], [["--model", "cnn"], "--model was"],
                          [["--recipe", "best-cnn"], "--model was 'mlp_small', now 'cnn'"],
                          [["--augment"], "--augment was None"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--out", str(out), "--resume", *argv])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 1  # nothing trained meanwhile
    assert main(["--out", str(out), "--resume", "--model", "mlp_small", "--lr", "0.01", "--quiet"]) == 0
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 3


def test_resuming_a_finished_run_says_so_and_trains_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    capsys.readouterr()
    assert main(["--out", str(out), "--resume"]) == 0
    assert "already finished all 3 epochs; nothing to train" in capsys.readouterr().out
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_resuming_an_early_stopped_run_says_so_and_trains_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--lr", "1e-12", "--epochs", "10", "--patience", "1", "--out", str(out)]  # nothing improves
    assert main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["stopped_early"] == 2
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    capsys.readouterr()
    assert main(["--out", str(out), "--resume"]) == 0
    assert "stopped early after epoch 2" in capsys.readouterr().out
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


@pytest.mark.parametrize("name", ["config.json", "history.json"])
def test_a_damaged_json_file_in_the_run_is_named(tiny, tmp_path, name, capsys):
    out = tmp_path / "run"
    interrupted([*TINY, "--out", str(out)], stop_epoch=1)
    (out / name).write_text('{"model": "mlp_sm')  # cut short
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out), "--resume"])
    assert exit_info.value.code == 2 and f"{out / name} is not valid JSON" in capsys.readouterr().err


def test_a_damaged_state_is_an_error_naming_it(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    interrupted([*TINY, "--out", str(out)], stop_epoch=1)
    (out / "state.pt").write_bytes(b"")
    assert main(["--out", str(out), "--resume"]) == 1
    assert f"{out / 'state.pt'} is empty, truncated" in capsys.readouterr().err


def test_a_diverged_run_stops_with_an_error_and_no_metrics(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--lr", "1e9", "--scheduler", "none", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "Lower the learning rate" in err
    assert not (out / "metrics.json").exists()


def test_config_and_metrics_are_written_atomically(tiny, tmp_path, monkeypatch):
    from mnist_course import files

    written, real = [], files.atomic_write
    monkeypatch.setattr(files, "atomic_write", lambda path, *a, **k: written.append(path.name) or real(path, *a, **k))
    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    assert {"config.json", "metrics.json"} <= set(written)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


@pytest.mark.parametrize("device", ["mps", "cuda:7", "tpu"])
def test_an_unusable_device_is_a_clear_argument_error(tiny, tmp_path, device, capsys):
    import torch

    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--device", device, "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert f"--device {device}: not usable on this machine" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ recipe and augmentation


def settings(argv):
    from mnist_course.tooling.train import DEFAULTS, build_parser, resolve_settings

    return resolve_settings(build_parser().parse_args(argv), DEFAULTS)


def test_the_best_cnn_recipe_resolves_to_recipes_best_cnn():
    from mnist_course.recipes import BEST_CNN

    resolved = settings(["--recipe", "best-cnn"])
    assert {k: resolved[k] for k in BEST_CNN} == BEST_CNN
    assert resolved["seed"] == 0 and resolved["patience"] is None  # as in notebook 06
    assert settings(["--recipe", "best-cnn", "--epochs", "3"])["epochs"] == 3  # options override the recipe
    assert settings(["--recipe", "best-cnn", "--no-augment"])["augment"] is None


def test_augmentation_options():
    assert settings([])["augment"] is None
    assert settings(["--augment"])["augment"] == {"degrees": 15.0, "translate": 0.15, "scale": 0.15}
    assert settings(["--degrees", "10", "--scale", "0.2"])["augment"] == {"degrees": 10.0, "translate": 0.15,
                                                                            "scale": 0.2}
    with pytest.raises(ValueError, match="contradicts"):
        settings(["--no-augment", "--degrees", "5"])
    with pytest.raises(ValueError, match="below 1"):
        settings(["--augment", "--scale", "1.5"])


def test_help_documents_the_recipe_and_augmentation():
    out = subprocess.run([sys.executable, "-m", "mnist_course", "train", "--help"], capture_output=True, text=True,
                         timeout=120)
    for text in ("--recipe", "best-cnn", "--augment", "--no-augment", "--degrees", "--translate", "--scale",
                 "--epochs 15"):
        assert text in out.stdout


def test_a_device_that_get_device_lets_through_is_still_refused_clearly(tiny, tmp_path, monkeypatch, capsys):
    import torch

    from mnist_course import utils

    monkeypatch.setattr(utils, "get_device", lambda name=None: torch.device("mps"))  # as get_device once did
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "--device", "mps", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "--device mps: not usable" in capsys.readouterr().err
