"""Notebook 09 (overfitting and the learning rate): the library it teaches (mnist_course.lr_finder,
checked against torch.optim.lr_scheduler and plain loops) and its exercises' planted mistakes
(MUTANTS: tests/test_exercises.py runs them with every other exercise's)."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_course import exercises as E
from mnist_course import lr_finder
from mnist_course.exercises import solutions as S
from mnist_course.training import fit

IDS = [f"09.{k}" for k in range(1, 7)]

# ------------------------------------------------------------------------------- the mutants
# One function per classic mistake, with the signature of the exercise's stub.

# 09.1 the learning rates of a range test


def lrs_linear(lr_min, lr_max, num_steps):
    return list(np.linspace(lr_min, lr_max, num_steps))


def lrs_short_of_max(lr_min, lr_max, num_steps):
    return [lr_min * (lr_max / lr_min) ** (i / num_steps) for i in range(num_steps)]


def lrs_downwards(lr_min, lr_max, num_steps):
    return S.range_test_lrs(lr_min, lr_max, num_steps)[::-1]


def lrs_one_too_many(lr_min, lr_max, num_steps):
    return [lr_min * (lr_max / lr_min) ** (i / num_steps) for i in range(num_steps + 1)]


# 09.2 smoothed losses and the stopping rule


def _smooth(losses, beta, stop_factor, correct=True, new_weight=False, watch_raw=False, against_first=False,
            include=True, best_first=False):
    out, avg, best, first = [], 0.0, float("inf"), None
    for t, loss in enumerate(losses, 1):
        avg = (1 - beta) * avg + beta * loss if new_weight else beta * avg + (1 - beta) * loss
        s = avg / (1 - beta**t) if correct else avg
        watched = loss if watch_raw else s
        first = watched if first is None else first
        if best_first:
            best = min(best, watched)
        if t > 1 and watched > stop_factor * (first if against_first else best):
            if include:
                out.append(s)
            break
        out.append(s)
        best = min(best, watched)
    return out


def smooth_no_bias_correction(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor, correct=False)


def smooth_beta_on_new_loss(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor, new_weight=True)


def stop_on_raw_loss(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor, watch_raw=True)


def stop_against_first_loss(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor, against_first=True)


def stop_drops_last_step(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor, include=False)


def smooth_never_stops(losses, beta=0.98, stop_factor=4.0):
    return _smooth(losses, beta, stop_factor=float("inf"))


def stop_best_updated_first(losses, beta=0.98, stop_factor=4.0):
    """Not a mistake: taking the new smoothed loss into the best before comparing changes nothing
    (a loss above stop_factor x best is never the new best)."""
    return _smooth(losses, beta, stop_factor, best_first=True)


# 09.3 the steepest point of a curve


def _slopes(lrs, smoothed, x=np.log, upto_min=True):
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    end = int(np.argmin(smoothed)) + 1 if upto_min else len(lrs)
    return lrs, np.gradient(smoothed[:end], x(lrs[:end]))


def steepest_per_unit_lr(lrs, smoothed):
    lrs, slope = _slopes(lrs, smoothed, x=lambda v: v)
    return float(lrs[int(np.argmin(slope))])


def steepest_whole_curve(lrs, smoothed):
    lrs, slope = _slopes(lrs, smoothed, upto_min=False)
    return float(lrs[int(np.argmin(slope))])


def steepest_rise(lrs, smoothed):
    lrs, slope = _slopes(lrs, smoothed)
    return float(lrs[int(np.argmax(slope))])


def steepest_index(lrs, smoothed):
    _, slope = _slopes(lrs, smoothed)
    return int(np.argmin(slope))


def steepest_is_lowest(lrs, smoothed):
    return float(np.asarray(lrs)[int(np.argmin(smoothed))])


def steepest_forward_differences(lrs, smoothed):
    """Not a mistake: forward differences instead of central ones move the answer by one step at most."""
    lrs, smoothed = np.asarray(lrs), np.asarray(smoothed)
    end = int(np.argmin(smoothed)) + 1
    slope = np.diff(smoothed[:end]) / np.diff(np.log(lrs[:end]))
    return float(lrs[int(np.argmin(slope))])


# 09.4 SGD with momentum and weight decay


def sgd_decoupled(w, grad, v, lr, momentum, weight_decay):
    v = momentum * v + grad
    return w - lr * v - lr * weight_decay * w, v


def sgd_decay_twice(w, grad, v, lr, momentum, weight_decay):
    v = momentum * v + grad + 2 * weight_decay * w
    return w - lr * v, v


def sgd_decay_sign(w, grad, v, lr, momentum, weight_decay):
    v = momentum * v + grad - weight_decay * w
    return w - lr * v, v


def sgd_decay_without_lr(w, grad, v, lr, momentum, weight_decay):
    v = momentum * v + grad
    return w * (1 - weight_decay) - lr * v, v


def sgd_no_decay(w, grad, v, lr, momentum, weight_decay):
    v = momentum * v + grad
    return w - lr * v, v


def sgd_buffer_forgotten(w, grad, v, lr, momentum, weight_decay):
    d = grad + weight_decay * w
    return w - lr * (momentum * v + d), v


# 09.5 a training loop with early stopping


def _es_loop(model, train_loader, val_loader, optimizer, num_epochs, patience, loss_fn=F.cross_entropy, *,
             watch="val", restore=True, copy_state=True, extra=0, eval_mode=True, no_grad=True, zero_grad=True,
             train_every_epoch=True, reset=True, ties=False):
    history, best, best_state, bad = [], float("inf"), None, 0
    model.train()
    for epoch in range(1, num_epochs + 1):
        if train_every_epoch:
            model.train()
        total, count = 0.0, 0
        for X, y in train_loader:
            loss = loss_fn(model(X), y)
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(y), count + len(y)
        train_loss = total / count
        if eval_mode:
            model.eval()
        total, count = 0.0, 0
        with torch.set_grad_enabled(not no_grad):
            for X, y in val_loader:
                total, count = total + loss_fn(model(X), y).item() * len(y), count + len(y)
        val_loss = total / count
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        watched = val_loss if watch == "val" else train_loss
        if watched < best or (ties and watched == best):
            best = watched
            if reset:
                bad = 0
            best_state = copy.deepcopy(model.state_dict()) if copy_state else model.state_dict()
        else:
            bad += 1
        if bad >= patience + extra:
            break
    if restore:
        model.load_state_dict(best_state)
    return history


def _mutant(name, **mistake):
    def fit_early_stopping(model, train_loader, val_loader, optimizer, num_epochs, patience, loss_fn=F.cross_entropy):
        return _es_loop(model, train_loader, val_loader, optimizer, num_epochs, patience, loss_fn, **mistake)

    fit_early_stopping.__name__ = name
    return fit_early_stopping


es_watches_training_loss = _mutant("es_watches_training_loss", watch="train")
es_never_restores = _mutant("es_never_restores", restore=False)
es_keeps_references = _mutant("es_keeps_references", copy_state=False)
es_one_epoch_late = _mutant("es_one_epoch_late", extra=1)
es_one_epoch_early = _mutant("es_one_epoch_early", extra=-1)
es_validates_in_train_mode = _mutant("es_validates_in_train_mode", eval_mode=False)
es_validates_with_gradients = _mutant("es_validates_with_gradients", no_grad=False)
es_no_zero_grad = _mutant("es_no_zero_grad", zero_grad=False)
es_trains_in_eval_mode = _mutant("es_trains_in_eval_mode", train_every_epoch=False)
es_never_resets_the_count = _mutant("es_never_resets_the_count", reset=False)
es_tie_is_progress = _mutant("es_tie_is_progress", ties=True)


def es_returns_nothing(model, train_loader, val_loader, optimizer, num_epochs, patience, loss_fn=F.cross_entropy):
    _es_loop(model, train_loader, val_loader, optimizer, num_epochs, patience, loss_fn)


# 09.6 timing asynchronous work


def _timer(fn, sync, repeats, warmup, clock, sync_end=True, sync_start=True, do_warmup=True, per_call=True,
           scale=1.0):
    for _ in range(warmup if do_warmup else 0):
        fn()
    if sync_start:
        sync()
    start = clock()
    for _ in range(repeats):
        fn()
    if sync_end:
        sync()
    elapsed = clock() - start
    return scale * (elapsed / repeats if per_call else elapsed)


def time_no_sync_at_end(fn, sync, repeats=10, warmup=2, clock=None):
    return _timer(fn, sync, repeats, warmup, clock, sync_end=False)


def time_no_sync_at_start(fn, sync, repeats=10, warmup=2, clock=None):
    return _timer(fn, sync, repeats, warmup, clock, sync_start=False)


def time_no_warmup(fn, sync, repeats=10, warmup=2, clock=None):
    return _timer(fn, sync, repeats, warmup, clock, do_warmup=False)


def time_total(fn, sync, repeats=10, warmup=2, clock=None):
    return _timer(fn, sync, repeats, warmup, clock, per_call=False)


def time_in_ms(fn, sync, repeats=10, warmup=2, clock=None):
    return _timer(fn, sync, repeats, warmup, clock, scale=1000.0)


def time_sync_every_call(fn, sync, repeats=10, warmup=2, clock=None):
    """Not a mistake: waiting after every call measures each call's latency, almost the same here."""
    for _ in range(warmup):
        fn()
    sync()
    total = 0.0
    for _ in range(repeats):
        start = clock()
        fn()
        sync()
        total += clock() - start
    return total / repeats


# exercise id -> [(mutant, words its failure message must contain)]
MUTANTS = {
    "09.1": [(lrs_linear, "evenly spaced (linear steps)"), (lrs_short_of_max, "not lr_max"),
             (lrs_downwards, "your rates go down"), (lrs_one_too_many, "expected num_steps")],
    "09.2": [(smooth_no_bias_correction, "bias correction"), (smooth_beta_on_new_loss, "beta weighs the running"),
             (stop_on_raw_loss, "stopped on the RAW loss"), (stop_against_first_loss, "compared with the FIRST"),
             (stop_drops_last_step, "left out the step that stopped"), (smooth_never_stops, "never stops")],
    "09.3": [(steepest_per_unit_lr, "per unit of lr"), (steepest_whole_curve, "searched the whole curve"),
             (steepest_rise, "steepest RISE"), (steepest_index, "an index"), (steepest_is_lowest, "edge of divergence")],
    "09.4": [(sgd_decoupled, "decoupled weight decay"), (sgd_decay_twice, "2 * weight_decay * w"),
             (sgd_decay_sign, "the sign is flipped"), (sgd_decay_without_lr, "scaled by lr too"),
             (sgd_no_decay, "left out the weight decay"), (sgd_buffer_forgotten, "differs from the right answer")],
    "09.5": [(es_watches_training_loss, "watched the TRAINING loss"), (es_never_restores, "LAST epoch's weights"),
             (es_keeps_references, "COPY"), (es_one_epoch_late, "one epoch too late"),
             (es_one_epoch_early, "one epoch too early"), (es_validates_in_train_mode, "TRAINING mode"),
             (es_validates_with_gradients, "torch.no_grad()"), (es_no_zero_grad, "optimizer.zero_grad()"),
             (es_trains_in_eval_mode, "model.train() at the start of every epoch"),
             (es_never_resets_the_count, "never reset the count"), (es_tie_is_progress, "tie"),
             (es_returns_nothing, "return history")],
    "09.6": [(time_no_sync_at_end, "only the LAUNCHES"), (time_no_sync_at_start, "warm-up's queued work"),
             (time_no_warmup, "slow first call"), (time_total, "total time"), (time_in_ms, "milliseconds")],
}
NOT_MISTAKES = {"09.2": [stop_best_updated_first], "09.3": [steepest_forward_differences],
                "09.6": [time_sync_every_call]}

# ------------------------------------------------------------------------------- the exercises


def test_notebook_09_has_its_exercises_with_two_level_hints():
    assert [ex.id for ex in E.exercises_of("09")] == IDS
    assert set(MUTANTS) == set(IDS)
    for exercise_id in IDS:
        ex = E.EXERCISES[exercise_id]
        assert E.reference(exercise_id).__name__ == ex.function
        assert ex.checker.__module__ == "mnist_course.exercises.nb09"
        assert len(ex.hint) > 40 and len(ex.formula) > 40, exercise_id
        assert len(MUTANTS[exercise_id]) >= 2


def test_early_stopping_reference_is_at_least_ten_lines():
    body = [line for line in inspect.getsource(S.fit_early_stopping).split('"""')[-1].splitlines() if line.strip()]
    assert len(body) >= 10, body


@pytest.mark.parametrize(("exercise_id", "variant"), [(i, v) for i, vs in NOT_MISTAKES.items() for v in vs],
                         ids=[v.__name__ for vs in NOT_MISTAKES.values() for v in vs])
def test_an_equally_right_answer_passes(exercise_id, variant):
    result = E.check(exercise_id, variant, quiet=True)
    assert result.status == "passed", result.message


def test_a_function_that_raises_gets_a_message_not_a_traceback():
    def broken(*args, **kwargs):
        raise ValueError("boom")

    for exercise_id in IDS:
        result = E.check(exercise_id, broken, quiet=True)
        assert result.status == "failed" and "raised ValueError: boom" in result.message, result.message


# ------------------------------------------------------------------------------- the library


def test_range_test_lrs_match_torch_exponential_lr():
    for lr_min, lr_max, n in ((1e-5, 10.0, 100), (1e-3, 1.0, 2), (0.01, 3.0, 17)):
        w = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([w], lr=lr_min)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(lr_max / lr_min) ** (1 / (n - 1)))
        torch_lrs = []
        for _ in range(n):
            torch_lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        ours = lr_finder.range_test_lrs(lr_min, lr_max, n)
        assert np.allclose(ours, torch_lrs, rtol=1e-9, atol=0)
        assert ours[0] == lr_min and math.isclose(ours[-1], lr_max, rel_tol=1e-12)
        assert np.allclose(ours, S.range_test_lrs(lr_min, lr_max, n), rtol=1e-12)


def test_range_test_lrs_refuse_bad_input():
    with pytest.raises(ValueError, match="num_steps"):
        lr_finder.range_test_lrs(1e-5, 1.0, 1)
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        lr_finder.range_test_lrs(1.0, 1e-5, 10)
    with pytest.raises(ValueError, match="lr_min < lr_max"):
        lr_finder.range_test_lrs(0.0, 1.0, 10)


def test_smoothing_and_divergence_agree_with_the_exercise_reference():
    from mnist_course.exercises.nb09 import _range_test_curves

    for losses in _range_test_curves().values():
        smoothed = lr_finder.smooth_losses(losses)
        stop = lr_finder.divergence_step(smoothed)
        upto = smoothed if stop is None else smoothed[:stop + 1]
        assert np.allclose(upto, S.smooth_and_stop(losses), rtol=1e-12)
    # the first smoothed value is the first loss (bias correction), a constant stays constant
    assert lr_finder.smooth_losses([2.5, 2.5, 2.5]) == pytest.approx([2.5, 2.5, 2.5])
    assert lr_finder.divergence_step([1.0, 0.5, 1.9, 2.1]) == 3
    assert lr_finder.divergence_step([1.0, float("nan")]) == 1
    assert lr_finder.divergence_step([1.0, 0.9, 1.0]) is None


def _tiny_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 20, generator=g)
    y = (X[:, :10].sum(1) > 0).long() + 2 * (X[:, 10:].sum(1) > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    return model, X, y


def test_lr_range_test_diverges_and_leaves_model_and_optimizer_as_they_were():
    import mnist_course as mc

    model, X, y = _tiny_problem()
    loader = mc.BatchIterator(X, y, batch_size=16, shuffle=True, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    result = lr_finder.lr_range_test(model, loader, opt, lr_min=1e-4, lr_max=100.0, num_steps=60)
    assert result.diverged and 3 < len(result) < 60
    assert result.lrs == lr_finder.range_test_lrs(1e-4, 100.0, 60)[:len(result)]
    assert np.allclose(result.smoothed, lr_finder.smooth_losses(result.losses))
    assert lr_finder.divergence_step(result.smoothed) == len(result) - 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm's statistics too
    assert not model.training and opt.param_groups[0]["lr"] == 0.05 and not opt.state
    low, steep = result.suggest(), result.suggest("steepest")
    lowest = result.lrs[int(np.argmin(result.smoothed))]
    assert low == pytest.approx(lowest / 10) and steep <= lowest
    assert steep == S.steepest_lr(result.lrs, result.smoothed)


def test_lr_range_test_one_pass_by_default_and_starts_the_loader_again_when_asked():
    import mnist_course as mc

    model, X, y = _tiny_problem(1)
    loader = mc.BatchIterator(X, y, batch_size=64)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    one_pass = lr_finder.lr_range_test(model, loader, opt, lr_min=1e-5, lr_max=1e-3)
    assert len(one_pass) == len(loader) == 4 and not one_pass.diverged
    longer = lr_finder.lr_range_test(model, loader, opt, lr_min=1e-5, lr_max=1e-3, num_steps=10)
    assert len(longer) == 10 and longer.losses[:4] != longer.losses[4:8]  # the weights moved on


def test_suggest_lr_rules_and_errors():
    lrs = lr_finder.range_test_lrs(1e-4, 1.0, 50)
    x = np.log10(lrs)
    smoothed = list(2.0 - 1.5 / (1 + np.exp(-4 * (x + 2))) + np.clip(x + 0.5, 0, None) ** 2 * 8)
    lowest = lrs[int(np.argmin(smoothed))]
    assert lr_finder.suggest_lr(lrs, smoothed) == pytest.approx(lowest / 10)
    steep = lr_finder.suggest_lr(lrs, smoothed, "steepest")
    assert abs(math.log10(steep) + 2) < 0.15  # the middle of the fall, at lr 1e-2
    with pytest.raises(ValueError, match="unknown rule"):
        lr_finder.suggest_lr(lrs, smoothed, "valley")
    with pytest.raises(ValueError, match="same length"):
        lr_finder.suggest_lr(lrs, smoothed[:-1])
    with pytest.raises(ValueError, match="lower lr_min"):
        lr_finder.suggest_lr(lrs, sorted(smoothed, reverse=False), "steepest")


def test_early_stopping_reference_agrees_with_training_fit():
    """The exercise's loop makes the same choices as mnist_course.training.fit(monitor="val_loss"):
    the same losses every epoch, the same stopping epoch and the same restored weights."""
    import mnist_course as mc

    model, X, y = _tiny_problem(2)
    X_train, y_train, X_val, y_val = X[:64], y[:64], X[64:], y[64:]  # few training examples: it overfits
    runs = []
    for use_fit in (True, False):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.3, momentum=0.9)
        train_loader = mc.BatchIterator(X_train, y_train, batch_size=16, shuffle=True, seed=0)
        val_loader = mc.BatchIterator(X_val, y_val, batch_size=64)
        if use_fit:
            history = fit(m, train_loader, val_loader, 40, opt, patience=3, monitor="val_loss", verbose=False,
                          live_plot=False)
            rows = [(r["train_loss"], r["val_loss"]) for r in history.rows]
        else:
            history = S.fit_early_stopping(m, train_loader, val_loader, opt, 40, 3)
            rows = [(r["train_loss"], r["val_loss"]) for r in history]
        runs.append((rows, m.state_dict()))
    (fit_rows, fit_state), (ours_rows, ours_state) = runs
    assert len(fit_rows) == len(ours_rows) < 40  # it stopped early, at the same epoch
    assert np.allclose(fit_rows, ours_rows, rtol=1e-5)
    assert all(torch.allclose(fit_state[k].float(), ours_state[k].float()) for k in fit_state)
