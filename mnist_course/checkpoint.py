"""Saving and loading models and training state safely.

- Model weights go to ``.safetensors`` files: plain tensors plus a JSON metadata string, no pickle,
  so loading a file from the internet cannot run code.
- The training state (optimizer, scheduler, random generators, epoch, history) goes to a ``.pt``
  file written with ``torch.save`` and read back with ``torch.load(weights_only=True)``, which only
  rebuilds tensors, numbers, strings, lists and dicts and refuses anything else
  (:class:`UnsafeCheckpointError`).
- Files are written to a temporary name and renamed, so an interrupted save never leaves half a
  file; nothing is overwritten unless ``overwrite=True`` is passed.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import torch
from torch import nn

from .models import rebuild


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds something other than tensors and plain data (possibly malicious code)."""


def _atomic_write(path: Path, write, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is ordinary data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_model(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None,
               overwrite: bool = False) -> Path:
    """Write a model's weights (and its class name, config and `metadata`) to a .safetensors file."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"type": type(model).__name__, "config": getattr(model, "config", None), **(metadata or {})}
    text = json.dumps(meta, default=_json_default)
    return _atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"mnist_course": text}), overwrite)


def _json_default(obj):
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable; store plain numbers and strings in metadata")


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata dict stored in a .safetensors file by save_model."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta.get("mnist_course", "{}"))


def load_weights(model: nn.Module, path: str | os.PathLike, device=None) -> dict:
    """Load a .safetensors file's weights into `model` (shapes must match); returns its metadata."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    state = load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path} does not fit this model ({type(model).__name__}): {e}") from e
    if device is not None:
        model.to(device)
    return read_metadata(path)


def load_model(path: str | os.PathLike, device=None) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a .safetensors file by save_model: returns (model in eval mode, metadata)."""
    meta = read_metadata(path)
    if not meta.get("type") or meta.get("config") is None:
        raise ValueError(f"{path} has no model type/config metadata; load it with load_weights(model, path).")
    model = rebuild(meta["type"], meta["config"])
    load_weights(model, path, device=device)
    return model.eval(), meta


def save_state(state: dict, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write a training-state dict (tensors, numbers, strings, lists, dicts) with torch.save, atomically."""
    return _atomic_write(Path(path), lambda tmp: torch.save(state, tmp), overwrite)


def load_state(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a training state written by save_state; only plain data is accepted (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{path} contains objects other than tensors and plain data, so it was NOT loaded "
            f"(it could run arbitrary code). Only load checkpoints you trust. Details: {e}") from e


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
