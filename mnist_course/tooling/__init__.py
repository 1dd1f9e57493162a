"""Tools for instructors and maintainers: ``cli`` (the ``mnist-course`` command), ``runner`` (runs
the notebooks with papermill), ``nbrefs`` (nbval's stored outputs), ``workspace`` (the learner's
copies), ``site`` (the website), ``train`` (the training command), ``readme`` (the generated
README blocks), ``rooms`` (the rooms' import graph and its diagram). Modules load on first use."""

import importlib

SUBMODULES = ("cli", "nbrefs", "readme", "rooms", "runner", "site", "train", "workspace")
__all__ = list(SUBMODULES)


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():  # the lazy modules too, so that tab completion lists them before their first use
    return sorted(set(globals()) | set(__all__))
