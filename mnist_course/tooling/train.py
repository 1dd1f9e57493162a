"""Train a course model from the command line, like pytorch/examples' mnist/main.py.

    mnist-course train --model cnn --epochs 5 --optimizer adamw --lr 3e-3 \\
        --batch-size 128 --seed 0 --dataset mnist --out runs/cnn-adamw
    mnist-course train --recipe best-cnn --out runs/best-cnn   # notebook 06's best CNN, same weights
    mnist-course train --model cnn_small --fast --out runs/try      # seconds, a small subset
    mnist-course train --out runs/cnn-adamw --resume                # continue an interrupted run

The run folder receives best.safetensors (the best epoch's weights, by validation accuracy),
state.pt (everything needed to resume), history.json (per-epoch metrics), config.json (the
settings; --resume reads them and refuses different ones) and metrics.json (settings, parameters,
final validation and test accuracy, times). ``--tensorboard DIR`` also writes TensorBoard scalars
(loss, accuracy, learning rate per epoch) to DIR/<name of the run folder>. An existing folder is never overwritten: choose a new
--out, or pass --resume to continue it. A diverged run (NaN or infinite loss) stops with exit code 1.

One training at a time per run folder: a run holds <out>.lock (beside the folder, files.try_locked) until it
ends, and a second one into the same --out is refused at once, naming the first. A file that cannot be
written (a full disk, a read-only folder) stops the run with one line and exit code 1; every earlier
epoch stays resumable (a run that finished no epoch is cleared, to start again with the same command).
A damaged state.pt, config.json or history.json is named with what is wrong in it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

from ..models import CONFIGS
from ..recipes import RECIPES
from ..training import DEFAULT_LR

# The settings of a run (stored in config.json); --resume refuses different ones. Options left out
# take their value from --recipe, else from here (a resumed run: from its config.json).
DEFAULTS = {"model": "cnn", "epochs": 5, "optimizer": "adamw", "lr": None, "scheduler": "onecycle",
            "batch_size": 128, "seed": 0, "dataset": "mnist", "val_size": 5000, "patience": None, "fast": False,
            "augment": None}
AUGMENT_DEFAULTS = {"degrees": 15.0, "translate": 0.15, "scale": 0.15}
SCHEDULERS, DATASETS = ["none", "steplr", "onecycle"], ["mnist", "fashion"]
RUN_FILES = ("best.safetensors", "state.pt", "history.json", "config.json", "metrics.json")  # what a run writes
FIX = "delete the folder or pass a new --out"  # for a run folder that cannot be resumed
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _whole_number(minimum: int):
    """An argparse type: a whole number of at least `minimum`, with a clear message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _whole_number(1), _whole_number(0)


def _number(positive: bool):
    """An argparse type: a finite number, > 0 (positive) or >= 0, with a clear message otherwise."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number such as 1e-3, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a {'positive' if positive else 'non-negative'} number, "
                                             f"got {text}")
        return value

    return parse


_positive_float, _non_negative_float = _number(True), _number(False)


def _describe(recipe: dict) -> str:
    return ", ".join(f"--{k.replace('_', '-')} {v}" if not isinstance(v, dict) else
                     f"--augment ({', '.join(f'--{a} {x:g}' for a, x in v.items())})" for k, v in recipe.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-course train", description="Train an MLP or CNN on MNIST or Fashion-MNIST.",
        epilog="Examples: mnist-course train --model cnn --epochs 5 --optimizer adamw --lr 3e-3 "
               "--out runs/cnn-adamw | mnist-course train --recipe best-cnn --out runs/best-cnn "
               "(notebook 06's best CNN) | mnist-course train --out runs/cnn-adamw --resume")
    d, setting = DEFAULTS, {"default": argparse.SUPPRESS}  # left out: from --recipe / config.json / DEFAULTS
    p.add_argument("--recipe", default=None, choices=list(RECIPES),
                   help="a named set of settings from mnist_course.recipes (options given with it override "
                        "it): " + "; ".join(f"{name}: {_describe(r)}" for name, r in RECIPES.items()))
    p.add_argument("--model", choices=list(CONFIGS), **setting, help=f"architecture (default: {d['model']})")
    p.add_argument("--epochs", type=_positive_int, **setting, help=f"number of epochs (default: {d['epochs']})")
    p.add_argument("--optimizer", choices=list(DEFAULT_LR), **setting, help=f"optimizer (default: {d['optimizer']})")
    p.add_argument("--lr", type=_positive_float, **setting,
                   help="learning rate (peak rate with onecycle; default: depends on the optimizer)")
    p.add_argument("--scheduler", choices=SCHEDULERS, **setting,
                   help=f"learning-rate schedule, stepped per batch (default: {d['scheduler']})")
    p.add_argument("--batch-size", type=_positive_int, **setting, help=f"training batch size (default: {d['batch_size']})")
    p.add_argument("--seed", type=_non_negative_int, **setting,
                   help=f"random seed: weights, shuffling, augmentation, split (default: {d['seed']})")
    p.add_argument("--dataset", choices=DATASETS, **setting, help=f"dataset (default: {d['dataset']})")
    p.add_argument("--val-size", type=_positive_int, **setting,
                   help=f"training images held out for validation (default: {d['val_size']})")
    p.add_argument("--patience", type=_positive_int, **setting, help="early stopping patience in epochs (default: none)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, **setting,
                   help="per-image random rotation/shift/zoom of the training batches (mnist_course.augment; "
                        "default: off, on with --recipe best-cnn)")
    a = AUGMENT_DEFAULTS
    p.add_argument("--degrees", type=_non_negative_float, **setting,
                   help=f"augmentation: rotation range +- degrees (implies --augment; default: {a['degrees']:g})")
    p.add_argument("--translate", type=_non_negative_float, **setting,
                   help=f"augmentation: shift range +- this fraction of the size (default: {a['translate']:g})")
    p.add_argument("--scale", type=_non_negative_float, **setting,
                   help=f"augmentation: zoom range 1 +- scale, below 1 (default: {a['scale']:g})")
    p.add_argument("--fast", action="store_true", **setting,
                   help="a quick check: 2,500 training images, 1 epoch (also $MNIST_COURSE_FAST=1)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder to create (must not exist); default runs/<model>-<dataset>-seed<seed>")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out with the settings in its config.json")
    p.add_argument("--dry-run", action="store_true",
                   help="check the arguments and data, build the model, print the plan; train and write nothing")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="write TensorBoard scalars (loss, accuracy, learning rate per epoch) to DIR/<name of --out>; "
                        "view them with `tensorboard --logdir DIR`. A folder that already holds a run's event "
                        "files is refused (except with --resume, which continues it)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    return p


def resolve_settings(args: argparse.Namespace, base: dict) -> dict:
    """The run's settings: `base` (DEFAULTS, or a resumed run's config.json), then --recipe, then the options
    given on the command line. Returns a dict with the keys of DEFAULTS."""
    settings = {k: base.get(k, v) for k, v in DEFAULTS.items()}
    if args.recipe:
        settings.update(json.loads(json.dumps(RECIPES[args.recipe])))  # a copy
    settings.update({k: getattr(args, k) for k in DEFAULTS if k != "augment" and hasattr(args, k)})
    parts = {k: getattr(args, k) for k in AUGMENT_DEFAULTS if hasattr(args, k)}
    on = getattr(args, "augment", None)
    if on is False and parts:
        raise ValueError(f"--no-augment contradicts --{' --'.join(parts)}; give one or the other")
    if on is False:
        settings["augment"] = None
    elif on or parts:
        settings["augment"] = {**(settings["augment"] or AUGMENT_DEFAULTS), **parts}
    if settings["augment"] and not settings["augment"]["scale"] < 1:
        raise ValueError(f"--scale must be below 1 (zoom 1 +- scale), got {settings['augment']['scale']}")
    return settings


def _changed(old: dict, new: dict) -> list[str]:
    return [f"--{k.replace('_', '-')} was {old.get(k)!r}, now {new[k]!r}" for k in DEFAULTS if old.get(k) != new[k]]


def _write_json(path: Path, obj: dict) -> None:
    from ..files import atomic_write

    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def _resume_settings(parser, args, out: Path) -> dict:
    """The settings of the run in `out` (its config.json), after checking that the options given agree."""
    if not (out / "state.pt").is_file():
        if out.is_dir() and any(out.iterdir()):
            parser.error(f"--resume: {out} holds no interrupted run (no state.pt: it never finished an epoch); "
                         "delete the folder and start again, or choose another --out")
        parser.error(f"--resume: {out} holds no interrupted run (no state.pt); start a new run without --resume")
    if not (out / "config.json").is_file():
        parser.error(f"--resume: {out} has no config.json (the run stopped before its first epoch ended); "
                     "delete the folder and start again")
    old = _read_json(parser, out / "config.json")
    problem = _config_problem(old)
    if problem:
        parser.error(f"--resume: {out / 'config.json'} is damaged: {problem}; the run cannot be resumed: {FIX}")
    try:
        settings = resolve_settings(args, old)
    except ValueError as e:
        parser.error(str(e))
    changed = _changed(old, settings)
    if changed:
        parser.error(f"--resume {out} with different settings ({'; '.join(changed)}); leave them out "
                     "(--resume reads them from config.json), or start a new --out")
    return settings


def _read_json(parser, path: Path):
    """The JSON value in the run file at path; an argument error naming it when it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        parser.error(f"--resume: {path} is not valid JSON ({e}); the run cannot be resumed: {FIX}")


def _json_kind(value) -> str:
    kinds = {list: "a JSON list", str: "a JSON string", bool: "a JSON true/false", int: "a JSON number",
             float: "a JSON number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _config_problem(config) -> str | None:
    """What is wrong with a run's config.json (its parsed JSON), in a few words, or None. A setting it lacks
    whose default is None (lr, patience, augment) takes the default; any other must be there."""
    if not isinstance(config, dict):
        return f"it holds {_json_kind(config)}, not an object of settings"
    for key, default in DEFAULTS.items():
        if key not in config:
            if default is None:
                continue
            return f"it has no {key!r}"
        problem = _setting_problem(key, config[key])
        if problem:
            return f"{key!r} is {_short(config[key])}, {problem}"
    return None


def _setting_problem(key: str, value) -> str | None:
    """Why `value` cannot be the run setting `key` as config.json stores it, or None."""
    choices = {"model": list(CONFIGS), "optimizer": list(DEFAULT_LR), "scheduler": SCHEDULERS, "dataset": DATASETS}
    if key in choices:
        return None if value in choices[key] else f"expected one of {', '.join(choices[key])}"
    if key in ("epochs", "batch_size", "val_size", "seed", "patience"):
        minimum = 0 if key == "seed" else 1
        whole = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if whole or (key == "patience" and value is None) else f"expected a whole number of at least {minimum}"
    if key == "lr":
        return None if value is None or (_is_number(value) and value > 0) else "expected a positive number"
    if key == "fast":
        return None if isinstance(value, bool) else "expected true or false"
    if key == "augment" and value is not None:
        parts = value if isinstance(value, dict) and set(value) <= set(AUGMENT_DEFAULTS) else {"": -1}
        if not all(_is_number(v) and v >= 0 for v in parts.values()):
            return f"expected null or an object of non-negative {', '.join(AUGMENT_DEFAULTS)}"
    return None


def _is_number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _state_problem(path: Path) -> str | None:
    """The one line that says what is wrong with the training state at path (to resume from), or None."""
    from ..checkpoint import CheckpointError, UnsafeCheckpointError, load_state

    try:
        state = load_state(path)
    except UnsafeCheckpointError as e:
        return str(e)
    except CheckpointError as e:
        problem = f"is empty, truncated or not a training state ({type(e.__cause__ or e).__name__})"
    else:
        shape = _state_shape_problem(state)
        problem = shape and f"is not a training state that mnist-course train wrote ({shape})"
    return problem and f"--resume: {path} {problem}; the run cannot be resumed: {FIX}"


def _state_shape_problem(state) -> str | None:
    """What in a loaded state.pt is not what training.fit writes, in a few words, or None."""
    import torch

    from ..training import STATE_KEYS

    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a dict"
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        return f"it has no {', '.join(missing)}"
    model = state["model"]
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        return f"'model' is {_short(model)}, not the model's tensors"
    for key in ("optimizer", "rng"):
        if not isinstance(state[key], dict):
            return f"{key!r} is {_short(state[key])}, not a dict"
    history = state["history"]
    if not isinstance(history, dict) or not isinstance(history.get("rows"), list):
        return "'history' holds no list of rows"
    for key in ("epoch", "bad_epochs"):
        if not isinstance(state[key], int) or isinstance(state[key], bool) or state[key] < 0:
            return f"{key!r} is {_short(state[key])}, not a whole number"
    return None


def _finished(parser, out: Path, num_epochs: int) -> str | None:
    """Why the run in `out` has nothing left to train (stopped early, or all epochs done), or None."""
    path = out / "history.json"
    history = _read_json(parser, path) if path.is_file() else {}
    meta, rows = (history.get("meta", {}), history.get("rows", [])) if isinstance(history, dict) else (None, None)
    if not isinstance(meta, dict) or not isinstance(rows, list):
        parser.error(f"--resume: {path} is damaged: it holds no object with a list of rows; the run cannot be "
                     f"resumed: {FIX}")
    if meta.get("stopped_early"):
        return f"{out} stopped early after epoch {meta['stopped_early']} (no improvement for --patience epochs)"
    if len(rows) >= num_epochs:
        return f"{out} already finished all {num_epochs} epoch{'s' if num_epochs != 1 else ''}"
    return None


def _device(parser, name: str | None):
    import torch

    from .. import utils

    try:
        device = utils.get_device(name)
        torch.zeros(1, device=device)  # fails now, clearly, for a device this machine does not have
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        parser.error(f"--device {name}: not usable on this machine ({first[:200]}); use --device cpu, or leave "
                     "--device out to take the best available")
    return device


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .. import settings as course_settings

    try:
        settings = resolve_settings(args, {**DEFAULTS, "fast": course_settings.fast_mode()})
    except ValueError as e:
        parser.error(str(e))
    out = args.out or course_settings.repo_root() / "runs" / f"{settings['model']}-{settings['dataset']}-seed{settings['seed']}"
    if args.resume:
        settings = _resume_settings(parser, args, out)
        problem = _state_problem(out / "state.pt")
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    num_epochs = 1 if settings["fast"] else settings["epochs"]
    done = _finished(parser, out, num_epochs) if args.resume else None
    if done and (out / "metrics.json").is_file():
        print(f"{done}; nothing to train. Its results are in {out / 'metrics.json'}.")
        return 0
    with contextlib.ExitStack() as held:
        refused = None if args.dry_run else _lock(held, out)  # a dry run writes nothing, not even the lock
        if refused:
            print(f"error: {refused}", file=sys.stderr)
            return 1
        if not args.resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
            parser.error(f"--out {out} already exists; choose another folder, delete it, or pass --resume to "
                         "continue it")
        _check_tensorboard(parser, args, out)
        device = _device(parser, args.device)
        if args.quiet:
            from ..utils import set_progress

            set_progress(False)
        return _run(parser, args, settings, out, num_epochs, device)


def _check_tensorboard(parser, args, out: Path) -> None:
    """Point args.tensorboard at DIR/<name of out>, refusing a folder that holds another run's logs."""
    if args.tensorboard is not None:
        from ..training import check_log_dir

        try:
            args.tensorboard = check_log_dir(args.tensorboard / out.resolve().name, resume=args.resume)
        except FileExistsError as e:
            parser.error(f"--tensorboard: {e}")


def _lock(held: contextlib.ExitStack, out: Path) -> str | None:
    """Take the lock of the run folder `out` (files.try_locked: <out>.lock beside it) until `held` closes;
    returns None, or the line that says why not (another training holds it, the folder is not writable)."""
    from ..files import LockHeldError, try_locked

    holder = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        held.enter_context(try_locked(out, holder))
    except LockHeldError as e:
        who = e.holder or f"which one is not known: a process holds {e.filename}"
        return f"--out {out} is in use by another training ({who}); wait for it to end, or choose another --out"
    except OSError as e:
        if e.errno in WRITE_ERRNOS:
            return _write_error(e, Path(e.filename or out.parent), out, kept=False)
        return f"cannot use --out {out} ({e.strerror or e}: {e.filename}); choose another --out"
    return None


def _failed_write(e: BaseException, out: Path) -> Path | None:
    """The file whose writing raised e (a full disk, a folder that became read-only, ...), or None when e
    is not a write failure. torch.save and safetensors raise RuntimeError or SafetensorError on a full disk,
    so a failure is recognised by where it was raised (inside files.atomic_write) as well as by its errno."""
    from .. import files

    for frame, _ in traceback.walk_tb(e.__traceback__):
        if frame.f_code.co_name == "atomic_write" and frame.f_code.co_filename == files.__file__:
            return Path(frame.f_locals["path"])
    if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
        return Path(e.filename) if e.filename else out
    return None


def _write_error(e: BaseException, path: Path, out: Path, kept: bool) -> str:
    """The line for a file that could not be written; kept: the run folder holds a run to resume."""
    if isinstance(e, OSError) and e.strerror:
        code, detail = e.errno, e.strerror
    else:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        detail, found = lines[-1][:200], re.search(r"os error (\d+)", str(e))
        code = int(found.group(1)) if found else None
    resume = f"`mnist-course train --out {out} --resume`"
    if code in NOT_WRITABLE:
        return (f"cannot write {path} ({detail}): choose a folder you can write to with --out"
                + (f", or make it writable and continue with {resume}" if kept else ""))
    what = f"could not write {path} ({detail}; {_free_space(path)} free on its disk)"
    if kept:
        return f"{what}: every finished epoch is kept; free some space, then continue with {resume}"
    return f"{what}: nothing was kept; free some space, then run the same command again"


def _free_space(path: Path) -> str:
    """The free space on the disk that holds path (or its nearest existing folder), e.g. '0.1 MB'."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return f"{shutil.disk_usage(path).free / 1e6:.1f} MB"
    except OSError:
        return "unknown space"


def _clear(out: Path) -> None:
    """Remove what a run that finished no epoch wrote into `out`, so that the same command starts it again."""
    for name in RUN_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink(missing_ok=True)


def _run(parser, args, settings: dict, out: Path, num_epochs: int, device) -> int:

    from .. import utils
    from ..checkpoint import CheckpointError, UnsafeCheckpointError
    from ..data import BatchIterator, DataCorruptError, DataNotFoundError, load_mnist
    from ..models import count_parameters
    from ..recipes import train_setup
    from ..training import DivergedError, fit

    try:
        data = load_mnist(settings["dataset"])
    except (DataNotFoundError, DataCorruptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    seed, fast = settings["seed"], settings["fast"]
    if fast:
        data = data.subset(2500, 1000, seed=seed)
    val_size = min(settings["val_size"], len(data.X_train) // 5) if fast else settings["val_size"]
    if val_size >= len(data.X_train):
        parser.error(f"--val-size {val_size} leaves no training images (there are {len(data.X_train)})")
    X_train, y_train, X_val, y_val = data.split(val_size=val_size, seed=seed)

    utils.seed_everything(seed)
    model, train_loader, optimizer, scheduler = train_setup(data, data.normalize(X_train), y_train, settings,
                                                            num_epochs, seed=seed, device=device)
    val_loader = BatchIterator(data.normalize(X_val), y_val, 1000, device=device)
    test_loader = BatchIterator(data.normalize(data.X_test), data.y_test, 1000, device=device)
    config = {**settings, "lr": optimizer.defaults["lr"], "recipe": args.recipe, "out": str(out),
              "num_epochs": num_epochs, "parameters": count_parameters(model)}
    aug = settings["augment"]
    print(f"{settings['model']} ({config['parameters']:,} parameters) on {data.name}: {len(X_train):,} training / "
          f"{len(X_val):,} validation / {len(data.X_test):,} test images, {num_epochs} epoch(s), "
          f"{settings['optimizer']} lr {config['lr']:g}, {settings['scheduler']}, batch {settings['batch_size']}, "
          f"augmentation {'off' if not aug else ', '.join(f'{k} {v:g}' for k, v in aug.items())}, "
          f"seed {seed}, {device}{', fast mode' if fast else ''} -> {out}"
          f"{f' (TensorBoard: {args.tensorboard})' if args.tensorboard else ''}", flush=True)
    if args.dry_run:
        print("dry run: nothing trained or written")
        return 0

    def save_config(epoch, history):
        if not (out / "config.json").exists():
            _write_json(out / "config.json", config)

    t0 = time.perf_counter()
    try:
        history = fit(model, train_loader, val_loader, num_epochs, optimizer, scheduler, device=device,
                      patience=settings["patience"], run_dir=out, resume=args.resume, live_plot=False,
                      verbose=not args.quiet, on_epoch_end=save_config, log_dir=args.tensorboard)
        if args.resume:  # again: the interrupted run's last write of it may have failed (a full disk)
            history.to_json(out / "history.json")
        wall = time.perf_counter() - t0
        return _finish(model, data, history, config, val_loader, test_loader, out, device, wall)
    except (DivergedError, CheckpointError, UnsafeCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        failed = _failed_write(e, out)
        if failed is None:
            raise
        kept = (out / "state.pt").is_file() and (out / "config.json").is_file()
        if not kept:
            _clear(out)  # a run (never a resumed one) that finished no epoch: start it again
        print(f"error: {_write_error(e, failed, out, kept)}", file=sys.stderr)
        return 1


def _finish(model, data, history, config: dict, val_loader, test_loader, out: Path, device, wall: float) -> int:
    """Evaluate the best epoch's weights, write metrics.json and print the summary line; returns 0."""
    import torch

    from ..training import evaluate

    val, test = evaluate(model, val_loader), evaluate(model, test_loader)  # with the best epoch's weights
    metrics = {"config": config, "best_epoch": history.best_epoch, "epochs_run": len(history),
               "stopped_early": history.meta.get("stopped_early"),
               "val_loss": val["loss"], "val_acc": val["acc"], "test_loss": test["loss"], "test_acc": test["acc"],
               "train_time_s": history.total_time, "wall_time_s": wall, "device": str(device),
               "torch": torch.__version__, "mean": data.mean, "std": data.std, "classes": list(data.classes)}
    _write_json(out / "metrics.json", metrics)
    print(f"best epoch {history.best_epoch}: validation accuracy {100 * val['acc']:.2f}%, "
          f"test accuracy {100 * test['acc']:.2f}% ({history.total_time:.1f} s training); wrote {out}")
    return 0

