"""mnist-course: the small library that the course's notebooks import.

Modules: ``data`` (MNIST in memory, batches), ``utils`` (paths, seeding, device, progress,
figures), ``results`` (results file and README table), ``numpy_nets`` (NumPy networks with
hand-written backprop, notebooks 02-03), ``models`` / ``training`` / ``checkpoint`` /
``pretrained`` (PyTorch models and the training loop, 03-06), ``augment`` and ``permute`` (05-06),
``drawing`` (preprocessing and the drawing pad, 08), ``recipes`` (the best-CNN recipe that notebook 06
and the training CLI share), ``exercises`` / ``solutions`` (checked exercises and their reference
solutions), ``nbrefs`` (the stored nbval reference outputs).
"""

__version__ = "0.1.0"

import importlib

from . import data, utils
from .data import (
    BatchIterator,
    DataCorruptError,
    DataNotFoundError,
    MNISTData,
    load_mnist,
    train_val_split,
)
from .utils import (
    fast_mode,
    figures_dir,
    get_device,
    models_dir,
    progress,
    repo_root,
    save_figure,
    seed_everything,
    set_progress,
    setup_notebook,
)

__all__ = [
    "__version__", "data", "utils", "BatchIterator", "DataCorruptError", "DataNotFoundError", "MNISTData", "load_mnist",
    "train_val_split", "fast_mode", "figures_dir", "get_device", "models_dir", "progress", "repo_root",
    "save_figure", "seed_everything", "set_progress", "setup_notebook",
]

# Submodules loaded on first use (mc.results, mc.models, ...), so that `python -m
# mnist_course.results` and friends do not find themselves imported twice.
_SUBMODULES = {
    "results", "course", "numpy_nets", "models", "training", "checkpoint", "pretrained",
    "train", "benchmark", "augment", "permute", "drawing", "recipes", "exercises", "solutions", "nbrefs",
}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mnist_course' has no attribute {name!r}")
