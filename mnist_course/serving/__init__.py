"""Shipping the model, for whoever deploys it: ``export`` (ONNX, checked against PyTorch),
``service`` (the FastAPI web service, ``mnist-course serve``) and ``web/`` (the drawing page).
Modules load on first use (``mc.serving.export``)."""

import importlib

SUBMODULES = ("export", "service")
__all__ = list(SUBMODULES)


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():  # the lazy modules too, so that tab completion lists them before their first use
    return sorted(set(globals()) | set(__all__))
