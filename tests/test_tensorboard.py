"""TensorBoard logs: fit(log_dir=...) and `mnist-course train --tensorboard DIR`, read back from the
event files with tensorboard's own EventAccumulator."""

import json

import pytest
import torch

import mnist_course as mc
from mnist_course.models import build_model
from mnist_course.training import TENSORBOARD_TAGS, fit, make_optimizer, make_scheduler

TAGS = {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"}


def read_scalars(folder) -> dict:
    """{tag: [(step, value), ...]} from every event file in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tiny_run(log_dir, num_epochs=2, run_dir=None, resume=False, on_epoch_end=None):
    """A 2-layer MLP on 256 random 'images' (seconds): returns fit's History."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(256, 1, 28, 28, generator=g), torch.randint(0, 10, (256,), generator=g)
    Xv, yv = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(16,))
    train_loader = mc.BatchIterator(X, y, 32, shuffle=True, seed=0)
    optimizer = make_optimizer("adam", model.parameters(), lr=1e-2)
    scheduler = make_scheduler("onecycle", optimizer, num_epochs, len(train_loader))  # lr differs per epoch
    return fit(model, train_loader, mc.BatchIterator(Xv, yv, 64), num_epochs, optimizer, scheduler,
               live_plot=False, verbose=False, log_dir=log_dir, run_dir=run_dir, resume=resume,
               on_epoch_end=on_epoch_end)


def assert_matches(scalars, history):
    assert set(scalars) == TAGS
    for key, tag in TENSORBOARD_TAGS.items():
        steps = [step for step, _ in scalars[tag]]
        assert steps == history["epoch"], f"{tag}: steps {steps}, epochs {history['epoch']}"
        assert [v for _, v in scalars[tag]] == pytest.approx(history[key], rel=1e-6), tag  # stored as float32


def test_fit_logs_each_epochs_history_values(tmp_path):
    history = tiny_run(tmp_path / "tb")
    for key in TENSORBOARD_TAGS:  # every value changes between the epochs, so a shifted epoch is seen
        assert history[key][0] != pytest.approx(history[key][1], rel=1e-6), key
    assert_matches(read_scalars(tmp_path / "tb"), history)


def test_a_folder_with_another_runs_events_is_refused_and_a_resumed_run_continues_it(tmp_path):
    tiny_run(tmp_path / "tb", num_epochs=1)
    with pytest.raises(FileExistsError, match="already holds another run's event files"):
        tiny_run(tmp_path / "tb", run_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before anything was written

    def stop_after_first(epoch, history):
        return epoch == 1

    tiny_run(tmp_path / "tb2", run_dir=tmp_path / "run", on_epoch_end=stop_after_first)
    history = tiny_run(tmp_path / "tb2", run_dir=tmp_path / "run", resume=True)
    assert history["epoch"] == [1, 2]
    assert_matches(read_scalars(tmp_path / "tb2"), history)


def test_training_cli_tensorboard_writes_a_subfolder_per_run(tmp_path, mnist, monkeypatch, capsys):
    from mnist_course.tooling.train import main

    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    monkeypatch.setenv("MNIST_COURSE_FAST", "0")  # --fast trains one epoch only; this takes seconds anyway
    argv = ["--model", "mlp_small", "--epochs", "2", "--batch-size", "1000", "--optimizer", "sgd", "--lr", "0.05",
            "--scheduler", "steplr", "--quiet", "--tensorboard", str(tmp_path / "tb")]
    assert main([*argv, "--out", str(tmp_path / "run-a")]) == 0
    history = mc.training.History(json.loads((tmp_path / "run-a" / "history.json").read_text())["rows"])
    assert history["epoch"] == [1, 2]
    assert_matches(read_scalars(tmp_path / "tb" / "run-a"), history)
    (tmp_path / "other" / "run-a").mkdir(parents=True)  # a new --out of the same name: its log folder is taken
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "other" / "run-a")])
    assert exit_info.value.code == 2
    assert "--tensorboard" in capsys.readouterr().err
    assert not any((tmp_path / "other" / "run-a").iterdir())  # nothing trained or written
