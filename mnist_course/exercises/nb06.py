"""The checks of notebook 06, regularisation and tricks (notebooks/06_regularisation_and_tricks.ipynb):
inverted dropout (06.1), BatchNorm in train and eval mode (06.2), one Adam step (06.3).

Named after the notebook's number, as the exercise ids are ("06.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .core import Mistake, as_array, call, exercise, expect


@exercise("06.1", "dropout", "inverted dropout", hint="""
    Dropout zeroes each activation at random, with probability p, in training only. Inverted
    dropout also scales the survivors up, so that every element keeps its expected value and nothing
    has to change at evaluation. The usual mistakes: p taken as the probability to KEEP, no scaling (or
    multiplying by 1 - p instead of dividing), and dropping in evaluation mode.""",
          formula="""
    Training: draw one uniform random number u per element from the given generator (torch.rand
    accepts generator=...), keep the element when u >= p, so it is dropped with probability p; the
    result is X times that 0/1 mask, divided by (1 - p). Evaluation (training=False), or p = 0: X
    unchanged.""")
def _check_dropout(fn):
    X, p = torch.full((200, 500), 2.0), 0.3
    out = call(fn, X, p, training=False, generator=torch.Generator().manual_seed(0), case="evaluation mode")
    if not np.array_equal(as_array(out, "your result", "evaluation mode"), X.numpy()):
        raise Mistake("evaluation mode (training=False): dropout must do nothing, return X unchanged.")
    case = "p=0.3 in training, X all 2.0"
    got = as_array(call(fn, X, p, training=True, generator=torch.Generator().manual_seed(0), case=case), "your result", case)
    if got.shape != X.shape:
        raise Mistake(f"{case}: your result has shape {got.shape}, expected {tuple(X.shape)}.")
    kept = got[got != 0]
    zeros = 1 - kept.size / got.size
    if kept.size and np.allclose(kept, 2.0):
        raise Mistake(f"{case}: kept values are still 2.0: scale them by 1 / (1 - p) so the mean stays the same (inverted dropout).")
    if kept.size and np.allclose(kept, 2.0 * (1 - p)):
        raise Mistake(f"{case}: kept values are 2.0 x (1 - p): divide by (1 - p), don't multiply.")
    if abs(zeros - (1 - p)) < 0.02:
        raise Mistake(f"{case}: {zeros:.0%} of the values are zero: p is the probability to DROP an element, not to keep it.")
    if abs(zeros - p) > 0.02:
        raise Mistake(f"{case}: {zeros:.1%} of the values are zero, expected about {p:.0%}.")
    if not np.allclose(kept, 2.0 / (1 - p)):
        raise Mistake(f"{case}: kept values should all be 2.0 / (1 - p) = {2 / (1 - p):.4f}.")
    out = call(fn, X, 0.0, training=True, generator=torch.Generator().manual_seed(0), case="p=0")
    expect(out, X, "p=0 in training", "your result")
    return f"eval mode, p=0, and p=0.3: {zeros:.1%} dropped, mean {got.mean():.3f} (X's: 2.0)"


_PER_CHANNEL = ("X is (N, C, H, W) and the batch statistics, gamma and beta are (C,): on their own they line up with "
                "X's LAST axis (W), not with the channels. To normalise, reshape them to (1, C, 1, 1), "
                "mean[None, :, None, None]; the running statistics stay (C,).")
_RUNNING_SHAPE = ("The running statistics have shape (C,), like the running_mean and running_var passed in: blend "
                  "them with the (C,) batch statistics, X.mean(dim=(0, 2, 3)) without keepdim.")


@exercise("06.2", "batchnorm_forward", "BatchNorm in train and eval mode", hint="""
    BatchNorm normalises each channel to mean 0 and variance 1, then lets the network scale and
    shift it again (gamma, beta). In training the statistics are the batch's, per channel, over all
    examples and positions, and a running average of them is kept for evaluation; in evaluation the
    running statistics are used and nothing is updated. The usual mistakes: batch statistics in eval
    mode, statistics over the batch axis only, the unbiased variance for normalising, the biased one for
    the running variance, and momentum weighting the old value.""",
          formula="""
    Training, per channel c over dims 0, 2 and 3 (n = N H W values): mu_c = their mean, var_c = their
    BIASED variance (divide by n); Y = gamma_c (X - mu_c) / sqrt(var_c + eps) + beta_c. Running
    statistics: r_mean <- (1 - m) r_mean + m mu_c and r_var <- (1 - m) r_var + m var_c n / (n - 1) (the
    UNBIASED variance, as PyTorch keeps). Eval: mu and var are the running ones, returned unchanged. A
    (C,) vector lines up with the channels of (N, C, H, W) once shaped (1, C, 1, 1).""")
def _check_batchnorm(fn):
    g = torch.Generator().manual_seed(11)
    C = 3
    gamma, beta = torch.tensor([1.5, 0.5, 2.0], dtype=torch.float64), torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    rm0, rv0 = torch.tensor([0.5, -1.0, 0.0], dtype=torch.float64), torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    shift, scale = torch.tensor([1.0, -2.0, 0.5]).double()[None, :, None, None], torch.tensor([1.0, 3.0, 0.5]).double()[None, :, None, None]
    for case, shape in {"training, X (8, 3, 4, 5)": (8, C, 4, 5), "training, a batch of one (1, 3, 3, 3)": (1, C, 3, 3)}.items():
        X = torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift
        bn = nn.BatchNorm2d(C, momentum=0.1, eps=1e-5).double().train()
        with torch.no_grad():
            bn.weight.copy_(gamma), bn.bias.copy_(beta), bn.running_mean.copy_(rm0), bn.running_var.copy_(rv0)
            want = bn(X)
        out = call(fn, X, gamma, beta, rm0, rv0, True, momentum=0.1, eps=1e-5, case=case, broadcast=_PER_CHANNEL)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three things, (Y, running_mean, running_var).")
        Y, rm, rv = out
        g4, b4 = gamma[None, :, None, None], beta[None, :, None, None]
        mean, var = X.mean(dim=(0, 2, 3), keepdim=True), X.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        expect(Y, want, case, "your Y", [
            ((X - mean) / torch.sqrt(X.var(dim=(0, 2, 3), keepdim=True) + 1e-5) * g4 + b4,
             "you normalised with the unbiased variance (n - 1); normalisation uses the biased one (divide by n)."),
            ((X - X.mean(0)) / torch.sqrt(X.var(0, unbiased=False) + 1e-5) * g4 + b4,
             "statistics are per channel: average over N, H and W (dims 0, 2, 3), not over the batch only."),
            ((X - mean) / torch.sqrt(var + 1e-5), "you forgot the scale gamma and the shift beta."),
            (F.batch_norm(X, rm0, rv0, gamma, beta, training=False, eps=1e-5),
             "in training mode normalise with the batch's statistics; the running ones are for eval mode.")],
            shape="Y has the shape of X, (N, C, H, W).")
        bmean, bvar = mean.flatten(), var.flatten()
        expect(rm, bn.running_mean, case, "your running_mean", [
            (rm0, "you did not update the running statistics in training mode."),
            (0.9 * bmean + 0.1 * rm0, "momentum weights the NEW batch statistic: (1 - momentum) * running + momentum * batch."),
            (bmean, "you replaced the running mean by the batch mean: blend them, (1 - momentum) * running + momentum * batch.")],
            shape=_RUNNING_SHAPE)
        expect(rv, bn.running_var, case, "your running_var", [
            (rv0, "you did not update the running statistics in training mode."),
            (0.9 * rv0 + 0.1 * bvar, "running_var is updated with the UNBIASED batch variance, n / (n - 1) times the biased one (as PyTorch does)."),
            (0.9 * bvar + 0.1 * rv0, "momentum weights the NEW batch statistic: (1 - momentum) * running + momentum * batch.")],
            shape=_RUNNING_SHAPE)
    case = "eval mode, X (8, 3, 4, 5)"
    X = torch.randn(8, C, 4, 5, generator=g, dtype=torch.float64) * scale + shift
    want = F.batch_norm(X, rm0, rv0, gamma, beta, training=False, eps=1e-5)
    out = call(fn, X, gamma, beta, rm0, rv0, False, momentum=0.1, eps=1e-5, case=case, broadcast=_PER_CHANNEL)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise Mistake(f"{case}: return three things, (Y, running_mean, running_var).")
    expect(out[0], want, case, "your Y", [
        (F.batch_norm(X, rm0.clone(), rv0.clone(), gamma, beta, training=True, eps=1e-5),
         "you used the batch statistics in eval mode: use running_mean and running_var.")],
        shape="Y has the shape of X, (N, C, H, W).")
    expect(out[1], rm0, case, "your running_mean", [], atol=0, rtol=0, shape=_RUNNING_SHAPE)
    expect(out[2], rv0, case, "your running_var", [], atol=0, rtol=0, shape=_RUNNING_SHAPE)
    return "train mode (Y and running statistics) and eval mode match nn.BatchNorm2d"


@exercise("06.3", "adam_step", "one Adam step", hint="""
    Adam keeps two running averages per weight: m of the gradient (the direction) and v of the
    squared gradient (its typical size), and steps by their ratio, so every weight moves by about lr per
    step whatever the scale of its gradient. Both averages start at zero and are too small at first:
    divide them by a bias correction that depends on the step number t. The usual mistakes: no bias
    correction (or only one of the two), eps inside the square root, and stepping uphill.""",
          formula="""
    With g the gradient and b1, b2 the betas: m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g²
    (element-wise); m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t); w <- w - lr m_hat / (sqrt(v_hat) +
    eps), eps added AFTER the square root. Return the new w, m and v.""")
def _check_adam(fn):
    g = torch.Generator().manual_seed(12)
    for case, grad_scale in {"ordinary gradients": 1.0, "tiny gradients (about 1e-7)": 1e-7}.items():
        lr = 0.01
        w0 = torch.randn(3, 4, generator=g, dtype=torch.float64)
        grads = [grad_scale * torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(10)]
        p = w0.clone().requires_grad_()
        opt = torch.optim.Adam([p], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
        for t, grad in enumerate(grads, 1):
            where = f"{case}, step t={t}"
            before = p.detach().clone()
            p.grad = grad.clone()
            opt.step()
            out = call(fn, w, grad, m, v, t, lr=lr, betas=(0.9, 0.999), eps=1e-8, case=where, pure=False)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Mistake(f"{where}: return three things, (w, m, v).")
            got_w = torch.as_tensor(as_array(out[0], "your w", where))
            got, want = (got_w - w).abs().mean().item(), (p.detach() - before).abs().mean().item()
            if t == 1 and not math.isclose(got, want, rel_tol=1e-3):
                ratio = got / want
                named = {0.1 * math.sqrt(1000): "you forgot the bias correction: divide m by (1 - beta1**t) and v by "
                                                "(1 - beta2**t) (the first step is about 3.16 times too large without).",
                         math.sqrt(1000): "you bias-corrected m but not v: v_hat = v / (1 - beta2**t).",
                         0.1: "you bias-corrected v but not m: m_hat = m / (1 - beta1**t)."}
                for r, message in named.items():
                    if math.isclose(ratio, r, rel_tol=0.02):
                        raise Mistake(f"{where}: {message}")
                if grad_scale < 1e-3 and ratio < 0.05:
                    raise Mistake(f"{where}: your step is {ratio:.1e} times the right size: eps goes outside the "
                                  "square root, sqrt(v_hat) + eps, not sqrt(v_hat + eps).")
            expect(got_w - w, p.detach() - before, where, "your update (new w - old w)", atol=1e-10, rtol=1e-6,
                   sign="subtract the step, w = w - lr * m_hat / (sqrt(v_hat) + eps): Adam moves against the "
                        "gradient, and m follows it, m = beta1 * m + (1 - beta1) * grad.")
            w, m, v = got_w, torch.as_tensor(as_array(out[1], "your m", where)), torch.as_tensor(as_array(out[2], "your v", where))
    return "ten steps with ordinary and tiny gradients match torch.optim.Adam"
