"""Shipping the model, for whoever deploys it: ``export`` (ONNX, checked against PyTorch),
``service`` (the FastAPI web service, ``mnist-course serve``) and ``web/`` (the drawing page).
Modules load on first use (``mc.serving.export``)."""

from .. import lazy_modules

SUBMODULES = ("export", "service")
__all__ = list(SUBMODULES)

__getattr__, __dir__ = lazy_modules(__name__)
