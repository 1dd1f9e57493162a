"""mnist-course: the library that the course's notebooks import, and the tools around it.

The rooms, by reader (imports run one way: a room uses only the rooms above it):

- ``mnist_course`` itself, for learners: what the notebooks import. ``settings`` (paths, fast/full
  mode, environment variables), ``files`` (atomic writes), ``utils`` (seeding, device, progress,
  figures, timing, the setup cell), ``data``, ``numpy_nets`` (02-03), ``models``, ``training``,
  ``checkpoint``, ``pretrained``, ``recipes`` (03-06), ``augment``, ``permute`` (05-06), ``drawing``,
  ``photos``, ``pad`` (08), ``results`` (the numbers a run records).
- ``mnist_course.exercises``, for learners too: the checks that end every notebook and their
  reference solutions.
- ``mnist_course.serving``, for whoever ships the model: ONNX export, the web service, its page.
- ``mnist_course.bench``, for maintainers measuring speed and accuracy: the benchmark, realistic
  pictures scored, the load test, calibration.
- ``mnist_course.tooling``, for instructors and maintainers: the ``mnist-course`` command, the
  notebook runner, nbval references, the learner workspace, the website, the training command,
  the README generator.

Every module and room is reachable as ``mc.<name>`` (``import mnist_course as mc; mc.serving``),
loaded on first use.
"""

import importlib

from . import data, settings, utils
from .data import (
    BatchIterator,
    DataCorruptError,
    DataNotFoundError,
    MNISTData,
    load_mnist,
    train_val_split,
)
from .settings import VERSION as __version__
from .settings import fast_mode, figures_dir, models_dir, repo_root
from .utils import (
    get_device,
    progress,
    save_figure,
    seed_everything,
    set_progress,
    setup_notebook,
)

# Loaded on first use (mc.results, mc.serving, ...): importing the package stays light, and a
# learner's `import mnist_course` never loads the service, the benchmark or the tooling.
SUBMODULES = (
    "augment", "checkpoint", "drawing", "files", "models", "numpy_nets", "pad", "permute", "photos",
    "pretrained", "recipes", "results", "training", "exercises", "serving", "bench", "tooling",
)

__all__ = [
    "__version__", "data", "settings", "utils", "BatchIterator", "DataCorruptError", "DataNotFoundError",
    "MNISTData", "load_mnist", "train_val_split", "fast_mode", "figures_dir", "get_device", "models_dir",
    "progress", "repo_root", "save_figure", "seed_everything", "set_progress", "setup_notebook", *SUBMODULES,
]


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mnist_course' has no attribute {name!r}")
