"""The learning-rate range test (Smith 2017; fastai's ``lr_find``). Taught in notebook 09, section 5.

Train for one pass (``num_steps`` batches) while the learning rate grows exponentially from
``lr_min`` to ``lr_max``; record the loss of every batch; smooth it with a bias-corrected
exponential moving average; stop once the smoothed loss exceeds ``stop_factor`` times its best
(the run has diverged). The loss-vs-lr curve falls while the steps are too small to matter, drops
fastest where learning is efficient, bottoms out, and shoots up where the steps overshoot. A good
constant learning rate lies well before the bottom: :func:`suggest_lr` reads one off the curve.

- :func:`range_test_lrs` the lr of each step, ``lr_min * (lr_max / lr_min) ** (i / (num_steps - 1))``
  (what ``torch.optim.lr_scheduler.ExponentialLR`` gives with ``gamma = (lr_max / lr_min) ** (1 / (num_steps - 1))``);
- :func:`smooth_losses` and :func:`divergence_step` the smoothing and the stopping rule;
- :func:`lr_range_test` the whole test on a model, which ends with the model's and optimizer's
  state as they were before (the test only looks; it trains nothing for good);
- :func:`suggest_lr` ("minimum/10" or "steepest") and :func:`plot_lr_range_test`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def range_test_lrs(lr_min: float, lr_max: float, num_steps: int) -> list[float]:
    """num_steps learning rates growing geometrically from lr_min to lr_max (both included):
    lr_i = lr_min * (lr_max / lr_min) ** (i / (num_steps - 1)), i = 0 .. num_steps - 1."""
    if not (isinstance(num_steps, int) and not isinstance(num_steps, bool)) or num_steps < 2:
        raise ValueError(f"num_steps must be a whole number >= 2, got {num_steps!r}")
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise ValueError(f"need 0 < lr_min < lr_max (finite), got lr_min={lr_min!r}, lr_max={lr_max!r}")
    ratio = lr_max / lr_min
    return [lr_min * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average of a list of losses (Adam's correction):
    avg_t = beta * avg_{t-1} + (1 - beta) * loss_t (avg_0 = 0), smoothed_t = avg_t / (1 - beta ** t), t = 1, 2, ..."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    avg, out = 0.0, []
    for t, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta**t))
    return out


def divergence_step(smoothed: Sequence[float], stop_factor: float = 4.0) -> int | None:
    """Index of the first step (after the first) whose smoothed loss exceeds stop_factor times the
    lowest smoothed loss before it, or is not finite; None when the run never diverges."""
    best = math.inf
    for i, s in enumerate(smoothed):
        if not math.isfinite(s) or (i > 0 and s > stop_factor * best):
            return i
        best = min(best, s)
    return None


@dataclass
class RangeTestResult:
    """What lr_range_test measured: per step (up to and including the step where it stopped) the
    learning rate, the batch's loss and the smoothed loss; diverged: whether it stopped early."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lrs)

    def suggest(self, rule: str = "minimum/10") -> float:
        """suggest_lr(self.lrs, self.smoothed, rule)."""
        return suggest_lr(self.lrs, self.smoothed, rule)


def _batches(loader, num_steps: int):
    """num_steps batches from the loader, starting it again when it runs out."""
    done = 0
    while done < num_steps:
        got = False
        for batch in loader:
            got = True
            yield batch
            done += 1
            if done == num_steps:
                return
        if not got:
            raise ValueError("train_loader produced no batches")


def lr_range_test(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer,
                  loss_fn: Callable = F.cross_entropy, lr_min: float = 1e-5, lr_max: float = 10.0,
                  num_steps: int | None = None, beta: float = 0.98, stop_factor: float = 4.0,
                  device=None) -> RangeTestResult:
    """The range test: num_steps training steps (default one pass, len(train_loader); the loader
    starts again if it has fewer batches) with the learning rate of every parameter group set to
    range_test_lrs(lr_min, lr_max, num_steps)[i] at step i, stopping at divergence_step of the
    smoothed losses. train_loader yields (X, y) batches, e.g. X (B, 1, 28, 28), y (B,).
    The model's weights, train/eval mode and the optimizer's state (its learning rates, momentum
    buffers) are restored afterwards. Returns a RangeTestResult."""
    num_steps = len(train_loader) if num_steps is None else num_steps
    lrs = range_test_lrs(lr_min, lr_max, num_steps)
    if device is None:
        device = next(model.parameters()).device
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, diverged = 0.0, math.inf, False
    try:
        model.train()
        for step, (X, y) in enumerate(_batches(train_loader, num_steps)):
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(model(X), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            avg = beta * avg + (1 - beta) * losses[-1]
            smoothed.append(avg / (1 - beta ** (step + 1)))
            if not math.isfinite(smoothed[-1]) or (step > 0 and smoothed[-1] > stop_factor * best):
                diverged = True
                break
            best = min(best, smoothed[-1])
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    settings = dict(lr_min=lr_min, lr_max=lr_max, num_steps=num_steps, beta=beta, stop_factor=stop_factor)
    return RangeTestResult(lrs[:len(losses)], losses, smoothed, diverged, settings)


RULES = ("minimum/10", "steepest")


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float], rule: str = "minimum/10") -> float:
    """A learning rate read off a range test's curve (lrs and smoothed losses, same length >= 3).

    "minimum/10": a tenth of the lr where the smoothed loss is lowest (fastai's old default; the
    minimum itself is already at the edge of divergence). "steepest": the lr where the smoothed
    loss falls fastest per unit of log(lr) (np.gradient over log(lr)), among the steps up to the minimum.
    """
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    if lrs.shape != smoothed.shape or lrs.ndim != 1 or len(lrs) < 3:
        raise ValueError(f"need lrs and smoothed losses of the same length (at least 3), got shapes "
                         f"{lrs.shape} and {smoothed.shape}")
    finite = np.isfinite(smoothed)
    if not finite.any():
        raise ValueError("no finite loss in the range test: start it at a lower lr_min")
    lowest = int(np.argmin(np.where(finite, smoothed, np.inf)))
    if rule == "minimum/10":
        return float(lrs[lowest] / 10)
    if rule == "steepest":
        if lowest < 2:
            raise ValueError("the smoothed loss is lowest in the first steps: there is no falling part to "
                             "read; start the range test at a lower lr_min")
        slope = np.gradient(smoothed[:lowest + 1], np.log(lrs[:lowest + 1]))
        return float(lrs[int(np.argmin(slope))])
    raise ValueError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)}")


def plot_lr_range_test(result: RangeTestResult, ax=None, marks: dict[str, float] | None = None):
    """Loss (raw, faint) and smoothed loss against the learning rate (log axis), with vertical lines
    at the learning rates in marks ({label: lr}); returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(result.lrs, result.losses, color="0.75", lw=0.8, label="loss of each batch")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=1.8, label="smoothed loss")
    for i, (label, lr) in enumerate((marks or {}).items()):
        ax.axvline(lr, color=f"C{i + 1}", ls="--", lw=1, label=f"{label}: {lr:.2g}")
    ax.set_xscale("log")
    finite = [s for s in result.smoothed if math.isfinite(s)]
    raw = [v for v in result.losses if math.isfinite(v)]
    if finite:  # from below the lowest batch loss to a little above the start: the wall leaves the plot
        low, start = min(finite + raw), finite[0]
        ax.set_ylim(max(0.0, low - 0.1 * (start - low + 1e-9)), start * 1.6 + 0.05)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax
