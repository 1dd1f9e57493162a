"""Checkpoints: round trips, refusal of pickled code, no silent overwrite, course models."""

import json
import os

import pytest
import torch

from mnist_course import checkpoint
from mnist_course.models import build_model
from mnist_course.pretrained import (
    FastModelError,
    course_model_paths,
    load_course_model,
    save_course_model,
)
from mnist_course.utils import fast_mode

SENTINEL = "mnist_course_pwned"


class Evil:
    """Unpickling this would set an environment variable (a stand-in for running any code)."""

    def __reduce__(self):
        return (exec, (f"import os; os.environ[{SENTINEL!r}] = 'yes'",))


def test_model_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    path = checkpoint.save_model(model, tmp_path / "m.safetensors", {"test_acc": 0.99})
    again, meta = checkpoint.load_model(path)
    X = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(again(X), model(X), rtol=0, atol=0)
    assert meta["test_acc"] == 0.99 and meta["type"] == "CNN"


def test_existing_files_are_not_overwritten(tmp_path):
    model = build_model("mlp_small")
    path = checkpoint.save_model(model, tmp_path / "m.safetensors")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save_model(model, path)
    checkpoint.save_model(model, path, overwrite=True)


def test_weights_of_another_model_are_refused(tmp_path):
    path = checkpoint.save_model(build_model("mlp_small"), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="does not fit"):
        checkpoint.load_weights(build_model("cnn_small"), path)


def test_training_state_round_trip(tmp_path):
    model = build_model("mlp_small")
    opt = torch.optim.Adam(model.parameters())
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
             "rng": {"torch": torch.get_rng_state()}, "history": {"rows": [{"a": 1.5}]}}
    checkpoint.save_state(state, tmp_path / "state.pt")
    again = checkpoint.load_state(tmp_path / "state.pt")
    assert again["epoch"] == 3 and again["history"] == {"rows": [{"a": 1.5}]}
    assert torch.equal(again["rng"]["torch"], state["rng"]["torch"])


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(SENTINEL, raising=False)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Evil()}, path)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="NOT loaded"):
        checkpoint.load_state(path)
    assert SENTINEL not in os.environ
    # and the same file as a run to resume from
    (tmp_path / "run").mkdir()
    os.replace(path, tmp_path / "run" / "state.pt")
    from mnist_course.training import fit

    model = build_model("mlp_small")
    with pytest.raises(checkpoint.UnsafeCheckpointError):
        fit(model, [], None, 1, torch.optim.SGD(model.parameters(), lr=0.1), run_dir=tmp_path / "run",
            resume=True, verbose=False, live_plot=False)
    assert SENTINEL not in os.environ


def test_prepare_run_dir(tmp_path):
    run = checkpoint.prepare_run_dir(tmp_path / "new")
    assert run.is_dir()
    (run / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        checkpoint.prepare_run_dir(run)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        checkpoint.prepare_run_dir(run, resume=True)


INFO = {"mean": 0.13, "std": 0.31, "test_acc": 0.5, "classes": [str(i) for i in range(10)], "dataset": "mnist"}


def test_course_model_save_and_load(isolated_outputs):
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    path = save_course_model(model, "cnn", INFO)
    fast_folder = ("fast",) if fast_mode() else ()  # fast-mode models live apart, in models/fast
    assert path == course_model_paths("cnn")[0] and path.parent == isolated_outputs.joinpath("models", *fast_folder)
    loaded, info = load_course_model("cnn", device="cpu", train_if_missing=False)
    assert not loaded.training and info["test_acc"] == 0.5 and info["path"] == str(path)
    X = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(X), model(X))
    with pytest.raises(FileExistsError):
        save_course_model(model, "cnn", INFO)
    save_course_model(model, "cnn", {**INFO, "test_acc": 0.6}, overwrite=True)
    assert json.loads(course_model_paths("cnn")[1].read_text())["test_acc"] == 0.6


def test_missing_course_model(isolated_outputs):
    with pytest.raises(FileNotFoundError, match="notebook 06"):
        load_course_model("cnn", device="cpu", train_if_missing=False)
    with pytest.raises(ValueError, match="unknown course model"):
        load_course_model("resnet")
    with pytest.raises(ValueError, match="missing"):
        save_course_model(build_model("mlp"), "mlp", {"mean": 0.1})


def test_missing_course_model_is_trained_quickly_in_fast_mode(isolated_outputs, mnist, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    model, info = load_course_model("cnn", device="cpu")
    assert info["fast"] is True and info["test_acc"] > 0.5 and info["type"] == "CNN"
    assert course_model_paths("cnn")[0].is_file()
    again, info2 = load_course_model("cnn", device="cpu")  # now loaded, not retrained
    assert info2["saved"] == info["saved"]


# ----------------------------------------------------------------------- unreadable files: clear errors


@pytest.mark.parametrize("cut", [0, 0.5])
def test_an_empty_or_truncated_state_names_the_file(tmp_path, cut):
    path = tmp_path / "state.pt"
    checkpoint.save_state({"epoch": 1, "w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:int(cut * path.stat().st_size)])
    with pytest.raises(checkpoint.CheckpointError, match=f"{path}.*(empty|truncated).*new run"):
        checkpoint.load_state(path)


def test_a_state_without_the_training_keys_cannot_be_resumed(tmp_path):
    from mnist_course.training import fit

    (tmp_path / "run").mkdir()
    checkpoint.save_state({"model": {}, "epoch": 1}, tmp_path / "run" / "state.pt")
    model = build_model("mlp_small")
    with pytest.raises(checkpoint.CheckpointError, match="state.pt is not a training state.*missing optimizer"):
        fit(model, [], None, 2, torch.optim.SGD(model.parameters(), lr=0.1), run_dir=tmp_path / "run", resume=True,
            verbose=False, live_plot=False)


@pytest.mark.parametrize("load", [checkpoint.load_model, checkpoint.read_metadata,
                                  lambda p: checkpoint.load_weights(build_model("mlp_small"), p)])
def test_a_garbage_safetensors_file_names_the_file(tmp_path, load):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"this is not a model" * 20)
    with pytest.raises(checkpoint.CheckpointError, match=f"{path} is not a readable .safetensors"):
        load(path)


def crafted(tmp_path, config):
    """A small mlp_small file whose metadata claims another config."""
    path = checkpoint.save_model(build_model("mlp_small"), tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    meta = {"mnist_course": json.dumps({"type": "MLP", "config": config})}
    save_file(load_file(str(path)), str(path), metadata=meta)
    return path


@pytest.mark.parametrize("config, message", [
    ({"hidden": [10**7, 10**7]}, "do not have the shapes"),  # 10^14 weights: terabytes if built
    ({"hidden": [8] * 1000}, "at most 16"),
    ({"hidden": [8], "evil": 1}, "describes no valid model"),
])
def test_load_model_checks_the_files_tensors_before_building(tmp_path, monkeypatch, config, message):
    path = crafted(tmp_path, config)
    built = []
    real = checkpoint.rebuild
    monkeypatch.setattr(checkpoint, "rebuild", lambda *a: built.append(torch.empty(0).device) or real(*a))
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load_model(path)
    assert all(d.type == "meta" for d in built)  # nothing was allocated for real


def test_course_model_without_its_json_uses_the_copy_in_the_weights(isolated_outputs, monkeypatch):
    model = build_model("cnn").eval()
    weights = save_course_model(model, "cnn", INFO)
    course_model_paths("cnn")[1].unlink()
    import mnist_course.pretrained as P

    monkeypatch.setattr(P, "train_quick_model", lambda *a, **k: pytest.fail("must not retrain"))
    loaded, info = load_course_model("cnn", device="cpu")
    assert info["test_acc"] == INFO["test_acc"] and info["path"] == str(weights)
    X = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(X), model(X))


def test_course_json_without_its_weights_is_a_clear_error(isolated_outputs, monkeypatch):
    save_course_model(build_model("mlp"), "mlp", INFO)
    course_model_paths("mlp")[0].unlink()
    import mnist_course.pretrained as P

    monkeypatch.setattr(P, "train_quick_model", lambda *a, **k: pytest.fail("must not retrain"))
    with pytest.raises(FileNotFoundError, match="exists but its weights"):
        load_course_model("mlp", device="cpu")


def test_a_fast_mode_course_model_is_refused_in_full_mode(isolated_outputs, monkeypatch):
    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    save_course_model(build_model("cnn"), "cnn", {**INFO, "fast": True, "n_train": 1600})
    with pytest.raises(FastModelError, match="trained in fast mode.*1600 images.*full mode"):
        load_course_model("cnn", device="cpu")
    assert load_course_model("cnn", device="cpu", allow_fast=True)[1]["fast"] is True
    import mnist_course.pretrained as P

    monkeypatch.setattr(P, "fast_mode", lambda: True)  # a fast-mode caller may use it
    assert load_course_model("cnn", device="cpu")[1]["fast"] is True


def test_should_replace_chooses_on_validation_only():
    """The course-model rule of notebooks 04 and 06: validation accuracy on the same split, never test."""
    from mnist_course.pretrained import should_replace

    new = {"val_acc": 0.990, "val_size": 5000, "seed": 0, "test_acc": 0.980}
    stored = {"val_acc": 0.985, "val_size": 5000, "seed": 0, "test_acc": 0.999, "trained_by": "notebooks/04"}
    assert should_replace(None, new)[0]
    assert should_replace({**stored, "trained_by": "pretrained.train_quick_model"}, new)[0]
    assert should_replace({**stored, "fast": True, "val_acc": 0.999}, new)[0]
    assert should_replace({k: v for k, v in stored.items() if k != "val_acc"}, new)[0]
    assert should_replace(stored, new)[0]                       # better on validation, worse on test: replace
    assert not should_replace({**stored, "val_acc": 0.990}, new)[0]   # a tie keeps the stored model
    assert not should_replace({**stored, "val_acc": 0.995, "test_acc": 0.5}, new)[0]
    replace, why = should_replace({**stored, "val_size": 10_000, "val_acc": 0.5}, new)
    assert not replace and "another split" in why
