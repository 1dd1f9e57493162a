"""The exercises' core: the registry, ``check`` / ``hint`` / ``solution`` / ``reference``, and the
helpers every notebook's checks share.

It teaches no notebook itself: each ``nbNN`` module holds notebook NN's checks and fills
``EXERCISES`` by registering them with :func:`exercise`; this module imports none of them (the
package's ``__init__`` imports them all, so the registry is complete whenever
``mnist_course.exercises`` is imported).

The helpers a check uses: :func:`call` runs the learner's function on copies of its arguments
(with the exercise's advice for a broadcasting error), :func:`expect` compares its result with the
right answer (naming a known mistake first, then a flipped sign),
:func:`as_array` and :func:`as_int` read a result, :func:`seeded_rng` makes the test data, and
:func:`wrong_number` words the failure of an exercise whose answer is one number or a tuple. A check
raises :class:`Mistake` with a message saying what is wrong; :func:`check` turns that into a
:class:`Result`.
"""

from __future__ import annotations

import copy
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

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
    hint: str      # level 1: a nudge that names the idea
    checker: Callable
    formula: str = ""  # level 2: the formula or the steps, never a line of the answer


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, function: str, title: str, hint: str, formula: str = ""):
    """Register the decorated checker as exercise `exercise_id` ("NN.k": notebook NN, k-th
    exercise) of the function `function`, with its title and two levels of hints (dedented):
    `hint`, a nudge that names the idea, and `formula`, the formula or the steps. Neither holds a
    line of the answer: that comes only from `solution(exercise_id)`."""
    def register(checker):
        EXERCISES[exercise_id] = Exercise(exercise_id, function, title, textwrap.dedent(hint).strip(), checker,
                                          textwrap.dedent(formula).strip())
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


def hint(exercise_id: str, level: int = 1) -> None:
    """Print a hint of an exercise: level 1 names the idea, level 2 gives the formula or the steps."""
    ex = _lookup(exercise_id)
    if level not in (1, 2):
        raise ValueError(f"hint({exercise_id!r}, level={level!r}): the levels are 1 (the idea) and 2 (the formula)")
    if level == 1 or not ex.formula:
        more = f"\n(hint({exercise_id!r}, 2) gives the formula.)" if ex.formula else ""
        print(f"Hint for {exercise_id} ({ex.title}):\n{ex.hint}{more}")
    else:
        print(f"Hint 2 for {exercise_id} ({ex.title}):\n{ex.formula}")


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


_BROADCAST_ERRORS = ("broadcast", "must match the size")  # NumPy's and PyTorch's words
_MATMUL_ERRORS = ("mismatch", "not aligned", "cannot be multiplied")


def call(fn, *args, case: str, pure: bool = True, errors: dict | None = None, broadcast: str | None = None,
         **kwargs):
    """fn(*args, **kwargs) on copies of the arguments. Exceptions other than NotImplementedError
    become a Mistake naming the case; with pure, changing an input array in place is a mistake.
    broadcast: the exercise's advice for a broadcasting error (shapes that do not line up), where
    the exercise knows the likely cause; otherwise the message only says to look at the shapes."""
    copies = [_clone(a) for a in args]
    kw_copies = {k: _clone(v) for k, v in kwargs.items()}
    try:
        with np.errstate(all="ignore"):  # the check's message says what overflowed, once
            out = fn(*copies, **kw_copies)
    except NotImplementedError:
        raise
    except Exception as e:
        extra = ""
        if any(words in str(e) for words in _BROADCAST_ERRORS):
            extra = " " + (broadcast or "Two shapes do not line up: print the .shape of each array in that line.")
        if any(words in str(e) for words in _MATMUL_ERRORS):
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


def as_array(x, what: str, case: str) -> np.ndarray:
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


def expect(got, want, case: str, what: str = "your result", mistakes=(), atol=1e-6, rtol=1e-5,
           sign: str | None = None, shape: str | None = None):
    """Compare the learner's `got` with `want`; first against each (value, message) in mistakes
    (skipping those that equal the right answer), so a known mistake is named. A result that is
    exactly -want (want not ~0) is a flipped sign: "the sign is flipped: " + `sign`, the exercise's
    fix (or a general sentence). `shape` is added to the message of a result of the wrong shape."""
    got, want = as_array(got, what, case), as_array(want, "the expected result", case)
    if _close(got, want, atol, rtol):
        return
    for value, message in mistakes:
        value = as_array(value, "a mistake", case)
        if not _close(value, want, atol, rtol) and _close(got, value, atol, rtol):
            raise Mistake(f"{case}: {message}")
    if _close(got, -want, atol, rtol) and not _close(-want, want, atol, rtol):
        raise Mistake(f"{case}: the sign is flipped: "
                      + (sign or f"{what} is exactly minus the right answer; look for a minus sign or a "
                                 "subtraction the wrong way round."))
    if got.shape != want.shape:
        swapped = got.ndim == 2 and got.shape == want.shape[::-1]
        raise Mistake(f"{case}: {what} has shape {got.shape}, expected {want.shape}"
                      + (" (transposed?)." if swapped else ".") + (f" {shape}" if shape else ""))
    if not np.isfinite(got).all() and np.isfinite(want).all():
        raise Mistake(f"{case}: {what} contains nan or inf where the right answer is finite.")
    worst = float(np.abs(got - want).max())
    raise Mistake(f"{case}: {what} differs from the right answer by up to {worst:.3g} "
                  f"(tolerance {atol:g} + {rtol:g} x |answer|).")


def seeded_rng(seed=0):
    return np.random.default_rng(seed)


def as_int(x, what: str, case: str) -> int:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        x = x.item()
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer, float, np.floating)):
        raise Mistake(f"{case}: {what} should be a whole number, got {type(x).__name__} {x!r}.")
    if isinstance(x, (float, np.floating)):
        raise Mistake(f"{case}: {what} is a float ({x!r}); use // (floor division) and int(...) to get a whole number.")
    return int(x)


def wrong_number(case: str, got, want, named: dict) -> Mistake:
    """The Mistake for an answer `got` (a number or a tuple) that is not `want`: named maps the
    answers of the usual mistakes to what went wrong (an entry equal to `want` is ignored)."""
    named.pop(want, None)
    return Mistake(f"{case}: {got}, expected {want}" + (f": {named[got]}" if got in named else "."))
