"""The checks of notebook 09, overfitting and the learning rate
(notebooks/09_overfitting_and_learning_rate.ipynb): the learning rates of a range test (09.1), its
smoothed losses and stopping rule (09.2), the steepest point of its curve (09.3), SGD with weight
decay (09.4), a training loop with validation and early stopping (09.5), timing work that a device
runs asynchronously (09.6).

Named after the notebook's number, as the exercise ids are ("09.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`. The referees: ``torch.optim.lr_scheduler.ExponentialLR`` (09.1), ``torch.optim.SGD``
(09.4); 09.2, 09.3, 09.5 and 09.6 follow the rules written in the notebook, on cases built so that
each usual mistake gives a different answer.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import Mistake, as_array, call, exercise, expect, seeded_rng


def _close(a, b, rtol=1e-6, atol=1e-9) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _run(fn, *args, case: str, **kwargs):
    """fn(*args, **kwargs) on the arguments themselves (09.5 needs the model it trained, 09.6 a
    shared fake device): an exception other than NotImplementedError becomes a Mistake."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Mistake:
        raise
    except Exception as e:
        raise Mistake(f"{case}: your function raised {type(e).__name__}: {e}.") from None


# ------------------------------------------------------------------------- 09.1 range-test lrs


def _exponential_lr(lr_min: float, lr_max: float, num_steps: int) -> list[float]:
    """The referee: the lr of each step under torch.optim.lr_scheduler.ExponentialLR."""
    w = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=lr_min)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(lr_max / lr_min) ** (1 / (num_steps - 1)))
    lrs = []
    for _ in range(num_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@exercise("09.1", "range_test_lrs", "the learning rates of a range test", hint="""
    The range test multiplies the learning rate by the same factor at every step, so the rates are
    evenly spaced on a logarithmic axis: as many steps between 1e-5 and 1e-4 as between 1 and 10.
    The first step uses lr_min, the last one lr_max exactly. The usual mistakes: evenly spaced rates
    (almost every step then lands near lr_max), a last rate that falls one factor short of lr_max,
    and one rate too many or too few.""",
          formula="""
    With n = num_steps rates there are n - 1 multiplications from the first to the last, so the
    factor q satisfies lr_min * q^(n - 1) = lr_max, q = (lr_max / lr_min)^(1 / (n - 1)), and the
    i-th rate (i = 0 .. n - 1) is lr_min * q^i. torch.optim.lr_scheduler.ExponentialLR with
    gamma = q gives the same rates.""")
def _check_range_lrs(fn):
    cases = [(1e-5, 10.0, 100), (1e-3, 1.0, 2), (0.1, 0.4, 7)]
    for lr_min, lr_max, n in cases:
        case = f"lr_min={lr_min:g}, lr_max={lr_max:g}, num_steps={n}"
        want = np.asarray(_exponential_lr(lr_min, lr_max, n))
        got = as_array(call(fn, lr_min, lr_max, n, case=case), "your learning rates", case).reshape(-1)
        if len(got) != n:
            more = (" One per step: lr_min and lr_max are both included." if len(got) in (n - 1, n + 1) else "")
            raise Mistake(f"{case}: you returned {len(got)} learning rates, expected num_steps = {n}.{more}")
        i = np.arange(n)
        expect(got, want, case, "your learning rates", [
            (np.linspace(lr_min, lr_max, n), "your rates are evenly spaced (linear steps): the range test "
             "MULTIPLIES the rate by the same factor at every step, so the rates are evenly spaced on a log axis."),
            (lr_min * (lr_max / lr_min) ** (i / n), f"your last rate is {got[-1]:.4g}, not lr_max = {lr_max:g}: "
             "n rates are n - 1 multiplications apart (exponent i / (num_steps - 1))."),
            (want[::-1], "your rates go down: start at lr_min and grow to lr_max.")],
            rtol=1e-6, atol=0)
    return f"{len(cases)} ranges match torch.optim.lr_scheduler.ExponentialLR"


# ---------------------------------------------------------------------- 09.2 smooth and stop


def _smooth_stop(losses, beta=0.98, stop_factor=4.0, correct=True, new_weight=False, against="best",
                 on="smoothed", include=True, stop=True) -> list[float]:
    """The smoothing and stopping rule, with the usual mistakes as switches (the defaults are right)."""
    out, avg, best, first = [], 0.0, math.inf, None
    for t, loss in enumerate(losses, 1):
        avg = (1 - beta) * avg + beta * loss if new_weight else beta * avg + (1 - beta) * loss
        s = avg / (1 - beta**t) if correct else avg
        watched = s if on == "smoothed" else loss
        first = watched if first is None else first
        reference = best if against == "best" else first
        if stop and t > 1 and watched > stop_factor * reference:
            if include:
                out.append(s)
            break
        out.append(s)
        best = min(best, watched)
    return out


def _range_test_curves() -> dict[str, list[float]]:
    """Loss sequences on which each usual mistake of 09.2 gives another answer."""
    rng = seeded_rng(9)
    log_lr = np.linspace(-5, 1, 90)  # a range test from 1e-5 to 10
    fall = 2.3 - 2.0 / (1 + np.exp(-3 * (log_lr + 2.5)))       # learning starts around lr 3e-3
    rise = 0.3 * (np.exp(4.0 * np.clip(log_lr + 0.7, 0, None)) - 1)  # and overshoots above lr 0.2
    diverging = (fall + rise) * np.exp(rng.normal(0, 0.08, len(log_lr)))
    steady = 1.0 + rng.normal(0, 0.1, 40)
    spike = 0.5 + rng.normal(0, 0.02, 40)
    spike[25] = 5.0                                               # one bad batch, not a divergence
    rises = np.concatenate([np.linspace(3.0, 0.1, 30), np.full(150, 0.1), np.full(40, 1.0)])  # > 4 x 0.1, < 4 x 3
    return {"a range test that diverges": list(diverging), "a range test that never diverges": list(steady),
            "a single bad batch (a loss of 5.0 in a run at 0.5)": list(spike),
            "losses from 3.0 down to 0.1, then 1.0": list(rises)}


@exercise("09.2", "smooth_and_stop", "the range test's smoothed loss and its stopping rule", hint="""
    Two ideas. Smoothing: an exponential moving average keeps most of the running average and adds a
    little of each new loss; it starts at zero, so it needs Adam's bias correction, or its first
    values are far too small. Stopping: the test ends at the first step (not the very first one) whose
    SMOOTHED loss is more than stop_factor times the lowest smoothed loss seen BEFORE it; that step is
    still part of the result. The usual mistakes: no bias correction, beta weighing the new loss,
    comparing with the first loss instead of the best, stopping on the raw loss (one bad batch then
    ends the test), and leaving out the step that stopped it.""",
          formula="""
    For t = 1, 2, ...: avg_t = beta * avg_(t-1) + (1 - beta) * loss_t with avg_0 = 0, and
    smoothed_t = avg_t / (1 - beta^t). Keep best = min(smoothed_1 .. smoothed_(t-1)); at step t > 1,
    after appending smoothed_t, stop if smoothed_t > stop_factor * best; otherwise update best.""")
def _check_smooth_and_stop(fn):
    for case, losses in _range_test_curves().items():
        want = _smooth_stop(losses)
        got = as_array(call(fn, list(losses), beta=0.98, stop_factor=4.0, case=case), "your smoothed losses",
                       case).reshape(-1)
        if _close(got, want):
            continue
        named = [
            (_smooth_stop(losses, correct=False), "your first smoothed values are far below the losses: "
             "the average starts at 0, so divide it by (1 - beta**t), t = 1, 2, ... (the bias correction)."),
            (_smooth_stop(losses, new_weight=True), "your average follows every new loss: beta weighs the "
             "running AVERAGE, (1 - beta) the new loss."),
            (_smooth_stop(losses, on="raw"), "you stopped on the RAW loss: one bad batch then ends the test; "
             "compare the SMOOTHED loss with the best smoothed loss."),
            (_smooth_stop(losses, against="first"), "you compared with the FIRST smoothed loss: compare with "
             "the lowest one so far (the test stops when the loss has left its best, not its start, far behind)."),
            (_smooth_stop(losses, include=False), "you left out the step that stopped the test: it is the "
             "first diverged step, and belongs to the result."),
            (_smooth_stop(losses, stop=False), "your test never stops: after each step compare the smoothed "
             "loss with stop_factor times the best smoothed loss before it, and stop when it is larger."),
        ]
        for value, message in named:
            if not _close(value, want) and _close(got, value):
                raise Mistake(f"{case}: {message}")
        if len(got) != len(want):
            raise Mistake(f"{case}: you returned {len(got)} smoothed losses; the test stops after step "
                          f"{len(want)} of {len(losses)} (1-based), so {len(want)} are expected.")
        expect(got, want, case, "your smoothed losses", rtol=1e-6, atol=1e-9)
    return f"{len(_range_test_curves())} loss sequences: same smoothed losses and the same stopping step"


# --------------------------------------------------------------------------- 09.3 steepest lr


def _steepest_variants(lrs, smoothed) -> dict[str, int]:
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    lowest = int(np.argmin(smoothed))
    part = slice(0, lowest + 1)
    return {"right": int(np.argmin(np.gradient(smoothed[part], np.log(lrs[part])))),
            "per lr": int(np.argmin(np.gradient(smoothed[part], lrs[part]))),
            "everywhere": int(np.argmin(np.gradient(smoothed, np.log(lrs)))),
            "argmax": int(np.argmax(np.gradient(smoothed[part], np.log(lrs[part])))),
            "minimum": lowest}


def _steepest_curves() -> dict[str, tuple[list[float], list[float]]]:
    """Smoothed range-test curves on which each usual mistake of 09.3 picks another learning rate."""
    lrs = 1e-5 * (1e6 ** (np.arange(120) / 119))  # 1e-5 .. 10
    x = np.log10(lrs)
    main = 2.3 - 1.6 / (1 + np.exp(-2.5 * (x + 2))) - 0.3 / (1 + np.exp(-6 * (x + 4.2)))  # falls at 1e-2 (and a bit at 6e-5)
    rise = 0.4 * np.exp(3 * np.clip(x + 0.5, 0, None)) - 0.4
    dip = -6.0 * np.exp(-(((x - 0.6) / 0.12) ** 2))  # a sharp dip after the minimum, before the end
    curve = main + rise + dip
    bump = main + 0.3 * np.exp(-(((x + 1.2) / 0.15) ** 2))  # no rise: the minimum is the last step
    return {"a curve with a dip after its minimum": (list(lrs), list(curve)),
            "a curve whose minimum is its last step": (list(lrs[:100]), list(bump[:100]))}


@exercise("09.3", "steepest_lr", "the steepest point of a range test's curve", hint="""
    The range test's x axis is logarithmic: the question is how much the loss falls per factor of
    ten in the learning rate, not per unit of learning rate. Look only at the part of the curve up to
    its lowest point (beyond it the test is diverging, and a dip there means nothing), and return the
    learning rate itself, where the loss falls fastest. The usual mistakes: the slope per unit of lr
    (which favours the tiny rates at the start), the steepest RISE instead of the steepest fall, a
    search over the whole curve, and returning the position instead of the rate.""",
          formula="""
    Let m be the index of the lowest smoothed loss. On steps 0 .. m, estimate the slope
    d(smoothed) / d(log lr) with central differences (np.gradient(values, coordinates) does that for
    unevenly spaced coordinates), take the index i where it is most negative, and return lrs[i].""")
def _check_steepest(fn):
    for case, (lrs, smoothed) in _steepest_curves().items():
        v = _steepest_variants(lrs, smoothed)
        arg_lrs = np.asarray(lrs) if "dip" in case else list(lrs)  # an array in one case, a list in the other
        arg_smoothed = np.asarray(smoothed) if "dip" in case else list(smoothed)
        got = call(fn, arg_lrs, arg_smoothed, case=case)
        if isinstance(got, (int, np.integer)) and not isinstance(got, bool) and 0 <= got < len(lrs):
            raise Mistake(f"{case}: you returned {got}, an index: return the learning rate itself, lrs[{got}].")
        values = as_array(got, "your learning rate", case).reshape(-1)
        if values.size != 1:
            raise Mistake(f"{case}: return one learning rate (a float), not {values.size} numbers.")
        value = float(values[0])
        position = int(np.argmin(np.abs(np.log(np.asarray(lrs)) - np.log(max(value, 1e-300)))))
        if not math.isclose(value, lrs[position], rel_tol=1e-9):
            raise Mistake(f"{case}: you returned {value:.4g}, which is not one of the learning rates in lrs: "
                          "return the rate of one step.")
        if abs(position - v["right"]) <= 1:  # forward or backward differences move it by one step at most
            continue
        named = {v["per lr"]: "you measured the slope per unit of lr: the axis is logarithmic, take the "
                              "slope with respect to log(lr) (per unit of lr, the tiny rates at the start win).",
                 v["everywhere"]: "you searched the whole curve: look only up to the lowest smoothed loss; "
                                  "after it the test is diverging.",
                 v["argmax"]: "you found the steepest RISE: the answer is where the loss FALLS fastest "
                              "(the most negative slope).",
                 v["minimum"]: "you returned the rate at the lowest loss: that is the edge of divergence; "
                               "the steepest fall comes well before it."}
        named.pop(v["right"], None)
        for index, message in named.items():
            if abs(position - index) <= 1 and abs(index - v["right"]) > 1:
                raise Mistake(f"{case}: you returned {value:.4g}: {message}")
        raise Mistake(f"{case}: you returned {value:.4g}, expected {lrs[v['right']]:.4g} (the steepest fall "
                      "per unit of log(lr), up to the lowest smoothed loss).")
    return f"{len(_steepest_curves())} curves: the steepest fall per unit of log(lr), before the minimum"


# -------------------------------------------------------------------- 09.4 SGD + weight decay


def _sgd_trajectory(step, w0, grads, lr, momentum, weight_decay):
    w, v, ws = w0.clone(), torch.zeros_like(w0), []
    for g in grads:
        w, v = step(w, g, v, lr, momentum, weight_decay)
        ws.append(torch.as_tensor(w).clone())
    return ws


_SGD_MISTAKES = {
    "decoupled": (lambda w, g, v, lr, mu, wd: ((w - lr * (mu * v + g)) - lr * wd * w, mu * v + g),
                  "you decayed the weights outside the momentum buffer (decoupled weight decay, AdamW's way); "
                  "torch.optim.SGD adds weight_decay * w to the GRADIENT, before the momentum buffer."),
    "twice": (lambda w, g, v, lr, mu, wd: (w - lr * (mu * v + g + 2 * wd * w), mu * v + g + 2 * wd * w),
              "you added 2 * weight_decay * w: the gradient of (weight_decay / 2) * |w|^2 is weight_decay * w."),
    "sign": (lambda w, g, v, lr, mu, wd: (w - lr * (mu * v + g - wd * w), mu * v + g - wd * w),
             "the sign is flipped: weight decay pulls the weights towards zero, add + weight_decay * w to "
             "the gradient."),
    "no lr": (lambda w, g, v, lr, mu, wd: (w * (1 - wd) - lr * (mu * v + g), mu * v + g),
              "you shrank w by (1 - weight_decay) at every step: the decay is part of the gradient, so it is "
              "scaled by lr too (and goes through the momentum buffer)."),
    "no decay": (lambda w, g, v, lr, mu, wd: (w - lr * (mu * v + g), mu * v + g),
                 "you left out the weight decay: add weight_decay * w to the gradient."),
}


@exercise("09.4", "sgd_weight_decay_step", "SGD with momentum and weight decay", hint="""
    Weight decay in torch.optim.SGD is an L2 penalty, (weight_decay / 2) * |w|^2, added to the loss:
    it adds a term to the gradient, and from then on that term is treated like the rest of the
    gradient, through the momentum buffer and times the learning rate. The usual mistakes: decaying
    the weights apart from the momentum (AdamW's decoupled decay, which is a different optimiser),
    twice the term, a flipped sign, and forgetting the learning rate on the decay.""",
          formula="""
    With lambda = weight_decay: d = g + lambda w (the loss's gradient plus the penalty's); the
    buffer v <- momentum v + d (v starts at zero); then w <- w - lr v. Return the new w and the new v.""")
def _check_sgd_weight_decay(fn):
    g = torch.Generator().manual_seed(94)
    cases = [(0.1, 0.9, 0.05), (0.2, 0.0, 0.5), (0.05, 0.9, 0.0), (0.1, 0.5, 1e-3)]
    for lr, momentum, weight_decay in cases:
        case = f"lr={lr:g}, momentum={momentum:g}, weight_decay={weight_decay:g}, ten steps"
        w0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
        grads = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(10)]
        p = w0.clone().requires_grad_()
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
        want = []
        for grad in grads:
            p.grad = grad.clone()
            opt.step()
            want.append(p.detach().clone())

        def learner(w, grad, v, lr, momentum, weight_decay, case=case):
            out = call(fn, w, grad, v, lr, momentum, weight_decay, case=case)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise Mistake(f"{case}: return two things, (new w, new v).")
            return (torch.as_tensor(as_array(out[0], "your w", case)), torch.as_tensor(as_array(out[1], "your v", case)))

        got = _sgd_trajectory(learner, w0, grads, lr, momentum, weight_decay)
        if all(_close(a, b, rtol=1e-7, atol=1e-10) for a, b in zip(got, want)):
            continue
        for mistake, message in _SGD_MISTAKES.values():
            wrong = _sgd_trajectory(mistake, w0, grads, lr, momentum, weight_decay)
            if not all(_close(a, b, rtol=1e-7, atol=1e-10) for a, b in zip(wrong, want)) \
                    and all(_close(a, b, rtol=1e-7, atol=1e-10) for a, b in zip(got, wrong)):
                raise Mistake(f"{case}: {message}")
        step = next(i for i, (a, b) in enumerate(zip(got, want)) if not _close(a, b, rtol=1e-7, atol=1e-10))
        expect(got[step], want[step], f"{case}, step {step + 1}", "your w", rtol=1e-7, atol=1e-10,
               sign="subtract the step, w - lr * v: SGD moves against the gradient.")
    return f"{len(cases)} settings, ten steps each, match torch.optim.SGD(weight_decay=...)"


# --------------------------------------------------------------------- 09.5 early stopping


class _Scripted(nn.Module):
    """A one-weight model whose validation loss follows a script as its weight w grows.

    Inputs X: (B, 2), column 0 says where a batch comes from (0 training, 1 validation), column 1 a
    positive number x. Training batches (label 0): logits (w * x * m, 0), m = 1 in train mode and 0.5
    in eval mode, so every SGD step raises w and lowers the training loss. Validation batches: logits
    (0, s) with softplus(s) = the scripted loss at the current w (interpolated), plus 0.3 in train
    mode: each example's loss is exactly the script's number. Records, per validation forward pass,
    whether the model was in train mode and whether gradients were on."""

    def __init__(self, ws=None, script=None):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.ws, self.script = ws, script
        self.val_calls: list[tuple[bool, bool]] = []

    def scripted_loss(self, w: float) -> float:
        return float(np.interp(w, self.ws, self.script)) if self.ws is not None else 1.0

    def forward(self, X):
        where, x = X[:, 0], X[:, 1]
        if bool((where == 1).all()):
            self.val_calls.append((self.training, torch.is_grad_enabled()))
            loss = self.scripted_loss(self.w.item()) + (0.3 if self.training else 0.0)
            s = torch.full_like(x, math.log(math.expm1(loss)))
            return torch.stack([torch.zeros_like(x), s], dim=1)
        m = 1.0 if self.training else 0.5
        return torch.stack([self.w * x * m, torch.zeros_like(x)], dim=1)


def _es_data():
    """(train_loader, val_loader): 4 training batches of 8, 2 validation batches of 16, labels 0."""
    rng = seeded_rng(95)
    x_train = torch.tensor(rng.uniform(0.5, 1.5, 32), dtype=torch.float32)
    X_train = torch.stack([torch.zeros(32), x_train], dim=1)
    X_val = torch.stack([torch.ones(32), torch.ones(32)], dim=1)
    y = torch.zeros(32, dtype=torch.long)
    return ([(X_train[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)],
            [(X_val[i:i + 16], y[i:i + 16]) for i in range(0, 32, 16)])


# The validation loss after each epoch, as the weight reaches its value after that epoch (epochs 1..20).
_SCRIPT = [1.00, 0.80, 0.70, 0.72, 0.65, 0.66, 0.60, 0.61, 0.63, 0.60, 0.64, 0.66, 0.70, 0.71, 0.75, 0.74,
           0.78, 0.80, 0.83, 0.85]
_LR = 0.5


def _es_reference(model, train_loader, val_loader, optimizer, num_epochs, patience, zero_grad=True,
                  train_again=True, evaluate_in_eval=True, ties_improve=False, watch="val", extra=0,
                  restore=True):
    """The loop the exercise asks for, with the usual mistakes as switches (the defaults are right).
    Returns (history, best epoch's weight)."""
    history, best, best_w, bad = [], math.inf, None, 0
    model.train()
    for epoch in range(1, num_epochs + 1):
        if train_again:
            model.train()
        total = 0.0
        for X, y in train_loader:
            loss = F.cross_entropy(model(X), y)
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        train_loss = total / sum(len(y) for _, y in train_loader)
        if evaluate_in_eval:
            model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(X), y).item() * len(y) for X, y in val_loader) / sum(
                len(y) for _, y in val_loader)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        watched = val_loss if watch == "val" else train_loss
        if watched < best or (ties_improve and watched == best):
            best, best_w, bad = watched, model.w.item(), 0
        else:
            bad = bad + 1
        if bad >= patience + extra:
            break
    w_end = best_w if restore else model.w.item()
    return history, w_end


def _es_setup():
    """A fresh scripted model, its optimizer and loaders; the script is pinned to the weights that
    the right loop reaches after each epoch."""
    train_loader, val_loader = _es_data()
    probe = _Scripted()
    opt = torch.optim.SGD(probe.parameters(), lr=_LR)
    ws = []
    for _ in _SCRIPT:  # the weight after each epoch of correct training
        probe.train()
        for X, y in train_loader:
            loss = F.cross_entropy(probe(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        ws.append(probe.w.item())
    return ws, train_loader, val_loader


def _es_expected(ws, num_epochs, patience, **mistake):
    train_loader, val_loader = _es_data()
    model = _Scripted(ws, _SCRIPT)
    optimizer = torch.optim.SGD(model.parameters(), lr=_LR)
    if not mistake.get("reset", True):
        return _es_no_reset(model, train_loader, val_loader, optimizer, num_epochs, patience)
    return _es_reference(model, train_loader, val_loader, optimizer, num_epochs, patience, **mistake)


def _es_no_reset(model, train_loader, val_loader, optimizer, num_epochs, patience):
    """The mistake of counting every epoch without improvement, never resetting the count."""
    history, best, best_w, bad = [], math.inf, None, 0
    for epoch in range(1, num_epochs + 1):
        model.train()
        total = 0.0
        for X, y in train_loader:
            loss = F.cross_entropy(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(X), y).item() * len(y) for X, y in val_loader) / 32
        history.append({"epoch": epoch, "train_loss": total / 32, "val_loss": val_loss})
        if val_loss < best:
            best, best_w = val_loss, model.w.item()
        else:
            bad += 1
        if bad >= patience:
            break
    return history, best_w


def _history_values(history, case: str, key: str) -> list[float]:
    if history is None:
        raise Mistake(f"{case}: your function returned None: did you forget `return history`?")
    if not isinstance(history, (list, tuple)) or not all(isinstance(row, dict) for row in history):
        raise Mistake(f"{case}: return the history as a list with one dict per epoch, "
                      "{'epoch': ..., 'train_loss': ..., 'val_loss': ...}; got a " f"{type(history).__name__}.")
    values = []
    for row in history:
        if key not in row:
            raise Mistake(f"{case}: a row of your history has no {key!r}; each row needs 'epoch', "
                          f"'train_loss' and 'val_loss' (it has {', '.join(map(str, row))}).")
        values.append(float(row[key]))
    return values


def _same_run(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and _close(a, b, rtol=1e-5, atol=1e-7)


@exercise("09.5", "fit_early_stopping", "a training loop with validation and early stopping", hint="""
    Each epoch has two passes. The training pass puts the model in training mode and takes an
    optimizer step per batch, with fresh gradients each time. The validation pass puts the model in
    evaluation mode (Dropout and BatchNorm behave differently there) and computes the mean loss
    without building a graph, since nothing is learned from it. The decision watches the VALIDATION
    loss: a strictly lower value is progress, and its weights are kept as a copy (the model's
    state_dict holds references to tensors that keep changing); after `patience` epochs in a row
    without progress, stop. At the end, load the kept weights back. The usual mistakes: watching the
    training loss (it always falls), stopping one epoch too early or too late, not resetting the
    count after progress, counting a tie as progress, keeping references instead of a copy, not
    restoring, and validating in training mode or with gradients on.""",
          formula="""
    For epoch = 1 .. num_epochs: (1) model.train(); for each batch: loss, zero the gradients,
    backward, step; train_loss = sum(loss x batch size) / examples. (2) model.eval(); under
    torch.no_grad(): val_loss = sum(loss x batch size) / examples. (3) Append {"epoch", "train_loss",
    "val_loss"}. (4) If val_loss < best: best = val_loss, bad = 0, keep a CLONE of every tensor of the
    state_dict; else bad = bad + 1, and stop when bad == patience. After the loop,
    model.load_state_dict(the kept copy); return the list.""")
def _check_early_stopping(fn):
    ws, _, _ = _es_setup()
    cases = [("patience 3, at most 20 epochs", 20, 3), ("patience 1, at most 20 epochs", 20, 1),
             ("patience 3, at most 6 epochs (it never stops early)", 6, 3)]
    for case, num_epochs, patience in cases:
        train_loader, val_loader = _es_data()
        model = _Scripted(ws, _SCRIPT)
        optimizer = torch.optim.SGD(model.parameters(), lr=_LR)
        history = _run(fn, model, train_loader, val_loader, optimizer, num_epochs, patience, case=case)
        want, want_w = _es_expected(ws, num_epochs, patience)
        got_val = _history_values(history, case, "val_loss")
        got_train = _history_values(history, case, "train_loss")
        want_val, want_train = [r["val_loss"] for r in want], [r["train_loss"] for r in want]
        epochs = [row.get("epoch") for row in history]
        train_loss_calls = [c for c in model.val_calls]
        if any(training for training, _ in train_loss_calls):
            raise Mistake(f"{case}: your validation pass ran the model in TRAINING mode (its validation "
                          "losses come out 0.3 too high here, as Dropout or BatchNorm would change them): call "
                          "model.eval() before validating, and model.train() before the next training pass.")
        if any(grad for _, grad in train_loss_calls):
            raise Mistake(f"{case}: your validation pass ran with gradients on: wrap it in `with torch.no_grad():` "
                          "(nothing is learned from validation; the graph only costs memory and time).")
        n = min(len(got_train), len(want_train))
        if not _close(got_train[:n], want_train[:n], rtol=1e-5, atol=1e-7):
            for mistake, message in (
                    ({"zero_grad": False}, "your training losses drift from the right ones from the second "
                     "batch on: call optimizer.zero_grad() before every backward(), or the gradients add up."),
                    ({"train_again": False}, "from epoch 2 on you trained in evaluation mode: call "
                     "model.train() at the start of every epoch's training pass (model.eval() stays on "
                     "after validation).")):
                wrong, _ = _es_expected(ws, num_epochs, patience, **mistake)
                wrong_train = [r["train_loss"] for r in wrong]
                if _close(got_train[:n], wrong_train[:n], rtol=1e-5, atol=1e-7):
                    raise Mistake(f"{case}: {message}")
            bad = next(i for i in range(n) if not _close(got_train[i], want_train[i], rtol=1e-5, atol=1e-7))
            raise Mistake(f"{case}: epoch {bad + 1}'s training loss is {got_train[bad]:.5f}, expected "
                          f"{want_train[bad]:.5f} (the mean loss over the epoch's batches, weighted by batch size).")
        if not _close(got_val[:n], want_val[:n], rtol=1e-5, atol=1e-7):
            bad = next(i for i in range(n) if not _close(got_val[i], want_val[i], rtol=1e-5, atol=1e-7))
            raise Mistake(f"{case}: epoch {bad + 1}'s validation loss is {got_val[bad]:.5f}, expected "
                          f"{want_val[bad]:.5f} (the mean loss over all validation examples).")
        if epochs != list(range(1, len(history) + 1)):
            raise Mistake(f"{case}: the rows' 'epoch' values are {epochs}; number the epochs 1, 2, 3, ...")
        if len(got_val) != len(want_val):
            best_epoch = 1 + int(np.argmin(want_val))
            for mistake, message in (
                    ({"watch": "train"}, "you watched the TRAINING loss, which keeps falling while the model "
                     "overfits: early stopping watches the validation loss."),
                    ({"reset": False}, "you never reset the count of epochs without improvement: set it "
                     "back to 0 whenever the validation loss improves (patience counts epochs IN A ROW)."),
                    ({"ties_improve": True}, "you counted a tie as an improvement: only a strictly lower "
                     "validation loss is progress (here epoch 10 ties epoch 7's loss)."),
                    ({"extra": 1}, "you stopped one epoch too late: stop when the count of epochs without "
                     "improvement REACHES patience (>=), not when it exceeds it."),
                    ({"extra": -1}, "you stopped one epoch too early: patience epochs without improvement are "
                     "allowed; stop when the count reaches patience.")):
                if mistake.get("extra") == -1 and patience == 1:
                    continue
                wrong, _ = _es_expected(ws, num_epochs, patience, **mistake)
                if len(wrong) != len(want) and len(wrong) == len(got_val):
                    raise Mistake(f"{case}: {message}")
            raise Mistake(f"{case}: you trained {len(got_val)} epochs; the validation loss was lowest at epoch "
                          f"{best_epoch}, so with patience {patience} training stops after epoch {len(want_val)}.")
        w = model.w.item()
        if not math.isclose(w, want_w, rel_tol=1e-6, abs_tol=1e-9):
            last = math.isclose(w, ws[len(want_val) - 1], rel_tol=1e-6)
            raise Mistake(f"{case}: the model ends with " + ("the LAST epoch's weights" if last else
                          f"weights from no epoch of the best (w = {w:.4f})") +
                          f": load the best epoch's weights back (epoch {1 + int(np.argmin(want_val))}). Keep a "
                          "COPY of them when you find them: state_dict() returns references to the live "
                          "tensors, which later steps change (clone each tensor, or copy.deepcopy).")
    return "stops after the right epoch, restores the best weights, validates in eval mode under no_grad"


# ---------------------------------------------------------------------------- 09.6 timing


class _FakeDevice:
    """A device that runs work asynchronously, on a fake clock (seconds). Each call of `work`
    costs the host `launch` seconds and queues `busy` seconds of device work; the first `slow`
    calls also cost `first` seconds of host time (compilation, memory allocation). sync() waits
    until the device has finished."""

    def __init__(self, launch=5e-5, busy=4e-3, slow=1, first=0.05):
        self.now, self.free_at, self.calls = 0.0, 0.0, 0
        self.launch, self.busy, self.slow, self.first = launch, busy, slow, first

    def work(self):
        self.calls += 1
        self.now += self.launch + (self.first if self.calls <= self.slow else 0.0)
        self.free_at = max(self.free_at, self.now) + self.busy

    def sync(self):
        self.now = max(self.now, self.free_at)

    def clock(self):
        return self.now


def _time_variant(repeats, warmup, sync_end=True, sync_start=True, do_warmup=True, per_call=True,
                  scale=1.0):
    device = _FakeDevice()
    for _ in range(warmup if do_warmup else 0):
        device.work()
    if sync_start:
        device.sync()
    start = device.clock()
    for _ in range(repeats):
        device.work()
    if sync_end:
        device.sync()
    elapsed = device.clock() - start
    return scale * (elapsed / repeats if per_call else elapsed)


@exercise("09.6", "time_per_call", "timing work that a device runs asynchronously", hint="""
    A GPU works asynchronously: a call returns as soon as the work is queued, long before it is
    done, so a clock read right after the calls measures only the queuing. Wait for the device
    before reading the clock at the end, and also before reading it at the start (so that work
    queued earlier is not counted). The first calls are slow for other reasons (compilation,
    memory allocation): run a few untimed calls first. The usual mistakes: no wait at the end (the
    time of the launches, far too small), no wait at the start, no warm-up, the total instead of the
    time per call, and milliseconds instead of seconds.""",
          formula="""
    warmup untimed calls of fn(); sync(); t0 = clock(); repeats timed calls of fn(); sync();
    t1 = clock(); the answer is (t1 - t0) / repeats, in seconds as clock() gives them. Waiting after
    every call instead also works, and gives almost the same number here.""")
def _check_timing(fn):
    for repeats, warmup in ((10, 2), (25, 3)):
        case = f"a fake device, 4 ms of work per call, repeats={repeats}, warmup={warmup}"
        device = _FakeDevice()
        got = _run(fn, device.work, device.sync, repeats=repeats, warmup=warmup, clock=device.clock, case=case)
        if got is None:
            raise Mistake(f"{case}: your function returned None: did you forget `return`?")
        got = float(as_array(got, "your time", case).reshape(-1)[0])
        want = _time_variant(repeats, warmup)
        if math.isclose(got, want, rel_tol=0.02) and device.calls == repeats + warmup:
            continue
        for variant, message in (
                (dict(sync_end=False), "you timed only the LAUNCHES: the calls return before the device has "
                 "done the work; call sync() before reading the clock at the end."),
                (dict(sync_start=False), "your time includes the warm-up's queued work: call sync() before "
                 "reading the clock at the start too."),
                (dict(do_warmup=False), "your time includes the slow first call: run `warmup` untimed calls "
                 "first."),
                (dict(per_call=False), "that is the total time: divide by repeats to get the time per call."),
                (dict(scale=1000.0), "that is in milliseconds: return seconds, as clock() gives them.")):
            wrong = _time_variant(repeats, warmup, **variant)
            if not math.isclose(wrong, want, rel_tol=0.02) and math.isclose(got, wrong, rel_tol=0.02):
                raise Mistake(f"{case}: {1000 * got:.3g} ms per call: {message}" if "milliseconds" not in message
                              else f"{case}: {got:.4g}: {message}")
        if device.calls != repeats + warmup:
            raise Mistake(f"{case}: you called fn {device.calls} times; call it warmup + repeats = "
                          f"{warmup + repeats} times ({warmup} untimed, then {repeats} timed).")
        raise Mistake(f"{case}: {1000 * got:.4g} ms per call, expected {1000 * want:.4g} ms.")
    return "4 ms per call measured: waits for the device at both ends, warm-up left out"
