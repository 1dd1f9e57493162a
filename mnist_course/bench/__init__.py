"""Measuring, for maintainers: ``benchmark`` (``mnist-course bench``), ``pictures`` (three picture
pipelines scored on realistic pictures), ``latency`` (single-image rows), ``load`` (a real server
under a bounded load test), ``calibrate`` (the not-sure threshold) and ``conditions`` (pictures as
people take them: a dev part to tune on, a held-out part that only reports). Modules load on first use."""

from .. import lazy_modules

SUBMODULES = ("benchmark", "calibrate", "conditions", "latency", "load", "pictures")
__all__ = list(SUBMODULES)

__getattr__, __dir__ = lazy_modules(__name__)
