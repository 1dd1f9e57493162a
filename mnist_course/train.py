"""Train a course model from the command line, like pytorch/examples' mnist/main.py.

    python -m mnist_course.train --model cnn --epochs 5 --optimizer adamw --lr 3e-3 \\
        --batch-size 128 --seed 0 --dataset mnist --out runs/cnn-adamw
    python -m mnist_course.train --model cnn_small --fast --out runs/try      # seconds, a small subset
    python -m mnist_course.train --out runs/cnn-adamw --resume                # continue an interrupted run

The run folder receives best.safetensors (the best epoch's weights, by validation accuracy),
state.pt (everything needed to resume), history.json (per-epoch metrics), config.json (the
arguments; --resume refuses different ones) and metrics.json
(arguments, parameters, final validation and test accuracy, times). An existing folder is never
overwritten: choose a new --out, or pass --resume to continue it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .models import CONFIGS
from .training import DEFAULT_LR

# Settings that a resumed run must share with the interrupted one.
RESUME_SAME = ("model", "epochs", "optimizer", "lr", "scheduler", "batch_size", "seed", "dataset", "val_size",
               "patience", "fast")


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-3, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mnist_course.train", description="Train an MLP or CNN on MNIST or Fashion-MNIST.",
        epilog="Example: python -m mnist_course.train --model cnn --epochs 5 --optimizer adamw "
               "--lr 3e-3 --out runs/cnn-adamw",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="cnn", choices=list(CONFIGS), help="architecture (see mnist_course.models)")
    p.add_argument("--epochs", type=_positive_int, default=5, help="number of epochs")
    p.add_argument("--optimizer", default="adamw", choices=list(DEFAULT_LR), help="optimizer")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (peak rate with onecycle); default depends on the optimizer")
    p.add_argument("--scheduler", default="onecycle", choices=["none", "steplr", "onecycle"],
                   help="learning-rate schedule")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="training batch size")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (weights, shuffling, split)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion"], help="dataset")
    p.add_argument("--val-size", type=_positive_int, default=5000, help="training images held out for validation")
    p.add_argument("--patience", type=_positive_int, default=None, help="early stopping patience in epochs")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder to create (must not exist); default runs/<model>-<dataset>-seed<seed>")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--fast", action="store_true",
                   help="a quick check: 2,000 training images, 1 epoch (also $MNIST_COURSE_FAST=1)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the arguments and data, build the model, print the plan; train and write nothing")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import torch

    from . import utils
    from .data import BatchIterator, DataCorruptError, DataNotFoundError, load_mnist
    from .models import build_model, count_parameters
    from .training import evaluate, fit, make_optimizer, make_scheduler

    fast = args.fast or utils.fast_mode()
    out = args.out or utils.repo_root() / "runs" / f"{args.model}-{args.dataset}-seed{args.seed}"
    if args.resume and not (out / "state.pt").is_file():
        parser.error(f"--resume: {out} holds no interrupted run (no state.pt); start a new run without --resume")
    if not args.resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out {out} already exists; choose another folder, delete it, or pass --resume to continue it")
    try:
        device = utils.get_device(args.device)
    except RuntimeError as e:
        parser.error(f"--device: {e}")
    if args.quiet:
        utils.set_progress(False)
    try:
        data = load_mnist(args.dataset)
    except (DataNotFoundError, DataCorruptError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    num_epochs = 1 if fast else args.epochs
    if fast:
        data = data.subset(2500, 1000, seed=args.seed)
    val_size = min(args.val_size, len(data.X_train) // 5) if fast else args.val_size
    if val_size >= len(data.X_train):
        parser.error(f"--val-size {val_size} leaves no training images (there are {len(data.X_train)})")
    X_train, y_train, X_val, y_val = data.split(val_size=val_size, seed=args.seed)

    utils.seed_everything(args.seed)
    model = build_model(args.model).to(device)
    train_loader = BatchIterator(data.normalize(X_train), y_train, args.batch_size, shuffle=True,
                                 seed=args.seed, device=device)
    val_loader = BatchIterator(data.normalize(X_val), y_val, 1000, device=device)
    test_loader = BatchIterator(data.normalize(data.X_test), data.y_test, 1000, device=device)
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr=args.lr)
    lr = optimizer.param_groups[0]["lr"]  # before the scheduler changes it
    scheduler = make_scheduler(args.scheduler, optimizer, num_epochs, len(train_loader))
    plan = (f"{args.model} ({count_parameters(model):,} parameters) on {data.name}: {len(X_train):,} training / "
            f"{len(X_val):,} validation / {len(data.X_test):,} test images, {num_epochs} epoch(s), "
            f"{args.optimizer} lr {lr:g}, {args.scheduler}, batch {args.batch_size}, "
            f"seed {args.seed}, {device}{', fast mode' if fast else ''} -> {out}")
    print(plan, flush=True)
    if args.dry_run:
        print("dry run: nothing trained or written")
        return 0

    config = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "out": str(out), "lr": lr, "fast": fast, "num_epochs": num_epochs, "parameters": count_parameters(model)}
    config_path = out / "config.json"
    if args.resume and config_path.is_file():  # a resumed run must continue the same schedule
        old = json.loads(config_path.read_text())
        changed = [f"--{k.replace('_', '-')} was {old.get(k)!r}, now {config[k]!r}" for k in RESUME_SAME
                   if k in old and old[k] != config[k]]
        if changed:
            parser.error(f"--resume {out} with different settings ({'; '.join(changed)}); "
                         "resume with the run's original arguments, or start a new --out")

    def save_config(epoch, history):
        if not config_path.exists():
            config_path.write_text(json.dumps(config, indent=2) + "\n")

    t0 = time.perf_counter()
    history = fit(model, train_loader, val_loader, num_epochs, optimizer, scheduler, device=device,
                  patience=args.patience, run_dir=out, resume=args.resume, live_plot=False, verbose=not args.quiet,
                  on_epoch_end=save_config)
    wall = time.perf_counter() - t0
    val, test = evaluate(model, val_loader), evaluate(model, test_loader)  # with the best epoch's weights
    metrics = {"config": config, "best_epoch": history.best_epoch, "epochs_run": len(history),
               "val_loss": val["loss"], "val_acc": val["acc"], "test_loss": test["loss"], "test_acc": test["acc"],
               "train_time_s": history.total_time, "wall_time_s": wall, "device": str(device),
               "torch": torch.__version__, "mean": data.mean, "std": data.std, "classes": list(data.classes)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"best epoch {history.best_epoch}: validation accuracy {100 * val['acc']:.2f}%, "
          f"test accuracy {100 * test['acc']:.2f}% ({history.total_time:.1f} s training); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
