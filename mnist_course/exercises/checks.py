"""Checked exercises (the checks; the registry and `check` live here too): the learner writes a function, `check` says at once what is right or wrong.

Every notebook ends with `## Exercises`: a few functions to complete, each a stub that raises
`NotImplementedError`, followed by one check call. In a notebook::

    from mnist_course.exercises import check, hint, solution

    def softmax(z):
        \"\"\"z: (N, C) logits -> (N, C) probabilities, each row sums to 1.\"\"\"
        raise NotImplementedError  # your code here

    check("02.1", softmax)

API (the whole of it):

- ``check(exercise_id, fn) -> Result`` runs ``fn`` on several cases (edge cases included: logits
  of ±1000, a batch of one, non-square inputs) against a referee (PyTorch where it has the
  operation, else the reference solution) and prints one line: ``✓ 02.1 softmax: passed ...``,
  or ``✗ 02.1 softmax: <case>: <what is wrong, naming the usual mistake>``, or
  ``○ 02.1 softmax: not attempted yet`` while the stub still raises ``NotImplementedError``.
  It never raises for a wrong answer, so Run All, papermill and nbval go through untouched
  notebooks. ``Result`` has ``exercise``, ``status`` (``"passed"``, ``"failed"``,
  ``"not attempted"``), ``passed`` and ``message``; it shows nothing more in a notebook.
- ``hint(exercise_id)`` prints a hint; ``solution(exercise_id)`` prints the reference solution's
  source; ``reference(exercise_id)`` returns it as a function. The reference solutions live in
  ``mnist_course.solutions``, apart from these checks, so reading a check does not show the answer.
- ``EXERCISES``: every exercise by id ("NN.k": notebook NN, k-th exercise), with its function
  name, title and hint; ``exercises_of("02")`` lists a notebook's.
- ``check_calls(path)`` lists the ``(id, function name)`` of every ``check("NN.k", name)`` call in a
  saved notebook (for the test that every id in the notebooks has a reference, mutants and a hint).
- ``mnist-course status notebooks/`` reads the notebooks as saved (nbformat),
  finds every ``check("NN.k", name)`` call and the ``def name`` that the learner wrote, runs it in a
  fresh namespace and lists pass / fail / not attempted per exercise. The namespace holds
  ``np``, ``torch``, ``nn``, ``F`` and ``math`` plus the result of every top-level ``import`` in the
  notebook; then each top-level ``def`` / ``class`` of the cells that call ``check`` is executed
  (so helpers written next to an exercise are found). No other notebook code runs: no data
  loading, no training.

Conventions for notebooks (for contributors): the stub keeps the reference solution's name and
signature; the exercise cell ends with ``check("NN.k", name)``; to run a notebook with every stub
solved (papermill parameter ``SOLVE = True``) replace the function before the check,
``if SOLVE: name = reference("NN.k")``. ``tests/test_exercises.py`` proves, for every exercise,
that the reference passes and that at least two realistic wrong versions fail with the message
that names their mistake.

The messages are the point: each check compares a wrong answer with what the usual mistakes
would give (the gradient times N, the transposed matrix, the flipped kernel, the batch statistics
in eval mode...) and says which one it is, in plain words.
"""

from __future__ import annotations

import argparse
import ast
import copy
import inspect
import math
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import solutions

# ------------------------------------------------------------------------ results and registry


class Mistake(Exception):
    """Raised inside a check: its message says what is wrong and how to fix it."""


@dataclass
class Result:
    """What `check` found: status is "passed", "failed" or "not attempted"."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def line(self) -> str:
        ex = EXERCISES[self.exercise]
        mark = {"passed": "✓", "failed": "✗", "not attempted": "○"}[self.status]
        return f"{mark} {self.exercise} {ex.function}: {self.message}"

    def _ipython_display_(self):  # check() has printed the line already: show nothing more
        pass


@dataclass
class Exercise:
    id: str
    function: str  # the name of the stub and of the reference solution
    title: str
    hint: str
    checker: Callable


EXERCISES: dict[str, Exercise] = {}


def _exercise(exercise_id: str, function: str, title: str, hint: str):
    def register(checker):
        EXERCISES[exercise_id] = Exercise(exercise_id, function, title, textwrap.dedent(hint).strip(), checker)
        return checker
    return register


def _lookup(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; the ids are {', '.join(EXERCISES)}")
    return EXERCISES[exercise_id]


def exercises_of(notebook: str) -> list[Exercise]:
    """The exercises of notebook "NN", in order."""
    return [ex for key, ex in EXERCISES.items() if key.split(".")[0] == notebook]


def reference(exercise_id: str) -> Callable:
    """The reference solution of an exercise, as a function."""
    return getattr(solutions, _lookup(exercise_id).function)


def hint(exercise_id: str) -> None:
    """Print the hint of an exercise."""
    ex = _lookup(exercise_id)
    print(f"Hint for {exercise_id} ({ex.title}):\n{ex.hint}")


def solution(exercise_id: str) -> None:
    """Print the source of the reference solution of an exercise."""
    print(inspect.getsource(reference(exercise_id)))


def check(exercise_id: str, fn: Callable, quiet: bool = False) -> Result:
    """Run the checks of exercise `exercise_id` on the learner's function `fn`; print one line
    (unless quiet) and return a Result. A stub raising NotImplementedError is 'not attempted'."""
    ex = _lookup(exercise_id)
    if not callable(fn):
        result = Result(exercise_id, "failed", f"check needs the function itself: check({exercise_id!r}, "
                        f"{ex.function}), not the result of calling it (got a {type(fn).__name__}).")
    else:
        try:
            summary = ex.checker(fn)
            result = Result(exercise_id, "passed", f"passed ({summary})")
        except NotImplementedError:
            result = Result(exercise_id, "not attempted", "not attempted yet (the stub still raises "
                            f"NotImplementedError); hint({exercise_id!r}) if you are stuck.")
        except Mistake as m:
            result = Result(exercise_id, "failed", f"{m}  [hint({exercise_id!r}), solution({exercise_id!r})]")
    if not quiet:
        print(result.line())
    return result


# ------------------------------------------------------------------------- shared helpers


def _clone(x):
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.copy() if isinstance(x, np.ndarray) else x.clone()
    return copy.deepcopy(x)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return True


def _call(fn, *args, case: str, pure: bool = True, errors: dict | None = None, **kwargs):
    """fn(*args, **kwargs) on copies of the arguments. Exceptions other than NotImplementedError
    become a Mistake naming the case; with pure, changing an input array in place is a mistake."""
    copies = [_clone(a) for a in args]
    kw_copies = {k: _clone(v) for k, v in kwargs.items()}
    try:
        with np.errstate(all="ignore"):  # the check's message says what overflowed, once
            out = fn(*copies, **kw_copies)
    except NotImplementedError:
        raise
    except Exception as e:
        extra = ""
        if "broadcast" in str(e) or "must match the size" in str(e):
            extra = " Shapes: a reduction over axis 1 gives (N,); keepdims=True keeps (N, 1), which broadcasts row by row."
        if "mismatch" in str(e) or "not aligned" in str(e) or "cannot be multiplied" in str(e):
            extra = " Write down the shapes of both factors: (a, b) @ (b, c) -> (a, c)."
        for kind, text in (errors or {}).items():
            if isinstance(e, kind):
                extra = " " + text
        raise Mistake(f"{case}: your function raised {type(e).__name__}: {e}.{extra}") from None
    if pure:
        for i, (a, c) in enumerate(zip(args, copies)):
            if not _same(a, c):
                raise Mistake(f"{case}: your function changed its input (argument {i + 1}) in place "
                              "(e.g. z -= ...); compute a new array instead (z = z - ...).")
    return out


def _arr(x, what: str, case: str) -> np.ndarray:
    """The learner's result as a float64 NumPy array (from an array, tensor, list or number)."""
    if x is None:
        raise Mistake(f"{case}: {what} is None: did you forget `return`?")
    try:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise Mistake(f"{case}: {what} should be an array, got {type(x).__name__} ({e}).") from None


def _close(a, b, atol, rtol) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def _expect(got, want, case: str, what: str = "your result", mistakes=(), atol=1e-6, rtol=1e-5):
    """Compare the learner's `got` with `want`; first against each (value, message) in mistakes
    (skipping those that equal the right answer), so a known mistake is named."""
    got, want = _arr(got, what, case), _arr(want, "the expected result", case)
    if _close(got, want, atol, rtol):
        return
    for value, message in mistakes:
        value = _arr(value, "a mistake", case)
        if not _close(value, want, atol, rtol) and _close(got, value, atol, rtol):
            raise Mistake(f"{case}: {message}")
    if got.shape != want.shape:
        swapped = got.ndim == 2 and got.shape == want.shape[::-1]
        raise Mistake(f"{case}: {what} has shape {got.shape}, expected {want.shape}"
                      + (" (transposed?)." if swapped else "."))
    if not np.isfinite(got).all() and np.isfinite(want).all():
        raise Mistake(f"{case}: {what} contains nan or inf where the right answer is finite.")
    worst = float(np.abs(got - want).max())
    raise Mistake(f"{case}: {what} differs from the right answer by up to {worst:.3g} "
                  f"(tolerance {atol:g} + {rtol:g} x |answer|).")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _int(x, what: str, case: str) -> int:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        x = x.item()
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer, float, np.floating)):
        raise Mistake(f"{case}: {what} should be a whole number, got {type(x).__name__} {x!r}.")
    if isinstance(x, (float, np.floating)):
        raise Mistake(f"{case}: {what} is a float ({x!r}); use // (floor division) and int(...) to get a whole number.")
    return int(x)


# ================================================================== 01 · exploring MNIST


def _idx(type_code: int, dims, payload: bytes = b"\x07" * 12) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


@_exercise("01.1", "read_idx_header", "decode an IDX header", """
    Bytes 0-1 are zero, byte 2 is the type code, byte 3 the number of dimensions d. Then come d
    sizes, 4 bytes each, big-endian: int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big"). The data
    start right after them, at offset 4 + 4 * d. raw holds more bytes than the header: do not use len(raw).""")
def _check_idx(fn):
    cases = {"the training images' header": (0x08, (60000, 28, 28)), "the labels' header": (0x08, (60000,)),
             "a 2-D float32 header (type code 0x0D)": (0x0D, (3, 70000))}
    for case, (code, dims) in cases.items():
        out = _call(fn, _idx(code, dims), case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three things, (type_code, shape, offset); got {out!r}.")
        got_code, shape, offset = out
        if _int(got_code, "type_code", case) != code:
            raise Mistake(f"{case}: type code {got_code!r}, expected {code}"
                          + (": byte 2 is the type code, byte 3 the number of dimensions." if got_code == len(dims) else "."))
        try:
            shape = tuple(int(d) for d in shape)
        except TypeError:
            raise Mistake(f"{case}: shape should be a tuple of sizes, got {shape!r}.") from None
        little = tuple(int.from_bytes(d.to_bytes(4, "big"), "little") for d in dims)
        if shape == little != dims:
            raise Mistake(f"{case}: shape {shape}: you read the sizes as little-endian; IDX stores them "
                          'big-endian, int.from_bytes(..., "big").')
        if shape != dims:
            raise Mistake(f"{case}: shape {shape}, expected {dims}.")
        offset, right = _int(offset, "offset", case), 4 + 4 * len(dims)
        if offset != right:
            why = {16: ": 16 is right only for 3 dimensions; the header is 4 + 4 * ndim bytes long.",
                   4 * len(dims): ": the 4 bytes of the magic number come first, offset = 4 + 4 * ndim."}
            raise Mistake(f"{case}: offset {offset}, expected {right}{why.get(offset, '.')}")
    return "images, labels and a float header decoded"


@_exercise("01.2", "standardize", "standardise with the training set's statistics", """
    Scale both to [0, 1] (divide by 255, as floats), then compute ONE mean and ONE standard deviation
    over all pixels of X_train (not per pixel, not of X), and return (X / 255 - mean) / std.""")
def _check_standardize(fn):
    rng = _rng(1)
    X_train = (rng.random((300, 28, 28)) < 0.3) * rng.integers(1, 256, (300, 28, 28))
    X_train = X_train.astype(np.uint8)
    train = X_train / 255
    m, s = train.mean(), train.std()
    for case, X in {"a batch of 5 test images": rng.integers(0, 256, (5, 28, 28)).astype(np.uint8),
                    "a batch of one image": rng.integers(0, 256, (1, 28, 28)).astype(np.uint8)}.items():
        out = _call(fn, X, X_train, case=case)
        if isinstance(out, np.ndarray) and not np.issubdtype(out.dtype, np.floating):
            raise Mistake(f"{case}: the result has an integer dtype; convert to float before scaling (X.astype(np.float32)).")
        x = X / 255
        with np.errstate(divide="ignore", invalid="ignore"):
            mistakes = [((x - x.mean()) / x.std(), "you used the mean and std of X itself: always use the "
                         "training set's (the test set stays unseen, and one image has its own statistics)."),
                        ((x - train.mean(0)) / train.std(0), "you computed a mean and std per pixel position; "
                         "use one mean and one std over all training pixels."),
                        (x / s, "you forgot to subtract the mean before dividing by the std.")]
        _expect(out, (x - m) / s, case, mistakes=mistakes, atol=1e-4, rtol=1e-4)
    return "test batches and a single image standardised with the training statistics"


@_exercise("01.3", "batch_indices", "the batch iterator's index batches", """
    order = np.random.default_rng(seed).permutation(n), then slice it: order[i: i + batch_size] for
    i = 0, batch_size, 2 * batch_size, ... The last slice is shorter when n % batch_size != 0; with
    drop_last=True leave it out.""")
def _check_batches(fn):
    def run(n, bs, seed, drop_last, case):
        out = _call(fn, n, bs, seed, drop_last=drop_last, case=case)
        try:
            return [np.asarray(b).astype(np.int64).reshape(-1) for b in out]
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a list of index arrays, got {type(out).__name__}.") from None

    for n, bs, drop_last in ((10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False), (100, 32, False)):
        case = f"n={n}, batch_size={bs}, drop_last={drop_last}"
        batches = run(n, bs, 0, drop_last, case)
        sizes, full = [len(b) for b in batches], [bs] * (n // bs)
        want = full if drop_last or n % bs == 0 else full + [n % bs]
        if sizes != want:
            if not drop_last and sizes == full:
                raise Mistake(f"{case}: batch sizes {sizes}: the last, smaller batch of {n % bs} is missing; "
                              "keep it unless drop_last=True.")
            if drop_last and sizes == full + [n % bs]:
                raise Mistake(f"{case}: batch sizes {sizes}: drop_last=True must leave out the last, smaller batch.")
            raise Mistake(f"{case}: batch sizes {sizes}, expected {want}.")
        seen = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        if len(np.unique(seen)) != len(seen) or not set(seen.tolist()) <= set(range(n)):
            raise Mistake(f"{case}: every index 0..{n - 1} must appear at most once; yours repeat or go out of "
                          "range (check the slice bounds).")
        if n == 100 and np.array_equal(seen, np.arange(len(seen))):
            raise Mistake(f"{case}: the batches come in order 0, 1, 2, ...: shuffle first, with "
                          "np.random.default_rng(seed).permutation(n).")
    case = "n=100, batch_size=32, twice with seed 0"
    if not all(np.array_equal(a, b) for a, b in zip(run(100, 32, 0, False, case), run(100, 32, 0, False, case))):
        raise Mistake(f"{case}: the same seed gave different batches: build the generator from seed inside "
                      "the function, np.random.default_rng(seed).")
    case = "n=100, batch_size=32, seeds 0 and 1"
    if all(np.array_equal(a, b) for a, b in zip(run(100, 32, 0, False, case), run(100, 32, 1, False, case))):
        raise Mistake(f"{case}: different seeds gave the same batches: use the seed argument.")
    return "sizes, drop_last, every index once, shuffled and reproducible"


# =========================================================== 02 · softmax regression in NumPy


def _logit_cases():
    rng = _rng(2)
    return {"random 3x3 logits": rng.normal(0, 3, (3, 3)),
            "logits of +-1000 (2 rows, 3 classes)": np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -1002.0]]),
            "a batch of one (1 row, 10 classes)": rng.normal(0, 3, (1, 10)),
            "4 rows, 7 classes": rng.normal(0, 3, (4, 7))}


_OVERFLOW = ("exp overflows (e^1000 is inf, inf/inf is nan): subtract each row's own maximum first, "
             "z - z.max(axis=1, keepdims=True); the softmax does not change.")


@_exercise("02.1", "softmax", "a numerically stable softmax", """
    Subtract each row's maximum (z.max(axis=1, keepdims=True)), exponentiate, divide each row by its
    sum (axis=1, keepdims=True). keepdims keeps the shape (N, 1), which broadcasts row by row.""")
def _check_softmax(fn):
    for case, z in _logit_cases().items():
        out = _call(fn, z, case=case)
        want = torch.softmax(torch.from_numpy(z), dim=1).numpy()
        got = _arr(out, "your result", case)
        if got.shape == want.shape and not np.isfinite(got).all():
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
        _expect(got, want, case, mistakes=mistakes)
    return "random, +-1000, a batch of one and non-square logits; PyTorch agrees"


@_exercise("02.2", "cross_entropy", "the mean cross-entropy, via log-sum-exp", """
    log p_y = z_y - m - log(sum_j exp(z_j - m)) with m the row's max (log-sum-exp): never take the
    log of a softmax, which can be exactly 0. Pick each row's label with log_p[np.arange(N), y],
    and return minus the MEAN over the batch, a single number.""")
def _check_cross_entropy(fn):
    labels = {"random 3x3 logits": [0, 2, 1], "logits of +-1000 (2 rows, 3 classes)": [2, 0],
              "a batch of one (1 row, 10 classes)": [7], "4 rows, 7 classes": [6, 0, 3, 3]}
    for case, z in _logit_cases().items():
        y = np.array(labels[case])
        want = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).item()
        got = _arr(_call(fn, z, y, case=case), "your loss", case)
        if got.shape != ():
            raise Mistake(f"{case}: your loss has shape {got.shape}: return one number, the mean over the batch.")
        if not np.isfinite(got):
            raise Mistake(f"{case}: your loss is {got}: log(softmax) underflows (a probability of exactly 0 has "
                          "log -inf); use log-sum-exp, log p_y = z_y - m - log(sum(exp(z - m))).")
        N, C = z.shape
        log_p = torch.log_softmax(torch.from_numpy(z), dim=1).numpy()
        _expect(got, want, case, "your loss", [
            (-log_p[:, y].mean(), "log_p[:, y] takes the label columns for EVERY row (an N x N block); "
                                  "take one entry per row, log_p[np.arange(N), y]."),
            (want * N, f"your loss is {N} (= N) times the right one: average over the batch, don't sum."),
            (-want, "your loss has the wrong sign: the loss is -log p_y (positive)."),
            (want / C, "you averaged over all N x C entries: take each row's log p_y, then average over the N rows.")])
    return "random, +-1000, a batch of one and non-square logits; F.cross_entropy agrees"


@_exercise("02.3", "cross_entropy_grad", "the gradient of the loss w.r.t. the logits", """
    dZ = (softmax(z) - onehot(y)) / N: copy the probabilities, subtract 1 at each row's label
    (dZ[np.arange(N), y] -= 1), divide by the batch size N because the loss is a mean. dZ has
    the shape of z, (N, C).""")
def _check_grad(fn):
    labels = {"random 3x3 logits": [0, 2, 1], "logits of +-1000 (2 rows, 3 classes)": [2, 0],
              "a batch of one (1 row, 10 classes)": [7], "4 rows, 7 classes": [6, 0, 3, 3]}
    for case, z in _logit_cases().items():
        y = np.array(labels[case])
        zt = torch.from_numpy(z).requires_grad_()
        F.cross_entropy(zt, torch.from_numpy(y)).backward()
        want = zt.grad.numpy()
        N = len(y)
        p = torch.softmax(torch.from_numpy(z), dim=1).numpy()
        every_row = p.copy()
        every_row[:, y] -= 1
        _expect(_call(fn, z, y, case=case), want, case, "your dZ", [
            (want * N, f"your gradient equals the right one times N = {N}: divide by the batch size (the loss is a mean)."),
            (want.T, "your gradient is transposed: dZ has the shape of z, (N, C)."),
            (p / N, "you forgot to subtract onehot(y): subtract 1 at each row's label, dZ[np.arange(N), y] -= 1."),
            (every_row / N, "dZ[:, y] -= 1 subtracts 1 in the label columns of EVERY row; "
                            "one entry per row: dZ[np.arange(N), y] -= 1.")])
    return "random, +-1000, a batch of one and non-square logits; autograd agrees"


# ================================================================= 03 · MLP by hand


@_exercise("03.1", "relu_backward", "backward through a ReLU", """
    A = max(0, H) has slope 1 where H > 0 and 0 elsewhere (also at exactly 0, as in PyTorch):
    dH = dA * (H > 0).""")
def _check_relu(fn):
    rng = _rng(3)
    for case, (N, D) in {"a 4x6 batch with some exact zeros": (4, 6), "a batch of one": (1, 5)}.items():
        H = rng.normal(size=(N, D))
        H[0, :2] = 0.0
        dA = rng.normal(size=(N, D))
        Ht = torch.from_numpy(H).requires_grad_()
        torch.relu(Ht).backward(torch.from_numpy(dA))
        want = Ht.grad.numpy()
        _expect(_call(fn, dA, H, case=case), want, case, "your dH", [
            (dA, "you passed the gradient through everywhere: block it where H <= 0, dA * (H > 0)."),
            (dA * (H >= 0), "at H == 0 the gradient must be 0 (PyTorch's convention): use H > 0, not H >= 0."),
            (1.0 * (H > 0), "you returned the mask itself: multiply dA by it."),
            (dA * H * (H > 0), "you multiplied by H: the ReLU's slope is 1 or 0, so multiply by the mask (H > 0) only."),
            (dA * (H < 0), "the mask is reversed: the gradient passes where H > 0.")])
    return "with exact zeros and a batch of one; autograd agrees"


@_exercise("03.2", "linear_backward", "backward through a linear layer", """
    Z = A @ W.T + b. Each gradient has the shape of its variable: dA = dZ @ W (N, in),
    dW = dZ.T @ A (out, in), db = dZ.sum(axis=0) (out,): the bias is used by every example, so its
    gradient is a SUM over the batch (dZ already carries the 1/N).""")
def _check_linear(fn):
    rng = _rng(4)
    for case, (N, n_in, n_out) in {"N=4, in=6, out=3": (4, 6, 3), "a batch of one": (1, 5, 2),
                                   "N=in=out=3": (3, 3, 3)}.items():
        A, W, b, dZ = (rng.normal(size=s) for s in ((N, n_in), (n_out, n_in), (n_out,), (N, n_out)))
        At, Wt, bt = (torch.from_numpy(x).requires_grad_() for x in (A, W, b))
        F.linear(At, Wt, bt).backward(torch.from_numpy(dZ))
        out = _call(fn, dZ, A, W, case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three arrays, (dA, dW, db).")
        dA, dW, db = out
        _expect(dA, At.grad.numpy(), case, "your dA", [(dZ @ W.T if n_in == n_out == N else At.grad.numpy(),
                                                        "dA is dZ @ W (N, in), not dZ @ W.T.")])
        _expect(dW, Wt.grad.numpy(), case, "your dW", [
            (Wt.grad.numpy().T, "dW is transposed: it has the shape of W, (out, in): dZ.T @ A.")])
        if _arr(db, "your db", case).shape == dZ.shape:
            raise Mistake(f"{case}: db has shape {dZ.shape}: sum dZ over the batch, dZ.sum(axis=0).")
        _expect(db, bt.grad.numpy(), case, "your db", [
            (dZ.mean(axis=0), "db is averaged: dZ already includes the 1/N, so SUM over the batch."),
            (dZ.sum(axis=1), "db is summed over the wrong axis: axis=0, the batch.")])
    return "dA, dW and db on three shapes; autograd agrees"


@_exercise("03.3", "sgd_momentum_step", "one step of SGD with momentum", """
    PyTorch's rule: velocity = momentum * velocity + grad, then w = w - lr * velocity. The full
    gradient is added (no (1 - momentum) factor); the velocity starts at zeros.""")
def _check_sgd(fn):
    rng = _rng(5)
    for case, (lr, momentum) in {"lr=0.1, momentum=0.9": (0.1, 0.9), "lr=0.5, momentum=0": (0.5, 0.0)}.items():
        w0 = rng.normal(size=(3, 4))
        grads = [rng.normal(size=(3, 4)) for _ in range(10)]
        p = torch.tensor(w0, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
        w, v = w0.copy(), np.zeros_like(w0)
        for step, g in enumerate(grads, 1):
            p.grad = torch.from_numpy(g.copy())
            before = p.detach().clone().numpy()
            opt.step()
            out = _call(fn, w, g, v, lr, momentum, case=f"{case}, step {step}", pure=False)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise Mistake(f"{case}: return two arrays, (w, velocity).")
            got_w = _arr(out[0], "your w", case)
            where = f"{case}, step {step}"
            want_delta, got_delta = p.detach().numpy() - before, got_w - w
            _expect(got_delta, want_delta, where, "your update (new w - old w)", [
                (-want_delta, "you moved uphill: w = w - lr * velocity."),
                ((1 - momentum) * want_delta if step == 1 else want_delta,
                 "you scaled the gradient by (1 - momentum): PyTorch adds the full gradient, velocity = momentum * velocity + grad."),
                (-lr * g, "momentum has no effect: keep the velocity between steps and step along it, w - lr * velocity.")])
            w, v = got_w, _arr(out[1], "your velocity", case)
    return "ten steps with and without momentum match torch.optim.SGD"


# ======================================================================= 04 · MLP vs CNN


@_exercise("04.1", "conv_output_size", "a convolution's output size", """
    A k-wide window fits n - k + 1 times into n pixels. Padding adds p pixels on BOTH sides
    (n + 2p), and a stride s keeps every s-th position: (n + 2p - k) // s + 1.""")
def _check_out_size(fn):
    cases = [(28, 3, 0, 1), (28, 3, 1, 1), (28, 5, 2, 2), (7, 3, 0, 2), (28, 2, 0, 2), (10, 4, 1, 3), (8, 3, 0, 2)]
    for n, k, p, s in cases:
        case = f"n={n}, kernel_size={k}, padding={p}, stride={s}"
        want = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        got = _int(_call(fn, n, k, padding=p, stride=s, case=case), "your size", case)
        if got == want:
            continue
        named = {want - 1: "off by one: a k-wide window fits n - k + 1 times (the + 1).",
                 (n + p - k) // s + 1: "padding goes on both sides: n + 2 * padding.",
                 n + 2 * p - k + 1: "you forgot the stride: divide by it, (n + 2p - k) // stride + 1.",
                 -(-(n + 2 * p - k) // s) + 1: "round down (//): a window that would stick out is not used."}
        named.pop(want, None)
        raise Mistake(f"{case}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
    return f"{len(cases)} shapes, nn.Conv2d agrees"


@_exercise("04.2", "conv_num_params", "a convolution's parameter count", """
    Each of the out_channels filters has in_channels x kernel_size x kernel_size weights (it looks
    at every input channel), plus one bias per filter when bias=True.""")
def _check_params(fn):
    cases = [(1, 8, 3, True), (8, 15, 3, True), (16, 32, 5, False), (3, 1, 1, True), (35, 10, 1, True)]
    for c_in, c_out, k, bias in cases:
        case = f"nn.Conv2d({c_in}, {c_out}, {k}, bias={bias})"
        want = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, bias=bias).parameters())
        got = _int(_call(fn, c_in, c_out, k, bias=bias, case=case), "your count", case)
        if got == want:
            continue
        named = {c_out * c_in * k * k: "you forgot the biases: one per output channel.",
                 c_out * (k * k + int(bias)): "you forgot in_channels: each filter has in_channels x k x k weights.",
                 c_out * c_in * (k * k + 1): "one bias per output channel, not per (output, input) pair.",
                 c_out * (c_in * k * k + 1): "bias=False: no biases."}
        named.pop(want, None)
        raise Mistake(f"{case}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
    return f"{len(cases)} layers, nn.Conv2d's parameter count agrees"


@_exercise("04.3", "corr2d", "a 2-D cross-correlation with loops", """
    Y has (H - h + 1) rows and (W - w + 1) columns; Y[i, j] = (X[i:i + h, j:j + w] * K).sum().
    No flipping of K: what deep learning calls a convolution (nn.Conv2d) is a cross-correlation.""")
def _check_corr2d(fn):
    g = torch.Generator().manual_seed(6)
    digit = torch.zeros(12, 10, dtype=torch.float64)
    digit[2:10, 4:6] = 1.0
    cases = {"X 5x7, K 2x3": (torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)),
             "a vertical stroke, edge kernel [[1, -1]]": (digit, torch.tensor([[1.0, -1.0]], dtype=torch.float64)),
             "a 1x1 kernel": (torch.randn(4, 6, generator=g, dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64)),
             "K as large as X": (torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64))}
    for case, (X, K) in cases.items():
        want = F.conv2d(X[None, None], K[None, None])[0, 0]
        H, W = X.shape[0] - K.shape[0], X.shape[1] - K.shape[1]
        _expect(_call(fn, X, K, case=case), want, case, "your Y", [
            (F.conv2d(X[None, None], K.flip(0, 1)[None, None])[0, 0],
             "you flipped the kernel (the textbook convolution); nn.Conv2d computes a cross-correlation, no flip."),
            (want[:H, :W], "off by one: the output has H - h + 1 rows and W - w + 1 columns (the last window is missing).")])
    return "non-square X and K, an edge kernel, 1x1 and full-size kernels; F.conv2d agrees"


@_exercise("04.4", "max_pool2d", "2x2 max-pooling", """
    Cut X into non-overlapping 2x2 blocks (stride 2) and keep each block's maximum; the output is
    (H // 2, W // 2): an odd last row or column is dropped, as in nn.MaxPool2d(2).""")
def _check_pool(fn):
    g = torch.Generator().manual_seed(7)
    for case, (H, W) in {"X 4x6": (4, 6), "X 5x7 (odd)": (5, 7), "X 2x2": (2, 2)}.items():
        X = torch.randn(H, W, generator=g, dtype=torch.float64)
        want = F.max_pool2d(X[None, None], 2)[0, 0]
        _expect(_call(fn, X, case=case), want, case, "your pooled X", [
            (F.avg_pool2d(X[None, None], 2)[0, 0], "you averaged: max-pooling keeps each block's largest value."),
            (F.max_pool2d(X[None, None], 2, stride=1)[0, 0], "your windows overlap: a 2x2 pool moves 2 pixels at a time (stride 2)."),
            (F.max_pool2d(X[None, None], 2, ceil_mode=True)[0, 0], "an odd last row/column is dropped (H // 2), as in nn.MaxPool2d(2).")])
    return "even, odd and 2x2 inputs; F.max_pool2d agrees"


# ================================================================= 05 · pixel permutation


def _perm(n, seed):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


_ROWS = "Did you index the rows (X[perm]) instead of the columns (X[:, perm])?"


@_exercise("05.1", "permute_pixels", "apply a pixel permutation to a batch", """
    Pixel j of the result is pixel perm[j] of the original, in every image (row): index the columns,
    X[:, perm]. The same perm for all images.""")
def _check_permute(fn):
    g = torch.Generator().manual_seed(8)
    for case, (N, D) in {"6 images of 6 pixels": (6, 6), "3 images of 784 pixels": (3, 784), "a batch of one": (1, 784)}.items():
        X, perm = torch.randn(N, D, generator=g), _perm(D, N)
        inv = torch.argsort(perm)
        _expect(_call(fn, X, perm, case=case, errors={IndexError: _ROWS}), X[:, perm], case, "your X_perm", [
            (X[perm] if N == D else X[:, perm], "you shuffled the images (rows); shuffle the pixels of each image, X[:, perm]."),
            (X[:, inv], "you applied the inverse permutation: pixel j of the result is pixel perm[j] of the original, X[:, perm].")])
    return "square and 784-pixel batches, a batch of one"


@_exercise("05.2", "inverse_permutation", "invert a permutation", """
    The inverse sends position perm[j] back to j: inv[perm] = torch.arange(len(perm))
    (torch.argsort(perm) gives the same).""")
def _check_inverse(fn):
    for case, perm in {"perm [1, 2, 0]": torch.tensor([1, 2, 0]), "a random permutation of 784": _perm(784, 9),
                       "the identity of 5": torch.arange(5), "a single pixel": torch.tensor([0])}.items():
        out = _call(fn, perm, case=case)
        got = _arr(out, "your inverse", case)
        if got.shape == perm.shape and not np.array_equal(got, np.round(got)):
            raise Mistake(f"{case}: indices must be whole numbers.")
        _expect(got, torch.argsort(perm), case, "your inverse", [
            (perm, "that is perm itself: the inverse undoes it, inv[perm[j]] = j."),
            (perm[perm], "you applied perm twice (perm[perm]); set inv[perm] = arange(n).")], atol=0, rtol=0)
    return "a 3-cycle, 784 pixels, the identity and a single pixel"


@_exercise("05.3", "permute_first_layer", "permute a first layer's weights", """
    W x = sum_i W[:, i] x[i]. On permuted images x_perm[j] = x[perm[j]], so weight column j must be
    the old column perm[j]: W[:, perm] (that is W Pᵀ). Permute the columns, which meet the pixels,
    not the rows (the hidden units).""")
def _check_first_layer(fn):
    g = torch.Generator().manual_seed(10)
    for case, (n_out, D) in {"W 5x12": (5, 12), "W 12x12": (12, 12), "W 8x784": (8, 784)}.items():
        W, perm, x = torch.randn(n_out, D, generator=g), _perm(D, D), torch.randn(D, generator=g)
        out = _call(fn, W, perm, case=case, errors={IndexError: "Did you index the rows (W[perm]) instead of the columns?"})
        _expect(out, W[:, perm], case, "your weights", [
            (W[:, torch.argsort(perm)], "you used the inverse permutation (W P instead of W Pᵀ): W[:, perm]."),
            (W[perm] if n_out == D else W[:, perm], "you permuted the rows (hidden units); permute the columns, W[:, perm].")])
        got = torch.as_tensor(_arr(out, "your weights", case))
        _expect(got @ x[perm].double(), W.double() @ x.double(), case, "W' @ x[perm]", atol=1e-4)
    return "W' @ x[perm] == W @ x for 5x12, 12x12 and 8x784 weights"


# ====================================================== 06 · regularisation and tricks


@_exercise("06.1", "dropout", "inverted dropout", """
    In training: keep = torch.rand(X.shape, generator=generator) >= p (each element dropped with
    probability p), return X * keep / (1 - p), so the mean is unchanged. In evaluation
    (training=False) return X unchanged.""")
def _check_dropout(fn):
    X, p = torch.full((200, 500), 2.0), 0.3
    out = _call(fn, X, p, training=False, generator=torch.Generator().manual_seed(0), case="evaluation mode")
    if not np.array_equal(_arr(out, "your result", "evaluation mode"), X.numpy()):
        raise Mistake("evaluation mode (training=False): dropout must do nothing, return X unchanged.")
    case = "p=0.3 in training, X all 2.0"
    got = _arr(_call(fn, X, p, training=True, generator=torch.Generator().manual_seed(0), case=case), "your result", case)
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
    out = _call(fn, X, 0.0, training=True, generator=torch.Generator().manual_seed(0), case="p=0")
    _expect(out, X, "p=0 in training", "your result")
    return f"eval mode, p=0, and p=0.3: {zeros:.1%} dropped, mean {got.mean():.3f} (X's: 2.0)"


@_exercise("06.2", "batchnorm_forward", "BatchNorm in train and eval mode", """
    Training: mean and BIASED variance per channel over N, H and W (dims 0, 2, 3); normalise
    (X - mean) / sqrt(var + eps), then gamma * X_hat + beta. Update running = (1 - momentum) * running
    + momentum * batch statistic, with the UNBIASED variance (n / (n - 1), n = N*H*W) for running_var.
    Eval: normalise with running_mean and running_var instead, and change nothing. Reshape (C,)
    vectors to (1, C, 1, 1) to broadcast.""")
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
        out = _call(fn, X, gamma, beta, rm0, rv0, True, momentum=0.1, eps=1e-5, case=case)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"{case}: return three things, (Y, running_mean, running_var).")
        Y, rm, rv = out
        g4, b4 = gamma[None, :, None, None], beta[None, :, None, None]
        mean, var = X.mean(dim=(0, 2, 3), keepdim=True), X.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        _expect(Y, want, case, "your Y", [
            ((X - mean) / torch.sqrt(X.var(dim=(0, 2, 3), keepdim=True) + 1e-5) * g4 + b4,
             "you normalised with the unbiased variance (n - 1); normalisation uses the biased one (divide by n)."),
            ((X - X.mean(0)) / torch.sqrt(X.var(0, unbiased=False) + 1e-5) * g4 + b4,
             "statistics are per channel: average over N, H and W (dims 0, 2, 3), not over the batch only."),
            ((X - mean) / torch.sqrt(var + 1e-5), "you forgot the scale gamma and the shift beta."),
            (F.batch_norm(X, rm0, rv0, gamma, beta, training=False, eps=1e-5),
             "in training mode normalise with the batch's statistics; the running ones are for eval mode.")])
        bmean, bvar = mean.flatten(), var.flatten()
        _expect(rm, bn.running_mean, case, "your running_mean", [
            (rm0, "you did not update the running statistics in training mode."),
            (0.9 * bmean + 0.1 * rm0, "momentum weights the NEW batch statistic: (1 - momentum) * running + momentum * batch."),
            (bmean, "you replaced the running mean by the batch mean: blend them, (1 - momentum) * running + momentum * batch.")])
        _expect(rv, bn.running_var, case, "your running_var", [
            (rv0, "you did not update the running statistics in training mode."),
            (0.9 * rv0 + 0.1 * bvar, "running_var is updated with the UNBIASED batch variance, n / (n - 1) times the biased one (as PyTorch does)."),
            (0.9 * bvar + 0.1 * rv0, "momentum weights the NEW batch statistic: (1 - momentum) * running + momentum * batch.")])
    case = "eval mode, X (8, 3, 4, 5)"
    X = torch.randn(8, C, 4, 5, generator=g, dtype=torch.float64) * scale + shift
    want = F.batch_norm(X, rm0, rv0, gamma, beta, training=False, eps=1e-5)
    out = _call(fn, X, gamma, beta, rm0, rv0, False, momentum=0.1, eps=1e-5, case=case)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise Mistake(f"{case}: return three things, (Y, running_mean, running_var).")
    _expect(out[0], want, case, "your Y", [
        (F.batch_norm(X, rm0.clone(), rv0.clone(), gamma, beta, training=True, eps=1e-5),
         "you used the batch statistics in eval mode: use running_mean and running_var.")])
    _expect(out[1], rm0, case, "your running_mean", [], atol=0, rtol=0)
    _expect(out[2], rv0, case, "your running_var", [], atol=0, rtol=0)
    return "train mode (Y and running statistics) and eval mode match nn.BatchNorm2d"


@_exercise("06.3", "adam_step", "one Adam step", """
    m = beta1 * m + (1 - beta1) * grad; v = beta2 * v + (1 - beta2) * grad**2; bias-correct with the
    step number t (1, 2, ...): m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t); then
    w = w - lr * m_hat / (sqrt(v_hat) + eps): eps is added AFTER the square root.""")
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
            out = _call(fn, w, grad, m, v, t, lr=lr, betas=(0.9, 0.999), eps=1e-8, case=where, pure=False)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Mistake(f"{where}: return three things, (w, m, v).")
            got_w = torch.as_tensor(_arr(out[0], "your w", where))
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
            _expect(got_w - w, p.detach() - before, where, "your update (new w - old w)", atol=1e-10, rtol=1e-6)
            w, m, v = got_w, torch.as_tensor(_arr(out[1], "your m", where)), torch.as_tensor(_arr(out[2], "your v", where))
    return "ten steps with ordinary and tiny gradients match torch.optim.Adam"


# ====================================================================== 07 · inside the CNN


def _measured_receptive_field(layers) -> int:
    """The receptive field measured with PyTorch: which input pixels change one output unit."""
    size = 1 + sum((k - 1) * math.prod(s for _, s in layers[:i]) for i, (k, _) in enumerate(layers)) + 64
    X = torch.zeros(1, 1, size, size, requires_grad=True)
    out = X
    for k, s in layers:
        out = F.conv2d(out, torch.ones(1, 1, k, k), stride=s)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (X.grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


@_exercise("07.1", "receptive_field", "a receptive field's size", """
    Walk the layers from the input up, keeping rf (starts at 1 pixel) and jump (the distance in input
    pixels between neighbouring units, starts at 1): each layer adds (kernel_size - 1) * jump to rf,
    THEN multiplies jump by its stride. A pooling layer is a layer with its kernel and stride.""")
def _check_rf(fn):
    stacks = {"no layers": [], "one 3x3 conv": [(3, 1)], "two 3x3 convs": [(3, 1), (3, 1)],
              "conv, 2x2 pool, conv": [(3, 1), (2, 2), (3, 1)],
              "the course cnn's features": [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2), (3, 1), (2, 2)],
              "a stride-2 5x5 conv, then 3x3": [(5, 2), (3, 1)]}
    for case, layers in stacks.items():
        want = _measured_receptive_field(layers)
        got = _int(_call(fn, list(layers), case=case), "your receptive field", case)
        if got == want:
            continue
        named = {1 + sum(k - 1 for k, _ in layers): "layers after a stride-2 layer (pooling) step 2 input pixels per unit: "
                                                   "multiply each (kernel_size - 1) by the product of the EARLIER strides.",
                 1 + sum((k - 1) * math.prod(s2 for _, s2 in layers[: i + 1]) for i, (k, _) in enumerate(layers)):
                     "a layer's own stride does not widen its own window: add (k - 1) * jump first, then multiply jump.",
                 want - 1: "off by one: start from rf = 1 (one pixel sees itself)."}
        named.pop(want, None)
        raise Mistake(f"{case} {layers}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
    return "six stacks; the gradient of one output unit in PyTorch agrees"


@_exercise("07.2", "feature_map_shape", "a feature map's shape", """
    Go layer by layer: every nn.Conv2d and nn.MaxPool2d changes H and W by the output-size formula
    (H + 2 * padding - kernel_size) // stride + 1 (exercise 04.1); C becomes the out_channels of each
    convolution. nn.MaxPool2d(2) has kernel 2, stride 2 and padding 0. Return (C, H, W).""")
def _check_feature_map(fn):
    stacks = {"one conv": ([nn.Conv2d(1, 8, 3)], (1, 28, 28)),
              "conv (padding 1) + pool": ([nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)], (1, 28, 28)),
              "cnn_small's three blocks": ([nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 15, 3, padding=1),
                                            nn.MaxPool2d(2), nn.Conv2d(15, 35, 3, padding=1), nn.MaxPool2d(2)], (1, 28, 28)),
              "a stride-2 conv on a 28x20 input": ([nn.Conv2d(1, 4, 5, stride=2), nn.Conv2d(4, 6, 3)], (1, 28, 20))}
    for case, (layers, shape) in stacks.items():
        with torch.no_grad():
            want = tuple(nn.Sequential(*layers)(torch.zeros(1, *shape)).shape[1:])
            no_pool = tuple(nn.Sequential(*[m for m in layers if isinstance(m, nn.Conv2d)])(torch.zeros(1, *shape)).shape[1:])
            unpadded = [nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride) if isinstance(m, nn.Conv2d) else m
                        for m in layers]
            no_pad = tuple(nn.Sequential(*unpadded)(torch.zeros(1, *shape)).shape[1:])
        out = _call(fn, list(layers), shape, case=case)
        try:
            got = tuple(int(v) for v in out)
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a tuple (C, H, W), got {out!r}.") from None
        if got == want:
            continue
        if len(got) != 3:
            raise Mistake(f"{case}: return (C, H, W), three numbers; got {got}.")
        if got[1:] == want[1:]:
            raise Mistake(f"{case}: C = {got[0]}, expected {want[0]}: C is the out_channels of the last convolution.")
        named = {no_pool: "you skipped the pooling: nn.MaxPool2d(2) halves H and W (kernel 2, stride 2).",
                 no_pad: "you ignored the padding: it adds 2 * padding to H and W before the kernel is applied.",
                 (want[0], want[2], want[1]): "H and W are swapped: the input is (C, H, W), H the rows."}
        named.pop(want, None)
        raise Mistake(f"{case}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
    return "four stacks, including a non-square input; a forward pass in PyTorch agrees"


@_exercise("07.3", "most_confused_pairs", "the most-confused pairs of classes", """
    Row i, column j of C counts digits of class i called j. A pair {i, j} (i < j) has C[i, j] + C[j, i]
    mistakes; the diagonal holds the correct answers and is not a pair. Collect (i, j, total) for
    all i < j, sort by total, largest first, keep k.""")
def _check_pairs(fn):
    rng = _rng(13)
    C = rng.integers(0, 2, (10, 10))  # background: at most 2 mistakes per pair
    C[np.arange(10), np.arange(10)] = rng.integers(900, 1100, 10)
    for (i, j), n in {(4, 9): 9, (9, 4): 6, (7, 2): 11, (2, 7): 1, (3, 5): 4, (5, 3): 6, (8, 1): 8, (1, 8): 0,
                      (0, 6): 3, (6, 0): 3, (5, 7): 2, (7, 5): 2}.items():
        C[i, j] = n  # pair totals 15, 12, 10, 8, 6, 4: no ties at the top
    totals = C + C.T
    for case, k in {"k=3": 3, "k=1": 1, "k=5": 5}.items():
        tri = sorted(((int(totals[i, j]), i, j) for i in range(10) for j in range(i + 1, 10)), key=lambda t: (-t[0], t[1], t[2]))
        if len({t for t, _, _ in tri[: k + 1]}) != k + 1:
            raise AssertionError("test matrix has ties")  # pragma: no cover (guards the check itself)
        want = [(i, j, t) for t, i, j in tri[:k]]
        out = _call(fn, C, k, case=case)
        try:
            got = [tuple(int(v) for v in row) for row in out]
        except (TypeError, ValueError):
            raise Mistake(f"{case}: return a list of (i, j, count) tuples, got {out!r}.") from None
        if got == want:
            continue
        if any(len(row) != 3 for row in got):
            raise Mistake(f"{case}: each entry is (i, j, count), three numbers; got {got}.")
        if any(i == j for i, j, _ in got):
            raise Mistake(f"{case}: {got} contains a pair (i, i): the diagonal holds the correct answers, not mistakes.")
        if all(c == C[i, j] for i, j, c in got):
            raise Mistake(f"{case}: {got}: a pair's mistakes go both ways: count C[i, j] + C[j, i].")
        if any(i > j for i, j, _ in got):
            raise Mistake(f"{case}: {got}: list each pair once, as (i, j) with i < j.")
        if len(got) != k:
            raise Mistake(f"{case}: {len(got)} pairs, expected k = {k}.")
        if [c for _, _, c in got] == sorted(c for _, _, c in got) and k > 1:
            raise Mistake(f"{case}: {got} is sorted smallest first: the most-confused pairs come first.")
        raise Mistake(f"{case}: {got}, expected {want}.")
    return "k = 1, 3 and 5 on a confusion matrix with a big diagonal"


# ======================================================================= 08 · draw a digit


def _blob(shape, cy, cx, radius=2.5):
    rows, cols = np.indices(shape)
    img = np.clip(1 - np.hypot(rows - cy, cols - cx) / radius, 0, 1)
    return img.astype(np.float64)


@_exercise("08.1", "centre_of_mass", "the centre of mass of an image", """
    Weight every pixel's row and column by its intensity: rows, cols = np.indices(img.shape);
    row = (rows * img).sum() / img.sum(), likewise for the column. Return (row, column).""")
def _check_com(fn):
    rng = _rng(14)
    for case, img in {"a grey blob in a 20x28 image": _blob((20, 28), 6, 19) + 0.3 * _blob((20, 28), 12, 5),
                      "random grey ink, 28x28": rng.random((28, 28)) * (rng.random((28, 28)) < 0.2),
                      "a single pixel at (3, 9) of 5x12": np.eye(1, 60, 3 * 12 + 9).reshape(5, 12)}.items():
        want = np.array(solutions.centre_of_mass(img), dtype=np.float64)
        rows, cols = np.nonzero(img)
        out = _call(fn, img, case=case)
        got = _arr(out, "your (row, column)", case).reshape(-1)
        _expect(got, want, case, "your (row, column)", [
            (want[::-1], "you returned (column, row): rows first, (row, column), as in img[row, column]."),
            ([rows.mean(), cols.mean()], "you averaged the ink positions without weights: weight each pixel by its intensity.")])
    return "grey blobs in a non-square image, random ink and a single pixel"


@_exercise("08.2", "crop_to_ink", "crop to the ink's bounding box", """
    Find the rows and columns that hold a pixel above the threshold (np.flatnonzero((img > t).any(axis=1))
    for rows, axis=0 for columns) and slice img[first_row: last_row + 1, first_col: last_col + 1]
    (slices exclude their end). An image without ink gives img[:0, :0].""")
def _check_crop(fn):
    img1 = np.zeros((10, 14))
    img1[2:7, 3:12] = 0.9
    img1[8, 1] = 0.1  # faint, below the threshold
    img2 = np.zeros((9, 6))
    img2[4:, 2:] = 1.0
    img3 = np.zeros((5, 7))
    img3[3, 2] = 0.5
    for case, img in {"a 5x9 block in 10x14, plus a faint speck": img1, "ink touching the bottom-right border": img2,
                      "a single pixel": img3, "an empty image": np.zeros((6, 8))}.items():
        want = solutions.crop_to_ink(img, 0.2)
        out = _call(fn, img, 0.2, case=case, errors={(IndexError, ValueError): "An image without ink must give "
                                                      "an empty (0, 0) array, img[:0, :0], not an error."})
        mistakes = [(want[:-1, :-1], "the last row and column of ink are cut off: slices exclude their end, stop at last + 1."),
                    (solutions.crop_to_ink(img, 0.0), "pixels at or below the threshold are not ink: use img > threshold.")]
        _expect(out, want, case, "your crop", [(v, m) for v, m in mistakes if v.size or want.size])
    return "a block with a faint speck, ink at the border, a single pixel and an empty image"


@_exercise("08.3", "centre_by_mass", "centre a digit by its centre of mass", """
    Compute the centre of mass (cy, cx) (exercise 08.1), then shift the image by the whole pixels
    (round(centre - cy), round(centre - cx)): positive moves down/right. np.roll(img, (dy, dx),
    axis=(0, 1)) does it when the digit does not touch the border.""")
def _check_centre(fn):
    stroke = np.zeros((28, 28))
    stroke[5:12, 16] = 1.0
    stroke[11, 16:20] = 0.6
    for case, img in {"a blob at (10, 17)": _blob((28, 28), 10, 17), "a blob at (17, 12)": _blob((28, 28), 17, 12),
                      "an uneven stroke near the top right": stroke, "a blob already at (14, 14)": _blob((28, 28), 14, 14)}.items():
        got = _arr(_call(fn, img, case=case), "your image", case)
        if got.shape != (28, 28):
            raise Mistake(f"{case}: your image has shape {got.shape}, expected (28, 28).")
        if not math.isclose(got.sum(), img.sum(), rel_tol=1e-6):
            raise Mistake(f"{case}: your image holds {got.sum():.3f} of ink, the input {img.sum():.3f}: shift, don't crop or scale.")
        (cy0, cx0), (cy, cx) = solutions.centre_of_mass(img), solutions.centre_of_mass(got)
        if max(abs(cy - 14), abs(cx - 14)) <= 0.5 + 1e-9:
            continue
        if max(abs(cy - (2 * cy0 - 14)), abs(cx - (2 * cx0 - 14))) <= 0.5 + 1e-9:
            raise Mistake(f"{case}: the centre moved to ({cy:.1f}, {cx:.1f}), away from (14, 14): the sign is flipped, "
                          "shift by centre - cy, not cy - centre.")
        if max(abs(cy - (cy0 + 14 - cx0)), abs(cx - (cx0 + 14 - cy0))) <= 0.5 + 1e-9:
            raise Mistake(f"{case}: the centre moved to ({cy:.1f}, {cx:.1f}): rows and columns are swapped; "
                          "the row shift comes from the row of the centre.")
        raise Mistake(f"{case}: after your shift the centre of mass is at ({cy:.2f}, {cx:.2f}); "
                      "it should be within half a pixel of (14, 14).")
    return "blobs and an uneven stroke end up centred at (14, 14), no ink lost"


@_exercise("08.4", "fit_size", "fit a digit into a 20x20 box", """
    MNIST scales each digit so that its LONGER side is box pixels and keeps the aspect ratio:
    scale = box / max(h, w), then new_h = round(h * scale), new_w = round(w * scale), each at least
    1 pixel (a thin "1" must not vanish). Return (new_h, new_w).""")
def _check_fit(fn):
    from ..drawing import fit_box  # the library's version, the referee

    cases = [(100, 50), (19, 30), (20, 20), (5, 5), (300, 2), (45, 26)]
    for h, w in cases:
        case = f"a {h}x{w} crop"
        want = fit_box(np.zeros((h, w), np.float32)).shape
        out = _call(fn, h, w, case=case)
        try:
            got = tuple(_int(v, "each size", case) for v in out)
        except TypeError:
            raise Mistake(f"{case}: return (new_h, new_w), got {out!r}.") from None
        if got == want:
            continue
        scale = 20 / max(h, w)
        named = {(20, 20): "you stretched it to 20x20: keep the aspect ratio, only the longer side becomes 20.",
                 want[::-1]: "you returned (new_w, new_h): height first, (new_h, new_w).",
                 (int(h * scale), int(w * scale)): "int() cuts off the fraction: round to the nearest pixel, round(...).",
                 (round(h * scale), round(w * scale)): "a side rounded to 0 pixels: keep at least 1, max(1, ...)."}
        named.pop(want, None)
        raise Mistake(f"{case}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
    return "tall, wide, square, small and very thin crops; drawing.fit_box agrees"


# ============================================================= --status: progress over notebooks


_PRELUDE = {"np": np, "numpy": np, "torch": torch, "nn": nn, "F": F, "math": math}


def check_calls(path: str | Path) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a saved notebook, in order."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    trees = [t for t in (_parse(c.source) for c in nb.cells if c.cell_type == "code") if t is not None]
    return [call for tree in trees for call in _check_calls(tree)]


def cell_check_calls(source: str) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in one code cell's source
    (IPython magics are skipped; a cell that does not parse has none)."""
    tree = _parse(source)
    return _check_calls(tree) if tree is not None else []


def _check_calls(tree: ast.AST) -> list[tuple[str, str]]:
    """(exercise id, function name) of every check("NN.k", name) call in a parsed cell."""
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) >= 2
                and (getattr(node.func, "id", None) == "check" or getattr(node.func, "attr", None) == "check")
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and isinstance(node.args[1], ast.Name)):
            calls.append((node.args[0].value, node.args[1].id))
    return calls


def _parse(source: str) -> ast.Module | None:
    lines = [("pass  # " + line) if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def notebook_status(path: str | Path) -> list[Result]:
    """Run every check("NN.k", name) of a saved notebook on the learner's `def name` (quietly)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    trees = [t for t in (_parse(c.source) for c in nb.cells if c.cell_type == "code") if t is not None]
    namespace = dict(_PRELUDE)
    for tree in trees:  # every top-level import, as the notebook's first cells would have done
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
                except Exception:  # an import that fails here fails in the notebook too  # noqa: S110
                    pass
    results, defined = [], {}
    for tree in trees:
        calls = _check_calls(tree)
        if not calls:
            continue
        for node in tree.body:  # the learner's functions (and helpers) in the exercise cells
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
                    defined[node.name] = True
                except Exception as e:
                    defined[node.name] = f"{type(e).__name__}: {e}"
        for exercise_id, name in calls:
            if exercise_id not in EXERCISES:
                continue
            if defined.get(name) is not True:
                why = defined.get(name) or f"no top-level `def {name}` found in the notebook"
                results.append(Result(exercise_id, "failed", f"could not run it: {why}."))
                continue
            results.append(check(exercise_id, namespace[name], quiet=True))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course status",
                                     description="The course's checked exercises: progress, hints and solutions.")
    parser.add_argument("--status", nargs="+", metavar="PATH",
                        help="notebooks (or folders of them) as saved: list pass / fail / not attempted per exercise")
    parser.add_argument("--hint", metavar="ID", help="print the hint of exercise ID (e.g. 02.1)")
    parser.add_argument("--solution", metavar="ID", help="print the reference solution of exercise ID")
    args = parser.parse_args(argv)
    if args.hint:
        hint(args.hint)
    if args.solution:
        solution(args.solution)
    if not args.status:
        if not (args.hint or args.solution):
            for ex in EXERCISES.values():
                print(f"{ex.id}  {ex.function:22s} {ex.title}")
        return 0
    paths = []
    for p in map(Path, args.status):
        if not p.exists():
            print(f"{p}: no such file or folder", file=sys.stderr)
            return 2
        paths += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    counts = {"passed": 0, "failed": 0, "not attempted": 0}
    for path in paths:
        results = notebook_status(path)
        print(path.name)
        for r in results:
            counts[r.status] += 1
            print(f"  {r.line()}")
        if not results:
            print("  (no check(...) calls)")
    total = sum(counts.values())
    print(f"{counts['passed']} of {total} exercises pass, {counts['failed']} fail, "
          f"{counts['not attempted']} not attempted yet.")
    return 0

