"""Notebook 06's best CNN and `mnist-course train --recipe best-cnn` are one recipe, trained the same way."""

from pathlib import Path

import nbformat
import pytest
import torch

import mnist_course as mc
from mnist_course.augment import RandomAffine
from mnist_course.models import build_model
from mnist_course.recipes import BEST_CNN, train_setup
from mnist_course.tooling.train import main
from mnist_course.training import fit, make_optimizer, make_scheduler, train_epoch

NOTEBOOK_06 = Path(__file__).resolve().parents[1] / "notebooks" / "06_regularisation_and_tricks.ipynb"


def notebook_06_as_recorded(data, X_train, y_train, num_epochs, seed=0, device=None):
    """Notebook 06's best-CNN cell as it was when it recorded 99.52 % (commit 31ff151), call for call."""
    torch.manual_seed(seed)
    best_model = build_model("cnn").to(device)
    augment = RandomAffine.for_data(data, seed=seed)
    train_loader = mc.BatchIterator(X_train, y_train, batch_size=128, shuffle=True, seed=seed, device=device,
                                    transform=augment)
    optimizer = make_optimizer("adamw", best_model.parameters(), lr=3e-3)
    scheduler = make_scheduler("onecycle", optimizer, num_epochs, len(train_loader))
    return best_model, train_loader, optimizer, scheduler


def small_data(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return mc.MNISTData("mnist", tuple("0123456789"), X, y, X[:50], y[:50])


def test_train_setup_draws_the_same_weights_batches_and_augmentation_as_notebook_06():
    data = small_data()
    X, y = data.normalize(data.X_train), data.y_train
    a = train_setup(data, X, y, BEST_CNN, num_epochs=2, seed=3)
    b = notebook_06_as_recorded(data, X, y, num_epochs=2, seed=3)
    for setup in (a, b):  # two epochs: the loaders' and the augmentation's generators move on
        model, loader, optimizer, scheduler = setup
        torch.manual_seed(7)  # dropout's global generator, the same for both
        for _ in range(2):
            train_epoch(model, loader, optimizer, scheduler=scheduler)
    for (name, p), q in zip(a[0].state_dict().items(), b[0].state_dict().values()):
        assert torch.equal(p, q), name


def test_the_cli_recipe_trains_the_same_model_as_notebook_06(tmp_path, monkeypatch):
    from fake_data import tiny_mnist

    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    tiny_mnist(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    assert main(["--recipe", "best-cnn", "--epochs", "2", "--val-size", "50", "--quiet", "--out", str(out)]) == 0

    data = mc.load_mnist()  # notebook 06's path, on the same data
    X_train, y_train, X_val, y_val = data.split(val_size=50, seed=0)
    X_train, X_val = data.normalize(X_train), data.normalize(X_val)
    val_loader = mc.BatchIterator(X_val, y_val, batch_size=1000)
    model, train_loader, optimizer, scheduler = notebook_06_as_recorded(data, X_train, y_train, 2)
    fit(model, train_loader, val_loader, 2, optimizer, scheduler, live_plot=False, verbose=False)
    cli_model, _ = mc.checkpoint.load_model(out / "best.safetensors")
    for (name, p), q in zip(model.state_dict().items(), cli_model.state_dict().values()):
        assert torch.equal(p, q), name


def test_notebook_06_takes_its_best_cnn_from_recipes():
    nb = nbformat.read(NOTEBOOK_06, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "BEST_CNN" in source and "train_setup(" in source, \
        "notebook 06 must build its best CNN with mnist_course.recipes.train_setup(..., recipes.BEST_CNN, ...)"
    assert 'build_model("cnn")' not in source and "lr=3e-3" not in source  # no second copy of the recipe


@pytest.mark.parametrize("key", ["model", "optimizer", "lr", "scheduler", "batch_size", "epochs", "val_size"])
def test_best_cnn_is_the_recipe_notebook_06_recorded(key):
    recorded = {"model": "cnn", "optimizer": "adamw", "lr": 3e-3, "scheduler": "onecycle", "batch_size": 128,
                "epochs": 15, "val_size": 5000}  # results/results.json: 99.52 %, 15 epochs ("cnn" was called "cnn_best" then)
    assert BEST_CNN[key] == recorded[key]
