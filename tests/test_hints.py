"""Hints come in two levels and never give the answer away.

Every registered exercise (every notebook's, as each lands) has a level-1 hint (`hint(id)`: the
idea named, and the usual mistake) and a level-2 hint (`hint(id, 2)`: the formula or the steps),
and neither contains a line of the reference solution: the answer comes only from `solution(id)`.

The rule for "a line of the answer": every statement of the reference's body (its docstring and
`def` lines left out; a compound statement by its header line, `for ...:`, `if ...:`), and for an
assignment (`+=` too) or a `return` also the expression alone (`return dA * (H > 0)` gives `dA*(H>0)`), with
all whitespace removed, both in the line and in the hint. Trivial lines are ignored: those under
6 characters without whitespace, expressions made only of names, constants and attributes
(`return rf`, `return C, H, W`, `rf, jump = 1, 1`, `K.shape`), PyTorch's ritual of calls without
arguments (`model.eval()`, `loss.backward()`, `with torch.no_grad():`), and the statements that
assign or return only such an expression.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pytest

from mnist_course import exercises as E

MIN_CHARS = 6  # a shorter line (whitespace removed) is too generic to count as giving the answer


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _dotted(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) or (isinstance(node, ast.Attribute) and _dotted(node.value))


def _trivial(node: ast.AST) -> bool:
    """Names, constants and PyTorch's ritual: a, 1, (a, b), model.training, model.eval(),
    loss.backward(), torch.no_grad() (a dotted name, or one called without arguments): nothing that
    says how to compute."""
    if isinstance(node, ast.Constant) or _dotted(node):
        return True
    if isinstance(node, ast.Call):
        return _dotted(node.func) and not node.args and not node.keywords
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_trivial(e) for e in node.elts)
    return False


def answer_lines(fn) -> set[str]:
    """The lines of a reference solution that a hint must not contain, whitespace removed."""
    source = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(source)
    lines = source.splitlines()
    found: set[str] = set()

    def add(node: ast.AST | None, whole_line: bool = False):
        if node is None or _trivial(node):
            return
        text = lines[node.lineno - 1] if whole_line else ast.get_source_segment(source, node)
        text = _squeeze(text)
        if len(text) >= MIN_CHARS:
            found.add(text)

    def walk(body):
        for i, stmt in enumerate(body):
            if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                continue  # a docstring says what goes in and out, not how
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(stmt.body)  # a helper's body is part of the answer, its def line is not
            elif isinstance(stmt, (ast.For, ast.While, ast.If, ast.With, ast.Try)):
                if not (isinstance(stmt, ast.With) and all(_trivial(i.context_expr) for i in stmt.items)):
                    add(stmt, whole_line=True)  # the header line: for i in range(...):, not with torch.no_grad():
                for block in ("body", "orelse", "finalbody"):
                    walk(getattr(stmt, block, []))
                for handler in getattr(stmt, "handlers", []):
                    walk(handler.body)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Return, ast.Expr)):
                if not _trivial(stmt.value):  # `return X`, `rf, jump = 1, 1`: trivial
                    add(stmt)
                    add(stmt.value)
            else:  # rf += ..., jump *= stride, raise ...: the statement, and a non-trivial right-hand side
                add(stmt)
                if isinstance(stmt, ast.AugAssign):
                    add(stmt.value)

    function = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    walk(function.body)
    return found


def leaked(text: str, fn) -> list[str]:
    """The answer lines of fn that text contains (whitespace ignored)."""
    squeezed = _squeeze(text)
    return sorted(line for line in answer_lines(fn) if line in squeezed)


# ---------------------------------------------------------------------------- the rule itself


def test_the_rule_finds_a_planted_answer_line_and_ignores_trivial_ones():
    from mnist_course.exercises import solutions as S

    lines = answer_lines(S.softmax)
    assert lines == {"e=np.exp(z-z.max(axis=1,keepdims=True))", "np.exp(z-z.max(axis=1,keepdims=True))",
                     "returne/e.sum(axis=1,keepdims=True)", "e/e.sum(axis=1,keepdims=True)"}
    # an answer line with other spacing, inside prose, is found
    assert leaked("Then divide: e / e.sum(axis = 1, keepdims=True) gives rows that sum to 1.", S.softmax)
    # a return's expression alone is found (the `return` is not needed to give it away)
    assert leaked("dH = dA * (H > 0)", S.relu_backward) == ["dA*(H>0)"]
    # the docstring's words, the def line and trivial lines are not answer lines
    assert not leaked("z: (N, C) logits -> (N, C) probabilities; def softmax(z): return rf", S.softmax)
    assert not leaked("Call model.eval() first; then, inside torch.no_grad(), loss.backward()...", S.corr2d)
    assert "returnrf" not in answer_lines(S.receptive_field) and "rf,jump=1,1" not in answer_lines(S.receptive_field)
    # a compound statement counts by its header; a nested helper's body counts, its def does not
    assert "foriinrange(Y.shape[0]):" in answer_lines(S.corr2d)
    assert {"jump*=stride", "(kernel_size-1)*jump"} <= answer_lines(S.receptive_field)
    assert any("isinstance(v,tuple)" in line for line in answer_lines(S.feature_map_shape))
    assert not any(line.startswith("defpair") for line in answer_lines(S.feature_map_shape))


# ----------------------------------------------------------------------------- every exercise


@pytest.mark.parametrize("exercise_id", list(E.EXERCISES))
def test_every_exercise_has_two_levels_of_hints(exercise_id):
    ex = E.EXERCISES[exercise_id]
    assert len(ex.hint) >= 40, f"{exercise_id}: hint(id) needs a nudge that names the idea (hint=...)"
    assert len(ex.formula) >= 40, f"{exercise_id}: hint(id, 2) needs the formula or the steps (formula=...)"
    assert _squeeze(ex.hint) != _squeeze(ex.formula), f"{exercise_id}: the two levels say the same"


@pytest.mark.parametrize("exercise_id", list(E.EXERCISES))
def test_no_hint_contains_a_line_of_the_answer(exercise_id):
    ex = E.EXERCISES[exercise_id]
    fn = E.reference(exercise_id)
    for level, text in ((1, ex.hint), (2, ex.formula)):
        found = leaked(text, fn)
        assert not found, (f"{exercise_id}: hint({exercise_id!r}, {level}) contains a line of the reference "
                           f"solution {ex.function} (whitespace removed): {found}. Say the idea or the formula "
                           "in words and maths; the answer comes only from solution(id).")


def test_hint_prints_each_level_and_refuses_others(capsys):
    E.hint("02.1")
    first = capsys.readouterr().out
    E.hint("02.1", 2)
    second = capsys.readouterr().out
    ex = E.EXERCISES["02.1"]
    assert ex.hint in first and ex.formula not in first and 'hint("02.1", 2)' in first.replace("'", '"')
    assert ex.formula in second and ex.hint not in second
    with pytest.raises(ValueError, match="the levels are 1"):
        E.hint("02.1", 3)


def test_the_status_command_prints_either_level(capsys):
    from mnist_course.exercises import status
    from mnist_course.tooling import cli

    ex = E.EXERCISES["04.1"]
    assert cli.main(["status", "--hint", "04.1"]) == 0
    first = capsys.readouterr().out
    assert ex.hint in first and ex.formula not in first
    assert cli.main(["status", "--hint", "04.1", "--level", "2"]) == 0
    assert ex.formula in capsys.readouterr().out
    for argv, words in ((["--hint", "99.1"], "no exercise '99.1'"), (["--level", "2"], "--level goes with --hint"),
                        (["--hint", "04.1", "--level", "3"], "invalid choice")):
        with pytest.raises(SystemExit):
            status.main(argv)
        assert words in capsys.readouterr().err
