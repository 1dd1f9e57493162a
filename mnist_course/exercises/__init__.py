"""The checked exercises that end every notebook: ``check``, ``hint``, ``solution``, ``reference``.

    from mnist_course.exercises import check, hint, reference, solution

The checks live in :mod:`.checks`, the reference solutions in :mod:`.solutions` (apart from the
checks, so reading a check does not show the answer); ``mnist-course status`` lists a learner's
progress over their notebooks.
"""

from .checks import EXERCISES, Result, check, exercises_of, hint, reference, solution

__all__ = ["EXERCISES", "Result", "check", "exercises_of", "hint", "reference", "solution"]
