"""Every notebook ends with checked exercises, a questionnaire and further research.

The checks themselves are proven in test_exercises.py (reference passes, mutants fail with the
message naming their mistake); here: every check("NN.k", fn) call in the notebooks names a known
exercise that has a reference, mutants and a hint; each notebook has at least three, each with the
`if SOLVE:` switch that the solved papermill run (test_notebooks.py) uses.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from test_exercises import ALL_MUTANTS as MUTANTS

from mnist_course import exercises as E
from mnist_course.tooling.runner import course_notebooks

NOTEBOOKS = course_notebooks()


def _cells(path):
    return nbformat.read(str(path), as_version=4).cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checks_in_the_notebook_are_known_exercises(path):
    calls = E.check_calls(path)
    number = path.name[:2]
    assert len(calls) >= 3, f"{path.name} has {len(calls)} checked exercises; every notebook needs at least 3"
    for exercise_id, fn_name in calls:
        assert exercise_id.startswith(number + "."), f"{path.name} checks {exercise_id}, another notebook's exercise"
        assert exercise_id in E.EXERCISES, f"{path.name}: check({exercise_id!r}, ...) has no reference solution"
        assert len(MUTANTS.get(exercise_id, [])) >= 2, f"{exercise_id} has fewer than two mutants in test_exercises.py"
        assert E.EXERCISES[exercise_id].hint, f"{exercise_id} has no hint"
        assert fn_name == E.EXERCISES[exercise_id].function, \
            f"{path.name}: check({exercise_id!r}, {fn_name}) should check the function {E.EXERCISES[exercise_id].function}"
    assert len({c[0] for c in calls}) == len(calls), f"{path.name} checks an exercise twice"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercise_cells_follow_the_convention(path):
    cells = _cells(path)
    params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    assert re.search(r"^SOLVE = False\b", params.source, re.M), f"{path.name}: the parameters cell needs SOLVE = False"
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown" and c.source.strip()]
    for heading in ("## Exercises", "## Questionnaire", "## Further research"):
        assert any(h.startswith(heading) for h in headings), f"{path.name} has no '{heading}' section"
    for cell in cells:
        calls = E.cell_check_calls(cell.source) if cell.cell_type == "code" else []
        for exercise_id, fn_name in calls:
            src = cell.source
            assert re.search(rf"^def {fn_name}\(", src, re.M), f"{path.name}: {exercise_id}'s cell has no stub def {fn_name}"
            assert "raise NotImplementedError" in src, f"{path.name}: {exercise_id}'s stub must raise NotImplementedError"
            assert f'if SOLVE:\n    {fn_name} = reference("{exercise_id}")' in src, \
                f"{path.name}: {exercise_id} needs `if SOLVE: {fn_name} = reference(\"{exercise_id}\")` before the check"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_questionnaire_has_folded_answers(path):
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Questionnaire"))
    text = "\n".join(c.source for c in cells[start:] if c.cell_type == "markdown").split("## Further research")[0]
    answers = text.count("<details>")
    assert 6 <= answers <= 10, f"{path.name}: the questionnaire has {answers} folded answers; 6 to 10 questions are asked for"
    assert answers == text.count("</details>"), f"{path.name}: an unclosed <details> in the questionnaire"
