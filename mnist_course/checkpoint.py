"""Saving and loading models and training state safely.

- Model weights go to ``.safetensors`` files: plain tensors plus a JSON metadata string, no pickle,
  so loading a file from the internet cannot run code.
- The training state (optimizer, scheduler, random generators, epoch, history) goes to a ``.pt``
  file written with ``torch.save`` and read back with ``torch.load(weights_only=True)``, which only
  rebuilds tensors, numbers, strings, lists and dicts and refuses anything else
  (:class:`UnsafeCheckpointError`).
- Files are written to a temporary name and renamed, so an interrupted save never leaves half a
  file; nothing is overwritten unless ``overwrite=True`` is passed.
- An unreadable file (empty, truncated, not a checkpoint, tensors that do not fit the model its
  metadata describes) raises :class:`CheckpointError` naming the file; :func:`load_model` checks the
  tensors' shapes against the described model before allocating anything.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write
from .models import rebuild


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds something other than tensors and plain data (possibly malicious code)."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: empty, truncated, not the expected format, or missing parts."""


MAX_LIST_LEN = 16  # longest list (hidden layers, conv blocks) accepted in a file's model config


def save_model(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None,
               overwrite: bool = False) -> Path:
    """Write a model's weights (and its class name, config and `metadata`) to a .safetensors file."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"type": type(model).__name__, "config": getattr(model, "config", None), **(metadata or {})}
    text = json.dumps(meta, default=_json_default)
    return atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"mnist_course": text}), overwrite)


def _json_default(obj):
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable; store plain numbers and strings in metadata")


def _open_error(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(f"{path} is not a readable .safetensors file ({type(e).__name__}: {e}); it is damaged, "
                           "truncated or of another format: save the model again, or delete the file.")


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict stored in a .safetensors file by save_model."""
    return _read_header(Path(path))[0]


def _read_header(path: Path) -> tuple[dict, dict]:
    """(metadata dict, {tensor name: shape tuple}) of a .safetensors file, without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        return json.loads(meta.get("mnist_course", "{}")), shapes
    except (SafetensorError, OSError, ValueError) as e:
        raise _open_error(path, e) from e


def read_weights(path: str | os.PathLike, device="cpu") -> dict:
    """The tensors of a .safetensors file: {name: tensor} on `device`; CheckpointError if unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise _open_error(path, e) from e


def load_weights(model: nn.Module, path: str | os.PathLike, device=None) -> dict:
    """Load a .safetensors file's weights into `model` (shapes must match); returns its metadata."""
    path = Path(path)
    state = read_weights(path, device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit this model ({type(model).__name__}): {e}") from e
    if device is not None:
        model.to(device)
    return read_metadata(path)


def rebuild_checked(type_name: str, config, path: str | os.PathLike) -> nn.Module:
    """An untrained model of class type_name with `config`, built only after checking (on PyTorch's 'meta'
    device, which allocates nothing) that the tensors in the .safetensors file at path have exactly its shapes."""
    path = Path(path)
    _, shapes = _read_header(path)
    bad = not isinstance(config, dict) or any(isinstance(v, (list, tuple)) and len(v) > MAX_LIST_LEN
                                              for v in config.values())
    try:
        if bad:
            raise ValueError(f"expected a dict of settings with lists of at most {MAX_LIST_LEN} entries")
        with torch.device("meta"):
            empty = rebuild(type_name, config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its metadata describes no valid model ({e}); "
                              "load it with load_weights(model, path) into a model you build yourself.") from e
    expected = {k: tuple(v.shape) for k, v in empty.state_dict().items()}
    if expected != shapes:
        raise CheckpointError(f"{path}: its tensors do not have the shapes of the {type_name} its metadata "
                              f"describes ({_first_difference(expected, shapes)}); the file is damaged or "
                              "was not written by save_model.")
    return rebuild(type_name, config)


def _first_difference(expected: dict, found: dict) -> str:
    for k in sorted(set(expected) | set(found)):
        if expected.get(k) != found.get(k):
            return f"{k}: expected {expected.get(k, 'nothing')}, file has {found.get(k, 'nothing')}"
    return "none"


def load_model(path: str | os.PathLike, device=None) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a .safetensors file by save_model: returns (model in eval mode, metadata)."""
    meta = read_metadata(path)
    if not meta.get("type") or meta.get("config") is None:
        raise ValueError(f"{path} has no model type/config metadata; load it with load_weights(model, path).")
    model = rebuild_checked(meta["type"], meta["config"], path)
    load_weights(model, path, device=device)
    return model.eval(), meta


def save_state(state: dict, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts) with torch.save, atomically."""
    return atomic_write(Path(path), lambda tmp: torch.save(state, tmp), overwrite)


def load_state(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a training state written by save_state; only plain data is accepted (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):  # a class or function to import and call: what a malicious pickle needs
            raise UnsafeCheckpointError(
                f"{path} contains objects other than tensors and plain data, so it was NOT loaded "
                f"(it could run arbitrary code). Only load checkpoints you trust. Details: {e}") from e
        raise _state_error(path, e) from e  # random bytes, another format: damaged, not dangerous
    except Exception as e:  # torch.load on a damaged file raises almost anything (EOFError, KeyError, ...)
        raise _state_error(path, e) from e


def _state_error(path: Path, e: Exception) -> CheckpointError:
    """The CheckpointError for a training state that torch.load could not read (e: what it raised)."""
    detail = next((line.strip() for line in str(e).splitlines() if "Unsupported" in line), str(e).strip())
    return CheckpointError(
        f"{path} is empty, truncated or not a training state ({type(e).__name__}: {detail[:200]}); it cannot "
        "be resumed: start a new run in another folder (or delete this one).")


def prepare_run_dir(path: str | os.PathLike, resume: bool = False) -> Path:
    """Create a run folder; an existing non-empty one is an error unless resuming from it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder.")
    if resume:
        if not (path / "state.pt").is_file():
            raise FileNotFoundError(f"cannot resume: {path / 'state.pt'} does not exist.")
        return path
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(
            f"run folder {path} already exists and is not empty; choose another folder, delete it, "
            "or resume it (fit(..., resume=True) / --resume).")
    path.mkdir(parents=True, exist_ok=True)
    return path
