"""Shared fixtures. The real data come from $MNIST_COURSE_DATA (set by .ci/run and the Makefile's
users); tests that need them skip with a clear reason when they are absent."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST, loaded once per test session (skips if no data root holds it)."""
    import mnist_course as mc

    try:
        return mc.load_mnist("mnist", download=False)
    except mc.DataNotFoundError as e:
        pytest.skip(f"MNIST not available offline: {e}. Set MNIST_COURSE_DATA.")


@pytest.fixture()
def isolated_outputs(tmp_path, monkeypatch):
    """Point figures, results and models at a temporary folder for one test."""
    monkeypatch.setenv("MNIST_COURSE_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("MNIST_COURSE_RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setenv("MNIST_COURSE_MODELS", str(tmp_path / "models"))
    return tmp_path


@pytest.fixture(scope="session")
def course_cnn(mnist):
    """(model, mean, std, where): the course's best CNN when models_dir() holds a fully trained one
    (test accuracy >= 98.5 %); otherwise a small CNN (16, 32 channels) trained here for one epoch on
    the 60,000 training digits (about a minute on 2 CPU cores) and kept in models_dir() for next time."""
    import torch
    from torch import nn

    import mnist_course as mc
    from mnist_course.models import build_model

    course = mc.models_dir(create=False) / "course_cnn.safetensors"
    if course.exists():
        from mnist_course.pretrained import load_course_model

        model, info = load_course_model("cnn", device="cpu", train_if_missing=False)
        if info["test_acc"] >= 0.985:
            return model.eval(), info["mean"], info["std"], f"course model {course}"
    model = build_model("cnn_wide", channels=(16, 32), hidden=64)
    cache = mc.models_dir() / "drawing_test_cnn.pt"
    if cache.exists():
        try:
            model.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
            return model.eval(), mnist.mean, mnist.std, f"test CNN cached at {cache}"
        except (RuntimeError, OSError, ValueError):  # stale cache (the CNN class changed): retrain
            pass
    torch.manual_seed(0)
    model = build_model("cnn_wide", channels=(16, 32), hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for X, y in mc.BatchIterator(mnist.normalize(mnist.X_train), mnist.y_train, batch_size=128,
                                 shuffle=True, seed=0):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), cache)
    return model.eval(), mnist.mean, mnist.std, "small CNN trained for 1 epoch in the test"


def pytest_report_header(config):
    return f"MNIST_COURSE_DATA={os.environ.get('MNIST_COURSE_DATA', '<unset: <repo>/data>')}"
