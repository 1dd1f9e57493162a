"""`mnist-course words` counts lesson prose (markdown outside code, math and comments) and finds the
phrases that point at a printed number instead of stating it; no notebook's prose has one."""

from __future__ import annotations

import nbformat
import pytest

from mnist_course.tooling import wordcount
from mnist_course.tooling.runner import course_notebooks


def test_only_prose_counts():
    cell = """## 1. Hello world
Some `code span`, ``a `tick` inside`` and $x^2 + y^2$ and $$\\sum_i x_i$$ here.
<!-- hidden words here -->
```python
x = 1  # words in code
```
A [link text](https://example.org/some/path) ![a picture](figure.png) <details><summary>Answer</summary>
yes — it is.</details>
"""
    assert " ".join(wordcount.prose(cell).split()) == "## 1. Hello world Some , and and here. A link text Answer yes — it is."
    assert wordcount.count_words(cell) == 14  # "##" and "—" hold no letter or digit; "1." does
    assert wordcount.count_words("costs $5 and $6") == 4  # no math without a closing $ next to text


@pytest.mark.parametrize(("text", "found"), [
    ("the ratio printed above, and", True),
    ("(its size is printed below)", True),
    ("the sizes are printed.", True),
    ("(the numbers above).", True),
    ("the verdict above can go either way", True),
    ("far faster than our loops (the timings above).", True),
    ("as section 2's example printed in section 2", True),
    ("a training accuracy below the validation accuracy is expected", False),
    ("the cell below computes the share of mistakes", False),
    ("`print(x)` printed", False),
])
def test_pointers(text, found):
    assert bool(wordcount.pointers(text)) == found, wordcount.pointers(text)


def test_the_command_prints_each_notebook_and_the_total(tmp_path, capsys):
    for name, cells in (("01_a.ipynb", ["Four words of prose.", "`code` only"]),
                        ("02_b.ipynb", ["One.", "## Exercises\n\nTwo more, printed above."])):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(c) for c in cells] + [nbformat.v4.new_code_cell("x = 1")]
        nbformat.write(nb, str(tmp_path / name))
    assert wordcount.main(["--folder", str(tmp_path), "--pointers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["01_a", "5", "0", "5", "0"]  # "only" is prose
    assert lines[2].split() == ["02_b", "1", "5", "6", "1"]  # lessons before "## Exercises", the rest after
    assert lines[3].split() == ["total", "6", "5", "11", "1"]
    assert lines[4].startswith("02_b: ...") and "printed above" in lines[4]
    with pytest.raises(SystemExit):
        wordcount.main(["--folder", str(tmp_path / "missing")])


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.stem)
def test_no_notebook_points_at_a_printed_number(path):
    """The prose states and interprets its numbers (a code cell prints them); it never sends the
    reader to 'the number printed above'."""
    found = wordcount.notebook_counts(path)["pointers"]
    assert not found, (f"{path.name}: say what the number means instead of where it is printed "
                       f"(`mnist-course words --pointers`): {found}")
