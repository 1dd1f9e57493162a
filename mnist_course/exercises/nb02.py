"""The checks of notebook 02, softmax regression in NumPy
(notebooks/02_softmax_regression_numpy.ipynb): a numerically stable softmax (02.1), the mean cross-
entropy via log-sum-exp (02.2) and its gradient w.r.t. the logits (02.3).

Named after the notebook's number, as the exercise ids are ("02.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .core import Mistake, as_array, call, exercise, expect, seeded_rng


def _logit_cases():
    rng = seeded_rng(2)
    return {"random 3x3 logits": rng.normal(0, 3, (3, 3)),
            "logits of +-1000 (2 rows, 3 classes)": np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -1002.0]]),
            "a batch of one (1 row, 10 classes)": rng.normal(0, 3, (1, 10)),
            "4 rows, 7 classes": rng.normal(0, 3, (4, 7))}


_LABELS = {"random 3x3 logits": [0, 2, 1], "logits of +-1000 (2 rows, 3 classes)": [2, 0],
           "a batch of one (1 row, 10 classes)": [7], "4 rows, 7 classes": [6, 0, 3, 3]}


def _labelled_cases():
    """(case, logits z, labels y) for the loss (02.2) and its gradient (02.3)."""
    return [(case, z, np.array(_LABELS[case])) for case, z in _logit_cases().items()]


_OVERFLOW = ("exp overflows (e^1000 is inf, inf/inf is nan): subtract each row's own maximum first, "
             "z - z.max(axis=1, keepdims=True); the softmax does not change.")
_UNDERFLOW = ("you subtracted the maximum of the whole batch (z.max()), not each row's: a row far below it "
              "underflows, every exp is 0 and 0/0 is nan. Subtract each row's own maximum, "
              "z - z.max(axis=1, keepdims=True).")
_KEEPDIMS = "Shapes: a reduction over axis 1 gives (N,); keepdims=True keeps (N, 1), which broadcasts row by row."


@exercise("02.1", "softmax", "a numerically stable softmax", hint="""
    The softmax does not change when the same number is subtracted from every logit of a row:
    subtract the row's largest logit and the largest exponential becomes e^0 = 1, so nothing overflows
    (e^1000 is inf, and inf / inf is nan). The usual mistakes: the maximum of the whole batch instead of
    each row's (a row far below it underflows to 0 / 0), normalising over the batch instead of the
    classes, and a row maximum or row sum of shape (N,) that broadcasts along the wrong axis.""",
          formula="""
    For each row i: m_i = max over j of z_ij; e_ij = exp(z_ij - m_i); p_ij = e_ij / (sum over k of
    e_ik). A NumPy reduction over axis 1 with keepdims=True has shape (N, 1), which broadcasts across
    each row of an (N, C) array.""")
def _check_softmax(fn):
    for case, z in _logit_cases().items():
        out = call(fn, z, case=case, broadcast=_KEEPDIMS)
        want = torch.softmax(torch.from_numpy(z), dim=1).numpy()
        got = as_array(out, "your result", case)
        if got.shape == want.shape and not np.isfinite(got).all():
            with np.errstate(under="ignore", invalid="ignore"):
                e = np.exp(z - z.max())
                global_max = e / e.sum(axis=1, keepdims=True)
            if not np.isfinite(global_max).all() and np.allclose(got, global_max, equal_nan=True):
                raise Mistake(f"{case}: nan in your result: {_UNDERFLOW}")
            raise Mistake(f"{case}: nan or inf in your result: {_OVERFLOW}")
        with np.errstate(over="ignore", invalid="ignore"):
            shifted = np.exp(z - z.max(axis=1)) if z.shape[0] == z.shape[1] else None
        mistakes = [(torch.softmax(torch.from_numpy(z), dim=0).numpy(), "each column sums to 1: you normalised "
                     "over axis 0 (the batch); each row (axis=1, the classes) must sum to 1.")]
        if shifted is not None:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            mistakes += [(shifted / shifted.sum(axis=1, keepdims=True), "z.max(axis=1) has shape (N,) and "
                          "broadcasts along the wrong axis: use z.max(axis=1, keepdims=True)."),
                         (e / e.sum(axis=1), "e.sum(axis=1) has shape (N,) and divides along the wrong axis: "
                          "use e.sum(axis=1, keepdims=True).")]
        expect(got, want, case, mistakes=mistakes)
    return "random, +-1000, a batch of one and non-square logits; PyTorch agrees"


@exercise("02.2", "cross_entropy", "the mean cross-entropy, via log-sum-exp", hint="""
    The loss of one example is -log p_y, minus the log-probability of its true class; the batch's
    loss is the mean over the examples. Never take the log of a softmax: a probability that underflows
    to exactly 0 has log -inf. Work in log space with the log-sum-exp trick instead. The usual
    mistakes: the log of the softmax, a sum instead of a mean, the sign flipped, and picking the label
    columns for every row.""",
          formula="""
    With m_i = max over j of z_ij: log p_ij = z_ij - m_i - log(sum over k of exp(z_ik - m_i)). Take
    ONE entry per row, row i's at column y_i (fancy indexing with an array of row numbers 0 ... N - 1
    and y), then the loss is -(1/N) times the sum over i of log p_(i, y_i): a single float.""")
def _check_cross_entropy(fn):
    for case, z, y in _labelled_cases():
        want = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
        got = as_array(call(fn, z, y, case=case, broadcast=_KEEPDIMS), "your loss", case)
        if got.shape != ():
            raise Mistake(f"{case}: your loss has shape {got.shape}: return one number, the mean over the batch.")
        if not np.isfinite(got):
            raise Mistake(f"{case}: your loss is {got}: log(softmax) underflows (a probability of exactly 0 has "
                          "log -inf); use log-sum-exp, log p_y = z_y - m - log(sum(exp(z - m))).")
        N, C = z.shape
        log_p = torch.log_softmax(torch.from_numpy(z), dim=1).numpy()
        expect(got, want, case, "your loss", [
            (-log_p[:, y].mean(), "log_p[:, y] takes the label columns for EVERY row (an N x N block); "
                                  "take one entry per row, log_p[np.arange(N), y]."),
            (want * N, f"your loss is {N} (= N) times the right one: average over the batch, don't sum."),
            (want / C, "you averaged over all N x C entries: take each row's log p_y, then average over the N rows.")],
            sign="the loss is MINUS the mean of log p_y, a positive number (-log p_y is large when p_y is small).")
    return "random, +-1000, a batch of one and non-square logits; F.cross_entropy agrees"


@exercise("02.3", "cross_entropy_grad", "the gradient of the loss w.r.t. the logits", hint="""
    The gradient of the mean cross-entropy with respect to the logits has a famously simple form:
    the predicted probabilities minus the one-hot true labels, divided by the batch size. The usual
    mistakes: forgetting the 1/N (the loss is a mean), subtracting 1 in the label columns of every row
    instead of one entry per row, the sign the wrong way round, and a transposed result.""",
          formula="""
    dL/dz_ij = (p_ij - [j == y_i]) / N, where p is the row-wise softmax of the logits and [j == y_i]
    is 1 at the true class and 0 elsewhere. Steps: the probabilities (your softmax from 02.1, on a new
    array), minus 1 at position (i, y_i) for each row i (one entry per row), everything divided by N.
    The result has the shape of z, (N, C).""")
def _check_grad(fn):
    for case, z, y in _labelled_cases():
        zt = torch.from_numpy(z).requires_grad_()
        F.cross_entropy(zt, torch.from_numpy(y)).backward()
        want = zt.grad.numpy()
        N = len(y)
        p = torch.softmax(torch.from_numpy(z), dim=1).numpy()
        every_row = p.copy()
        every_row[:, y] -= 1
        expect(call(fn, z, y, case=case, broadcast=_KEEPDIMS), want, case, "your dZ", [
            (want * N, f"your gradient equals the right one times N = {N}: divide by the batch size (the loss is a mean)."),
            (want.T, "your gradient is transposed: dZ has the shape of z, (N, C)."),
            (p / N, "you forgot to subtract onehot(y): subtract 1 at each row's label, dZ[np.arange(N), y] -= 1."),
            (every_row / N, "dZ[:, y] -= 1 subtracts 1 in the label columns of EVERY row; "
                            "one entry per row: dZ[np.arange(N), y] -= 1.")],
            sign="dZ = (softmax(z) - onehot(y)) / N, the probabilities minus the one-hot labels, not the other "
                 "way round.")
    return "random, +-1000, a batch of one and non-square logits; autograd agrees"
