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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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
    p.add_argument("--scheduler", choices=["none", "steplr", "onecycle"], **setting,
                   help=f"learning-rate schedule, stepped per batch (default: {d['scheduler']})")
    p.add_argument("--batch-size", type=_positive_int, **setting, help=f"training batch size (default: {d['batch_size']})")
    p.add_argument("--seed", type=_non_negative_int, **setting,
                   help=f"random seed: weights, shuffling, augmentation, split (default: {d['seed']})")
    p.add_argument("--dataset", choices=["mnist", "fashion"], **setting, help=f"dataset (default: {d['dataset']})")
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
        parser.error(f"--resume: {out} holds no interrupted run (no state.pt); start a new run without --resume")
    if not (out / "config.json").is_file():
        parser.error(f"--resume: {out} has no config.json (the run stopped before its first epoch ended); "
                     "delete the folder and start again")
    old = _read_json(parser, out / "config.json")
    try:
        settings = resolve_settings(args, old)
    except ValueError as e:
        parser.error(str(e))
    changed = _changed(old, settings)
    if changed:
        parser.error(f"--resume {out} with different settings ({'; '.join(changed)}); leave them out "
                     "(--resume reads them from config.json), or start a new --out")
    return settings


def _read_json(parser, path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        parser.error(f"--resume: {path} is not valid JSON ({e}); the run cannot be resumed: start a new --out")


def _finished(parser, out: Path, num_epochs: int) -> str | None:
    """Why the run in `out` has nothing left to train (stopped early, or all epochs done), or None."""
    history = _read_json(parser, out / "history.json") if (out / "history.json").is_file() else {}
    meta, rows = history.get("meta", {}), history.get("rows", [])
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
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out {out} already exists; choose another folder, delete it, or pass --resume to continue it")
    if args.tensorboard is not None:
        from ..training import check_log_dir

        try:
            args.tensorboard = check_log_dir(args.tensorboard / out.resolve().name, resume=args.resume)
        except FileExistsError as e:
            parser.error(f"--tensorboard: {e}")
    num_epochs = 1 if settings["fast"] else settings["epochs"]
    done = _finished(parser, out, num_epochs) if args.resume else None
    if done and (out / "metrics.json").is_file():
        print(f"{done}; nothing to train. Its results are in {out / 'metrics.json'}.")
        return 0
    device = _device(parser, args.device)
    if args.quiet:
        from ..utils import set_progress

        set_progress(False)
    return _run(parser, args, settings, out, num_epochs, device)


def _run(parser, args, settings: dict, out: Path, num_epochs: int, device) -> int:
    import torch

    from .. import utils
    from ..checkpoint import CheckpointError, UnsafeCheckpointError
    from ..data import BatchIterator, DataCorruptError, DataNotFoundError, load_mnist
    from ..models import count_parameters
    from ..recipes import train_setup
    from ..training import DivergedError, evaluate, fit

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
    except (DivergedError, CheckpointError, UnsafeCheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
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

