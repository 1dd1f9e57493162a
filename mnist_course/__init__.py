"""mnist-course: the library that the course's notebooks import, and the tools around it.

The rooms, by reader (imports run one way: a room uses only the rooms above it):

- ``mnist_course`` itself, for learners: what the notebooks import. ``settings`` (paths, fast/full
  mode, environment variables), ``files`` (atomic writes), ``utils`` (seeding, device, progress,
  figures, timing, the setup cell), ``data``, ``numpy_nets`` (02-03), ``models``, ``training``,
  ``checkpoint``, ``pretrained``, ``recipes`` (03-06), ``augment``, ``permute`` (05-06),
  ``diagnostics`` (08: initialisation, per-layer statistics), ``lr_finder`` (09: the learning-rate
  range test), ``drawing``,
  ``photos``, ``pad`` (12), ``attribution`` (saliency, occlusion), ``adversarial`` (FGSM,
  adversarial training) (10), ``calibration``, ``embeddings`` (11), ``results`` (the numbers a run
  records).
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
import sys

from . import settings
from .settings import VERSION as __version__
from .settings import fast_mode, figures_dir, models_dir, repo_root

# Everything else is loaded on first use (mc.load_mnist, mc.results, mc.serving, ...): importing the
# package stays light (the `mnist-course` command starts without PyTorch), and a learner's
# `import mnist_course` never loads the service, the benchmark or the tooling.
NAMES = {  # mc.<name> -> the module that defines it
    "BatchIterator": "data", "DataCorruptError": "data", "DataNotFoundError": "data", "MNISTData": "data",
    "load_mnist": "data", "train_val_split": "data",
    "get_device": "utils", "progress": "utils", "save_figure": "utils", "seed_everything": "utils",
    "set_progress": "utils", "setup_notebook": "utils",
}
SUBMODULES = (
    "adversarial", "attribution", "augment", "calibration", "checkpoint", "data", "diagnostics", "drawing", "embeddings", "files", "lr_finder", "models", "numpy_nets", "pad", "permute", "photos",
    "pretrained", "recipes", "results", "training", "utils", "exercises", "serving", "bench", "tooling",
)

__all__ = ["__version__", "settings", "fast_mode", "figures_dir", "models_dir", "repo_root", *NAMES, *SUBMODULES]


def lazy_modules(package: str):
    """(__getattr__, __dir__) for a package whose modules load on first use (PEP 562). `package` is
    the package's __name__; its SUBMODULES (module names) and NAMES ({attribute: module}, optional)
    are read at each call. __dir__ lists them before their first use (tab completion)."""

    def __getattr__(name):
        module = sys.modules[package]
        names = vars(module).get("NAMES", {})
        if name in module.SUBMODULES:
            return importlib.import_module(f".{name}", package)
        if name in names:
            return getattr(importlib.import_module(f".{names[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        module = sys.modules[package]
        return sorted(set(vars(module)) | set(module.__all__))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_modules(__name__)
