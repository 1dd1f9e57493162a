"""mnist-course: the small library that the course's notebooks import.

Modules: ``data`` (MNIST in memory, batches), ``utils`` (paths, seeding, device, progress,
figures), ``results`` (results file and README table).
"""

__version__ = "0.1.0"

from .data import BatchIterator, DataCorruptError, DataNotFoundError, MNISTData, load_mnist, train_val_split
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
    "__version__", "BatchIterator", "DataCorruptError", "DataNotFoundError", "MNISTData", "load_mnist",
    "train_val_split", "fast_mode", "figures_dir", "get_device", "models_dir", "progress", "repo_root",
    "save_figure", "seed_everything", "set_progress", "setup_notebook",
]
