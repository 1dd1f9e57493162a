"""Tools for instructors and maintainers: ``cli`` (the ``mnist-course`` command), ``runner`` (runs
the notebooks with papermill), ``nbrefs`` (nbval's stored outputs), ``workspace`` (the learner's
copies), ``site`` (the website), ``train`` (the training command), ``readme`` (the generated
README blocks), ``rooms`` (the rooms' import graph and its diagram), ``grade`` (a class's gradebook and report),
``wordcount`` (the lessons' prose, counted).
Modules load on first use."""

from .. import lazy_modules

SUBMODULES = ("cli", "grade", "nbrefs", "readme", "rooms", "runner", "site", "train", "wordcount", "workspace")
__all__ = list(SUBMODULES)

__getattr__, __dir__ = lazy_modules(__name__)
