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


def pytest_report_header(config):
    return f"MNIST_COURSE_DATA={os.environ.get('MNIST_COURSE_DATA', '<unset: <repo>/data>')}"
