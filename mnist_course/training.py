"""Training PyTorch models on in-memory batches (notebook 04 onwards; notebook 03 shows the loop in full).

The loop is the canonical one (pytorch/examples ``mnist/main.py``): ``model.train()``, forward,
loss, ``backward()``, ``step()``; then ``model.eval()`` and ``torch.no_grad()`` to evaluate.
Loaders are :class:`mnist_course.BatchIterator` objects over ``data.normalize(...)`` tensors.

- :func:`train_epoch` / :func:`evaluate` return ``{"loss": float, "acc": float}`` (acc in [0, 1]).
- :func:`fit` runs epochs with validation, a :class:`History` (per-epoch loss, accuracy, learning rate
  and wall time; ``.to_json``), early stopping, a live plot in notebooks and, with ``run_dir``,
  checkpoints that an interrupted run resumes from with the same final metrics, with ``log_dir``
  TensorBoard scalars per epoch; a NaN/infinite loss raises :class:`DivergedError`.
- :func:`make_optimizer` (sgd, adam, adamw, rmsprop) and :func:`make_scheduler` (steplr, onecycle).
  Schedulers are stepped once per **batch** (by :func:`train_epoch`), so StepLR's step size, given
  in epochs, is converted to batches.

Same seed, same machine, same data: the same metrics (weights from ``torch.manual_seed``, batches
from the loader's own generator, dropout from the global generator whose state checkpoints keep).
Give each run a fresh loader (or reseed it): a loader shared by two runs hands the second one
different batches. The number of CPU threads changes the order of float sums, so compare runs made
with the same ``torch.get_num_threads()``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .files import atomic_write
from .utils import progress

# ------------------------------------------------------------------------------------ one epoch


def _device_of(model: nn.Module, device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def train_epoch(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer,
                loss_fn: Callable = F.cross_entropy, device=None, scheduler=None, desc: str = "train") -> dict:
    """One pass over train_loader's (X, y) batches, updating the model; returns mean loss and accuracy.

    scheduler, when given, is stepped after every batch (OneCycle; StepLR from make_scheduler counts batches).
    Taught in notebook 03, section 6.
    """
    device = _device_of(model, device)
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for X, y in progress(train_loader, desc=desc, total=len(train_loader)):
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        y_hat = model(X)
        loss = loss_fn(y_hat, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (y_hat.argmax(dim=1) == y).sum()
        n += len(y)
    if n == 0:
        raise ValueError("train_loader produced no batches; is the data empty or batch_size too large with drop_last?")
    mean_loss = total_loss.item() / n
    check_finite(mean_loss, "training loss")
    return {"loss": mean_loss, "acc": correct.item() / n}


class DivergedError(RuntimeError):
    """Training diverged: the loss became NaN or infinite (usually a learning rate far too high)."""


def check_finite(value: float, what: str = "loss") -> None:
    """Raise DivergedError when value (a float) is NaN or infinite."""
    if not math.isfinite(value):
        raise DivergedError(f"{what} became {value}: training diverged. Lower the learning rate (lr) "
                            "and start again; the weights are no longer usable.")


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn: Callable = F.cross_entropy, device=None) -> dict:
    """Mean loss and accuracy (fraction in [0, 1]) of the model over a loader's (X, y) batches. Taught in notebook 03, section 6."""
    device = _device_of(model, device)
    model.eval()
    total_loss = torch.zeros((), device=device, dtype=torch.float64 if device.type != "mps" else torch.float32)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for X, y in loader:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        y_hat = model(X)
        total_loss += loss_fn(y_hat, y, reduction="sum").to(total_loss.dtype)
        correct += (y_hat.argmax(dim=1) == y).sum()
        n += len(y)
    if n == 0:
        raise ValueError("the loader produced no batches to evaluate")
    return {"loss": total_loss.item() / n, "acc": correct.item() / n}


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 1024, device=None) -> torch.Tensor:
    """Logits (N, 10) on the CPU for normalised images X: (N, 1, 28, 28), computed in eval mode in batches."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor of normalised images, got {type(X).__name__}")
    device = _device_of(model, device)
    model.eval()
    outs = [model(X[i:i + batch_size].to(device)).cpu() for i in range(0, len(X), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0, 10)


def confusion_matrix(y: torch.Tensor, y_pred: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Counts C[i, j] of true class i predicted as j; y, y_pred: (N,) int -> C: (num_classes, num_classes)."""
    y, y_pred = torch.as_tensor(y).long().cpu(), torch.as_tensor(y_pred).long().cpu()
    if y.shape != y_pred.shape:
        raise ValueError(f"y {tuple(y.shape)} and y_pred {tuple(y_pred.shape)} must have the same shape")
    return torch.bincount(y * num_classes + y_pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


# ----------------------------------------------------------------------- optimisers, schedules

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def make_optimizer(name: str, params, lr: float | None = None, momentum: float = 0.9,
                   weight_decay: float | None = None) -> torch.optim.Optimizer:
    """An optimizer by name: 'sgd' (with momentum), 'adam', 'adamw' or 'rmsprop'; lr=None uses a sensible default. Taught in notebook 06, section 2a (SGD with momentum, RMSprop and AdamW written by hand)."""
    key = str(name).strip().lower()
    if key not in DEFAULT_LR:
        raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(DEFAULT_LR)}.")
    lr = DEFAULT_LR[key] if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay or 0.0)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay or 0.0)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.01 if weight_decay is None else weight_decay)
    return torch.optim.RMSprop(params, lr=lr, momentum=0.0, weight_decay=weight_decay or 0.0)


def make_scheduler(name: str | None, optimizer: torch.optim.Optimizer, num_epochs: int, steps_per_epoch: int,
                   step_size: int | None = None, gamma: float = 0.1, max_lr: float | None = None):
    """A learning-rate schedule stepped once per batch: None/'none', 'steplr' (lr x gamma every
    step_size epochs; default a third of the run) or 'onecycle' (up to max_lr, default the optimizer's lr, and down)."""
    key = "none" if name is None else str(name).strip().lower()
    if num_epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"num_epochs and steps_per_epoch must be >= 1, got {num_epochs} and {steps_per_epoch}")
    if key == "none":
        return None
    if key == "steplr":
        step_size = max(1, num_epochs // 3) if step_size is None else int(step_size)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size * steps_per_epoch, gamma=gamma)
    if key == "onecycle":
        max_lr = optimizer.param_groups[0]["lr"] if max_lr is None else max_lr
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr,
                                                   total_steps=num_epochs * steps_per_epoch)
    raise ValueError(f"unknown scheduler {name!r}: choose 'none', 'steplr' or 'onecycle'.")


# ---------------------------------------------------------------------------------- history


class History:
    """Per-epoch metrics of a run: history["val_acc"] -> list, history.rows -> list of dicts, .to_json(path)."""

    KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time")

    def __init__(self, rows: list[dict] | None = None, meta: dict | None = None):
        self.rows: list[dict] = list(rows or [])
        self.meta: dict = dict(meta or {})

    def append(self, **row) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> list:
        if self.rows and key not in self.rows[0]:
            raise KeyError(f"history has no {key!r}; it has {', '.join(self.rows[0])}")
        return [r.get(key) for r in self.rows]

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else {}
        return f"History({len(self)} epochs, last={last})"

    @property
    def best_epoch(self) -> int | None:
        return self.meta.get("best_epoch")

    @property
    def total_time(self) -> float:
        """Wall time of the training epochs, in seconds."""
        return float(sum(r.get("time", 0.0) for r in self.rows))

    def to_dict(self) -> dict:
        return {"rows": self.rows, "meta": self.meta}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the history as JSON (atomically); returns the path."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(d.get("rows", []), d.get("meta", {}))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


def plot_history(history: History, axes=None, label: str | None = None):
    """Loss and accuracy curves (train dashed, validation solid) on two axes; returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = history["epoch"]
    prefix = f"{label} " if label else ""
    for ax, key in zip(axes, ("loss", "acc")):
        line, = ax.plot(epochs, history[f"train_{key}"], "--", marker=".", label=f"{prefix}train")
        if any(v is not None for v in history[f"val_{key}"]):
            ax.plot(epochs, history[f"val_{key}"], "-", marker=".", color=line.get_color(), label=f"{prefix}val")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live plot can be drawn)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class LivePlot:
    """Learning curves redrawn in place after each epoch in a notebook (one output, updated)."""

    def __init__(self, title: str | None = None):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.fig, self.axes = plt.subplots(1, 2, figsize=(9, 3.2))
        if title:
            self.fig.suptitle(title)
        plt.close(self.fig)  # the inline backend must not show it a second time at the cell's end
        self.handle = display(self.fig, display_id=True)

    def update(self, history: History) -> None:
        for ax in self.axes:
            ax.clear()
        plot_history(history, self.axes)
        self.fig.tight_layout()
        self.handle.update(self.fig)


# -------------------------------------------------------------------------------------- fit


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


STATE_KEYS = ("model", "optimizer", "scheduler", "train_loader", "rng", "history", "epoch", "best_score",
              "bad_epochs")


def _resume(run: Path, model, optimizer, scheduler, train_loader, device):
    """Restore everything from run/state.pt; returns (history, best_score, bad_epochs, epoch, best_state)."""
    from .checkpoint import CheckpointError, load_state, read_weights

    path = run / "state.pt"
    state = load_state(path, map_location="cpu")
    missing = [k for k in STATE_KEYS if k not in state] if isinstance(state, dict) else list(STATE_KEYS)
    if missing:
        raise CheckpointError(f"{path} is not a training state written by fit (missing {', '.join(missing)}); "
                              "it cannot be resumed: start a new run in another folder.")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit this model/optimizer/schedule ({e}); resume with the "
                              "run's original settings, or start a new run in another folder.") from e
    if hasattr(train_loader, "load_state_dict"):
        train_loader.load_state_dict(state["train_loader"])
    transform = getattr(train_loader, "transform", None)
    if transform is not None and hasattr(transform, "load_state_dict") and "transform" in state:
        transform.load_state_dict(state["transform"])
    _set_rng_state(state["rng"])
    best = run / "best.safetensors"
    best_state = read_weights(best, device=device) if best.is_file() else None
    return History.from_dict(state["history"]), state["best_score"], state["bad_epochs"], state["epoch"], best_state


def _resume_message(run: Path, history: History, start: int, num_epochs: int) -> str:
    if history.meta.get("stopped_early"):
        return (f"{run} stopped early after epoch {history.meta['stopped_early']} (no improvement for the "
                "patience); nothing left to train")
    if start >= num_epochs:
        return f"{run} already finished all {num_epochs} epochs; nothing left to train"
    return f"resuming {run} after epoch {start}/{num_epochs}"


def fit(model: nn.Module, train_loader, val_loader, num_epochs: int, optimizer: torch.optim.Optimizer,
        scheduler=None, loss_fn: Callable = F.cross_entropy, device=None, patience: int | None = None,
        monitor: str = "val_acc", restore_best: bool = True, run_dir: str | os.PathLike | None = None,
        resume: bool = False, live_plot: bool | None = None, verbose: bool = True,
        on_epoch_end: Callable[[int, History], bool | None] | None = None, title: str | None = None,
        log_dir: str | os.PathLike | None = None) -> History:
    """Train for num_epochs, evaluating on val_loader after each; returns the History.

    patience: stop after that many epochs without improvement of `monitor` ('val_acc' or 'val_loss');
    restore_best: end with the best epoch's weights. run_dir: a new folder that receives
    best.safetensors, state.pt (everything needed to resume) and history.json after every epoch;
    resume=True continues an interrupted run from it (an early-stopped or finished run trains nothing more).
    live_plot: None draws it in notebooks only. on_epoch_end(epoch, history) returning True stops training.
    log_dir: a folder for TensorBoard event files (see tensorboard_writer): after each epoch the scalars
    loss/train, loss/val, accuracy/train, accuracy/val and lr of the history's row, at step = epoch number
    (1, 2, ...); `tensorboard --logdir <its parent folder>` shows them.
    A NaN or infinite training or validation loss raises DivergedError (state.pt keeps the last good epoch).
    Taught in notebook 03, section 8 (early stopping, in a few lines).
    """
    if not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be a positive integer, got {num_epochs!r}")
    if monitor not in ("val_acc", "val_loss"):
        raise ValueError(f"monitor must be 'val_acc' or 'val_loss', got {monitor!r}")
    if patience is not None and val_loader is None:
        raise ValueError("early stopping (patience) needs a val_loader")
    if log_dir is not None:
        check_log_dir(log_dir, resume)  # before anything is written
    from .checkpoint import prepare_run_dir, save_model, save_state

    device = _device_of(model, device)
    model.to(device)
    sign = 1.0 if monitor == "val_acc" else -1.0
    history = History(meta={"num_epochs": num_epochs, "monitor": monitor, "device": str(device)})
    best_score, best_state, bad_epochs, start = -math.inf, None, 0, 0
    run = prepare_run_dir(run_dir, resume=resume) if run_dir is not None else None
    if resume and run is None:
        raise ValueError("resume=True needs the run_dir of the interrupted run")
    transform = getattr(train_loader, "transform", None)
    if run is not None and resume:
        history, best_score, bad_epochs, start, best_state = _resume(run, model, optimizer, scheduler,
                                                                     train_loader, device)
        if history.meta.get("stopped_early"):
            start = num_epochs  # an early-stopped run is finished: train nothing more
        if verbose:
            print(_resume_message(run, history, start, num_epochs))
    plot = LivePlot(title) if (in_notebook() if live_plot is None else live_plot) else None
    writer = tensorboard_writer(log_dir, resume=resume) if log_dir is not None else None

    for epoch in range(start, num_epochs):
        t0 = time.perf_counter()
        train = train_epoch(model, train_loader, optimizer, loss_fn, device, scheduler,
                            desc=f"epoch {epoch + 1}/{num_epochs}")
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        val = evaluate(model, val_loader, loss_fn, device) if val_loader is not None else {"loss": None, "acc": None}
        if val_loader is not None:
            check_finite(val["loss"], "validation loss")
        history.append(epoch=epoch + 1, train_loss=train["loss"], train_acc=train["acc"], val_loss=val["loss"],
                       val_acc=val["acc"], lr=optimizer.param_groups[0]["lr"], time=seconds)
        if writer is not None:
            log_scalars(writer, history.rows[-1])
        score = sign * val[monitor[4:]] if val_loader is not None else float(epoch)
        if score > best_score:
            best_score, bad_epochs = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.meta["best_epoch"] = epoch + 1
            if run is not None:
                save_model(model, run / "best.safetensors", {"epoch": epoch + 1, "val": val}, overwrite=True)
        else:
            bad_epochs += 1
        stop = patience is not None and bad_epochs >= patience
        if stop:
            history.meta["stopped_early"] = epoch + 1
        if run is not None:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "train_loader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else None,
                     "rng": _rng_state(), "history": copy.deepcopy(history.to_dict()), "epoch": epoch + 1,
                     "best_score": best_score, "bad_epochs": bad_epochs}
            if transform is not None and hasattr(transform, "state_dict"):
                state["transform"] = transform.state_dict()
            save_state(state, run / "state.pt")
            history.to_json(run / "history.json")
        if verbose:
            v = (f" | val loss {val['loss']:.4f} acc {100 * val['acc']:.2f}%" if val_loader is not None else "")
            print(f"epoch {epoch + 1:>2}/{num_epochs} | train loss {train['loss']:.4f} acc "
                  f"{100 * train['acc']:.2f}%{v} | {seconds:.1f} s", flush=True)
        if plot is not None:
            plot.update(history)
        if on_epoch_end is not None and on_epoch_end(epoch + 1, history):
            stop = True
        if stop:
            break
    if writer is not None:
        writer.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


TENSORBOARD_TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
                    "val_acc": "accuracy/val", "lr": "lr"}  # History key -> TensorBoard scalar tag


def check_log_dir(log_dir: str | os.PathLike, resume: bool = False) -> Path:
    """log_dir as a Path; FileExistsError when it is a file, or when it already holds TensorBoard event
    files (another run's: its curves would mix with this one's) and resume is False."""
    log_dir = Path(log_dir)
    if log_dir.exists() and not log_dir.is_dir():
        raise FileExistsError(f"TensorBoard log_dir {log_dir} exists and is not a folder; choose another one.")
    if not resume and log_dir.is_dir() and any(log_dir.glob("events.out.tfevents.*")):
        raise FileExistsError(f"TensorBoard log_dir {log_dir} already holds another run's event files; give each "
                              "run its own folder (tensorboard --logdir <parent> compares them), or delete it.")
    return log_dir


def tensorboard_writer(log_dir: str | os.PathLike, resume: bool = False):
    """A torch.utils.tensorboard.SummaryWriter writing into log_dir (created if needed); see check_log_dir.
    resume=True adds a new event file beside the interrupted run's, which TensorBoard shows as one run."""
    log_dir = check_log_dir(log_dir, resume)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("TensorBoard logging needs the tensorboard package: pip install tensorboard") from e
    return SummaryWriter(log_dir=str(log_dir))


def log_scalars(writer, row: dict) -> None:
    """Write one History row (an epoch) as TensorBoard scalars at step row["epoch"] and flush, so an
    interrupted run keeps its curves; values that are None (no validation) are left out."""
    for key, tag in TENSORBOARD_TAGS.items():
        if row.get(key) is not None:
            writer.add_scalar(tag, row[key], global_step=row["epoch"])
    writer.flush()
