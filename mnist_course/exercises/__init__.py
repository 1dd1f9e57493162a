"""The checked exercises that end every notebook: the learner writes a function, `check` says at
once what is right or wrong.

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
  ``mnist_course.exercises.solutions``, apart from the checks, so reading a check does not show the answer.
- ``EXERCISES``: every exercise by id ("NN.k": notebook NN, k-th exercise), with its function
  name, title and hint; ``exercises_of("02")`` lists a notebook's.
- ``check_calls(path)`` (and ``cell_check_calls(source)`` for one cell) lists the ``(id, function name)`` of every ``check("NN.k", name)`` call in a
  saved notebook (for the test that every id in the notebooks has a reference, mutants and a hint).
- ``mnist-course status notebooks/`` (``notebook_status(path)`` for one) reads the notebooks as saved (nbformat),
  finds every ``check("NN.k", name)`` call and the ``def name`` that the learner wrote, runs it in a
  sandboxed child process (``sandbox``: the runner of ``mnist-course grade`` too, with its limits)
  and lists pass / fail / error / timeout / missing per exercise; it exits 1 unless all pass. The
  namespace holds ``np``, ``torch``, ``nn``, ``F`` and ``math`` plus the result of every top-level
  ``import`` in the notebook; then the statements of the cells that call ``check`` run (so helpers
  written next to an exercise are found). No other notebook code runs: no data loading, no training.

Conventions for notebooks (for contributors): the stub keeps the reference solution's name and
signature; the exercise cell ends with ``check("NN.k", name)``; to run a notebook with every stub
solved (papermill parameter ``SOLVE = True``) replace the function before the check,
``if SOLVE: name = reference("NN.k")``. ``tests/test_exercises.py`` proves, for every exercise,
that the reference passes and that at least two realistic wrong versions fail with the message
that names their mistake.

The messages are the point: each check compares a wrong answer with what the usual mistakes
would give (the gradient times N, the transposed matrix, the flipped kernel, the batch statistics
in eval mode...) and says which one it is, in plain words.

The modules: ``core`` (the registry, ``check`` and the helpers the checks share), ``nb01`` ...
``nb12`` (each notebook's checks; importing them here fills ``EXERCISES``), ``sandbox`` (the
sandboxed runner of status and grade), ``status`` (progress over saved notebooks, the
``mnist-course status`` command) and ``solutions`` (the references).
"""

# Each notebook module registers its checks in EXERCISES on import: import them all, first.
from . import nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09, nb10, nb11, nb12  # noqa: F401
from .core import EXERCISES, Result, check, exercises_of, hint, reference, solution
from .status import cell_check_calls, check_calls, notebook_status

__all__ = ["EXERCISES", "Result", "cell_check_calls", "check", "check_calls", "exercises_of", "hint",
           "notebook_status", "reference", "solution"]
