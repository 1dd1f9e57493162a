"""The course's trained models, stored where later notebooks (07, 12) and the drawing pad find them.

``load_course_model("cnn")`` returns the course's best CNN (trained in notebook 06) and
``load_course_model("mlp")`` the full-size MLP, from ``<models_dir()>/course_<name>.safetensors`` with
``course_<name>.json`` beside it (mean, std, test accuracy, classes, dataset, how it was trained).
When the files are missing it trains a quick stand-in (fast mode: seconds on a subset; full mode:
a few minutes) and saves it. Existing files are never overwritten unless ``overwrite=True`` is passed.
The weights file carries a copy of the info, used when the .json is missing. In full mode a model
trained in fast mode (``info["fast"]``) is refused with :class:`FastModelError`.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch
from torch import nn

from .checkpoint import (
    CheckpointError,
    load_weights,
    read_metadata,
    rebuild_checked,
    save_model,
)
from .files import atomic_write
from .models import build_model, count_parameters
from .settings import fast_mode, models_dir
from .utils import get_device

COURSE_MODELS = ("cnn", "mlp")  # the course models: build_model names too
REQUIRED_INFO = ("mean", "std", "test_acc", "classes", "dataset")


def _check_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in COURSE_MODELS:
        raise ValueError(f"unknown course model {name!r}: choose one of {', '.join(COURSE_MODELS)}.")
    return key


def course_model_paths(name: str = "cnn", dataset: str = "mnist") -> tuple[Path, Path]:
    """(weights, info) paths of a course model: <models_dir()>/course_<name>[_fashion].safetensors and .json."""
    from .data import canonical_name

    stem = f"course_{_check_name(name)}" + ("" if canonical_name(dataset) == "mnist" else f"_{canonical_name(dataset)}")
    folder = models_dir()
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def save_course_model(model: nn.Module, name: str, info: dict, overwrite: bool = False,
                      dataset: str | None = None) -> Path:
    """Store a trained model as course model `name` ('cnn' or 'mlp'); info needs mean, std, test_acc,
    classes and dataset. Refuses to replace an existing one unless overwrite=True. Returns the weights path."""
    missing = [k for k in REQUIRED_INFO if k not in info]
    if missing:
        raise ValueError(f"info is missing {missing}; give at least {', '.join(REQUIRED_INFO)}.")
    if not hasattr(model, "config"):
        raise TypeError("only mnist_course.models.MLP/CNN models (which keep a .config) can be stored as course models")
    weights, meta_path = course_model_paths(name, dataset or info["dataset"])
    if not overwrite and (weights.exists() or meta_path.exists()):
        raise FileExistsError(f"{weights} already exists; pass overwrite=True to replace the course's {name} model.")
    info = {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.items() if k != "path"}
    info = {"type": type(model).__name__, "config": model.config, "parameters": count_parameters(model),
            "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **info}
    save_model(model, weights, metadata=info, overwrite=overwrite)
    atomic_write(meta_path, json.dumps(info, indent=2) + "\n")
    return weights


def read_info(name: str = "cnn", dataset: str = "mnist") -> dict | None:
    """The stored info dict of a course model, or None when there is none yet."""
    _, meta_path = course_model_paths(name, dataset)
    return json.loads(meta_path.read_text()) if meta_path.is_file() else None


def should_replace(old: dict | None, new: dict) -> tuple[bool, str]:
    """(replace?, why) for storing a course model described by `new` over the stored one's info `old`.

    Chosen on validation only (notebooks 04 and 06): replace when nothing is stored, when the stored
    model is a quick stand-in or a fast-mode model, when it has no val_acc, or when new["val_acc"] is
    strictly higher on the same split (val_size and seed). Test accuracy is never looked at.
    """
    if old is None:
        return True, "no course model yet"
    if old.get("trained_by") == "pretrained.train_quick_model" or old.get("fast"):
        return True, "the stored one is a quick stand-in"
    if old.get("val_acc") is None:
        return True, "the stored one has no validation accuracy to compare"
    if (old.get("val_size"), old.get("seed")) != (new["val_size"], new["seed"]):
        return False, (f"it was validated on another split ({old.get('val_size')} images, seed {old.get('seed')}), "
                       "so its validation accuracy does not compare with this run's; delete its files to store "
                       "this run instead")
    if new["val_acc"] > old["val_acc"]:
        return True, f"higher validation accuracy than the stored one's {100 * old['val_acc']:.2f}%"
    return False, (f"its validation accuracy {100 * old['val_acc']:.2f}% ({old.get('trained_by', '?')}) >= "
                   f"this run's {100 * new['val_acc']:.2f}%")


class FastModelError(RuntimeError):
    """A fast-mode course model (trained on a small subset, for CI) was about to be used in full mode."""


def load_course_model(name: str = "cnn", device=None, train_if_missing: bool = True,
                      dataset: str = "mnist", allow_fast: bool | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode on `device`, info dict) for course model 'cnn' (best CNN) or 'mlp' (full-size MLP).

    info has mean, std, test_acc, classes, dataset, path, ... The model takes images normalised with
    info's mean/std, (N, 1, 28, 28) -> logits (N, 10). Missing files: train_quick_model, unless
    train_if_missing=False (then FileNotFoundError). A model trained in fast mode (info["fast"]) is
    refused in full mode (FastModelError) unless allow_fast=True; allow_fast=None allows it in fast mode only.
    """
    key = _check_name(name)
    device = get_device() if device is None else torch.device(device)
    weights, meta_path = course_model_paths(key, dataset)
    if not weights.exists():
        if meta_path.exists():
            raise FileNotFoundError(f"{meta_path} exists but its weights {weights} do not; delete {meta_path} "
                                    "(a quick model is then trained) or run notebook 06 (cnn) / 04 (mlp) again.")
        if not train_if_missing:
            raise FileNotFoundError(
                f"no course model at {weights}. Run notebook 06 (cnn) / 04 (mlp) to train it, or call "
                f"load_course_model({key!r}, train_if_missing=True) to train a quick one.")
        model, info = train_quick_model(key, dataset=dataset, device=device)
        try:
            save_course_model(model, key, info, overwrite=False)
        except FileExistsError:  # another notebook saved one meanwhile: use that one
            pass
        return load_course_model(key, device, train_if_missing=False, dataset=dataset, allow_fast=allow_fast)
    info = _read_info(weights, meta_path)
    _check_fast(info, weights, fast_mode() if allow_fast is None else allow_fast)
    model = rebuild_checked(info["type"], info["config"], weights)
    load_weights(model, weights, device=device)
    info["path"] = str(weights)
    return model.eval(), info


def _read_info(weights: Path, meta_path: Path) -> dict:
    """The info of a course model: its .json, or (when that is missing) the copy inside the weights' metadata."""
    try:
        info = json.loads(meta_path.read_text()) if meta_path.is_file() else read_metadata(weights)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{meta_path} is not valid JSON ({e}); delete it (the copy inside {weights.name} "
                              "is then used) or run notebook 06 (cnn) / 04 (mlp) again.") from e
    missing = [k for k in (*REQUIRED_INFO, "type", "config") if k not in info]
    if missing:
        source = meta_path if meta_path.is_file() else f"{weights} (no {meta_path.name} beside it)"
        raise CheckpointError(f"{source} lacks {', '.join(missing)}; delete {weights.name} and {meta_path.name} "
                              "to train a quick model, or run notebook 06 (cnn) / 04 (mlp) again.")
    return info


def _check_fast(info: dict, weights: Path, allow_fast: bool) -> None:
    if info.get("fast") and not allow_fast:
        raise FastModelError(
            f"{weights} was trained in fast mode (on {info.get('n_train', 'a few')} images, for quick checks), "
            "so its results are not the course's. Run notebook 06 (cnn) / 04 (mlp) in full mode to replace it, "
            "or pass allow_fast=True to use it anyway.")


def _a(class_name: str) -> str:
    """'an MLP', 'a CNN', 'a Sequential', 'an Identity': the article as the name is said."""
    vowel_sound = class_name[:1] in ("AEFHILMNORSX" if class_name.isupper() else "AEIOUaeiou")
    return ("an " if vowel_sound else "a ") + class_name


def check_course_architecture(name: str, model: nn.Module, where: str = "the model") -> None:
    """Raise CheckpointError unless `model` is course model `name`'s architecture: build_model(name)'s class
    with exactly its tensor names and shapes ('cnn': the course CNN, 98,682 parameters; 'mlp': the MLP)."""
    key = _check_name(name)
    with torch.device("meta"):  # allocates nothing
        expected = build_model(key)

    def shapes(m: nn.Module) -> dict:
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}

    if type(model) is type(expected) and shapes(model) == shapes(expected):
        return
    notebook = {"cnn": "06", "mlp": "04"}[key]
    raise CheckpointError(
        f"{where} is stored as course model {key!r}, the course {type(expected).__name__} with "
        f"{count_parameters(expected):,} parameters, but it is {_a(type(model).__name__)} with "
        f"{count_parameters(model):,} parameters: store the right model there (notebook {notebook}), or delete "
        "its files so that a quick one is trained.")


def train_quick_model(name: str = "cnn", dataset: str = "mnist", device=None, fast: bool | None = None,
                      seed: int = 0, verbose: bool = True) -> tuple[nn.Module, dict]:
    """Train a stand-in course model: fast mode 4,000 images for 1 epoch (seconds), full mode
    the whole training set for 2 epochs (a few minutes on a CPU). Returns (model, info)."""
    from .data import BatchIterator, load_mnist
    from .training import evaluate, fit, make_optimizer, make_scheduler

    key = _check_name(name)
    fast = fast_mode() if fast is None else fast
    device = get_device() if device is None else torch.device(device)
    data = load_mnist(dataset)
    if fast:
        data = data.subset(4000, 2000, seed=seed)
    num_epochs = 1 if fast else 2
    if verbose:
        print(f"training a quick course model {key!r} on {dataset} ({len(data.X_train)} images, "
              f"{num_epochs} epoch(s)); run notebook 06 for the full one")
    torch.manual_seed(seed)
    model = build_model(key).to(device)
    train_loader = BatchIterator(data.normalize(data.X_train), data.y_train, batch_size=128, shuffle=True,
                                 seed=seed, device=device)
    test_loader = BatchIterator(data.normalize(data.X_test), data.y_test, batch_size=1024, device=device)
    optimizer = make_optimizer("adamw", model.parameters(), lr=3e-3)
    scheduler = make_scheduler("onecycle", optimizer, num_epochs, len(train_loader))
    fit(model, train_loader, None, num_epochs, optimizer, scheduler, live_plot=False, verbose=verbose)
    test = evaluate(model, test_loader)
    info = {"mean": data.mean, "std": data.std, "test_acc": test["acc"], "classes": list(data.classes),
            "dataset": data.name, "trained_by": "pretrained.train_quick_model", "fast": bool(fast),
            "num_epochs": num_epochs, "n_train": len(data.X_train), "model": key}
    if verbose:
        print(f"quick {key}: test accuracy {100 * test['acc']:.2f}%")
    return model.eval(), info


def describe(info: dict) -> str:
    """One line about a course model's info dict."""
    params = info.get("parameters")
    params = f"{params:,}" if isinstance(params, int) else "?"
    return (f"{info.get('type', '?')} with {params} parameters, test accuracy "
            f"{100 * info['test_acc']:.2f}% on {info['dataset']}, from {info.get('path', '?')}")


__all__ = ["COURSE_MODELS", "REQUIRED_INFO", "FastModelError", "check_course_architecture", "course_model_paths", "describe", "load_course_model", "read_info",
           "save_course_model", "train_quick_model"]
