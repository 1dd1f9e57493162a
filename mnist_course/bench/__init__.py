"""Measuring, for maintainers: ``benchmark`` (``mnist-course bench``), ``pictures`` (three picture
pipelines scored on realistic pictures), ``latency`` (single-image rows), ``load`` (a real server
under a bounded load test), ``calibrate`` (the not-sure threshold) and ``conditions`` (pictures as
people take them: a dev part to tune on, a held-out part that only reports). Modules load on first use."""

import importlib

SUBMODULES = ("benchmark", "calibrate", "conditions", "latency", "load", "pictures")
__all__ = list(SUBMODULES)


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():  # the lazy modules too, so that tab completion lists them before their first use
    return sorted(set(globals()) | set(__all__))
