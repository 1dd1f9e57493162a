"""How much the course explains: words of lesson prose per notebook.

    mnist-course words                  # every notebook in notebooks/, and the total
    mnist-course words 05 12            # some notebooks only (by number or name)
    mnist-course words --pointers       # also list the sentences that point at a number instead of stating it

A word of prose is a word of a markdown cell outside code: fenced code blocks, inline code spans,
math ($...$, $$...$$), HTML comments, HTML tags (their text stays), link targets and images are
left out; what is left is split on whitespace and every piece holding a letter or a digit counts.
The count is split at the notebook's ``## Exercises`` heading: "lessons" before it, "end" (the
exercises, questionnaire and further research) from it on; "total" is both.

"Pointers" are phrases that send the reader to a number instead of saying what it means
("printed above", "the numbers below", "is printed"): the course's prose states and interprets
its numbers (a code cell prints them), so the list should stay short.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from .nbrefs import pick_notebooks
from .runner import notebooks_dir

_LEFT_OUT = [
    re.compile(r"<!--.*?-->", re.S),                          # HTML comments
    re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M),      # fenced code blocks
    re.compile(r"\$\$.+?\$\$", re.S),                         # display math
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$"),   # inline math
    re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S),           # code spans (any number of backticks)
    re.compile(r"!\[[^\]]*\]\([^)]*\)"),                      # images
]
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")                  # [text](target) -> text
_TAG = re.compile(r"</?[A-Za-z][^>]*>")                       # <details>, <summary>, <br/>, ...
_WORD = re.compile(r"[^\W_]")                                 # a letter or digit, any script

POINTER = re.compile(
    r"\bprinted\s+(?:above|below|in\s+section|in\s+the|earlier|there|after|under|once|by)\b"
    r"|\b(?:is|are|was|were|get|gets|be)\s+printed\b"
    r"|\b(?:number|numbers|value|values|timings?|ratio|verdicts?|counts?|sizes?|share|accuracy|difference)"
    r"\s+(?:above|below)(?=\s*[).,;:]|\s*$|\s+(?:is|are|was|were|can|shows?|says?|gives?)\b)"
    r"|\((?:the\s+)?(?:numbers?|values?|line|lines|table)\s+(?:above|below)\)",
    re.I)


def prose(markdown: str) -> str:
    """A markdown cell's text without code, math, comments, tags, link targets or images."""
    text = markdown
    for pattern in _LEFT_OUT:
        text = pattern.sub(" ", text)
    return _TAG.sub(" ", _LINK.sub(r"\1", text))


def count_words(markdown: str) -> int:
    """Words of prose in a markdown cell's source (see the module docstring for what counts)."""
    return sum(1 for piece in prose(markdown).split() if _WORD.search(piece))


def pointers(markdown: str) -> list[str]:
    """The pointer phrases ("printed above", ...) in a markdown cell's prose, each with its context."""
    text = " ".join(prose(markdown).split())
    return [text[max(0, m.start() - 60): m.end() + 30] for m in POINTER.finditer(text)]


def notebook_counts(path: str | Path) -> dict:
    """{"lessons": words before '## Exercises', "end": words from it on, "total", "pointers": [...]}"""
    nb = nbformat.read(str(path), as_version=4)
    lessons = end = 0
    found: list[str] = []
    in_end = False
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        in_end = in_end or cell.source.lstrip().startswith("## Exercises")
        words = count_words(cell.source)
        if in_end:
            end += words
        else:
            lessons += words
        found += pointers(cell.source)
    return {"lessons": lessons, "end": end, "total": lessons + end, "pointers": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-course words",
        description="Words of lesson prose per notebook (markdown outside code, math and HTML comments), "
                    "and the phrases that point at a number instead of stating it.")
    parser.add_argument("notebooks", nargs="*", metavar="NN",
                        help="notebooks by number or name (default: all of notebooks/)")
    parser.add_argument("--folder", type=Path, default=None, help="where the notebooks are (default: notebooks/)")
    parser.add_argument("--pointers", action="store_true",
                        help="list every 'printed above/below' phrase with its context")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    folder = args.folder or notebooks_dir()
    if not folder.is_dir():
        parser.error(f"no folder {folder}: give --folder, the folder that holds the NN_name.ipynb notebooks")
    paths = pick_notebooks(folder, args.notebooks or None)
    rows = [(p.stem, notebook_counts(p)) for p in paths]
    width = max(len(name) for name, _ in rows + [("total", None)])
    print(f"{'notebook':<{width}}  {'lessons':>7}  {'end':>6}  {'total':>6}  {'pointers':>8}")
    for name, c in rows:
        print(f"{name:<{width}}  {c['lessons']:>7,}  {c['end']:>6,}  {c['total']:>6,}  {len(c['pointers']):>8}")
    totals = {k: sum(c[k] for _, c in rows) for k in ("lessons", "end", "total")}
    n_pointers = sum(len(c["pointers"]) for _, c in rows)
    print(f"{'total':<{width}}  {totals['lessons']:>7,}  {totals['end']:>6,}  {totals['total']:>6,}  {n_pointers:>8}")
    if args.pointers:
        for name, c in rows:
            for context in c["pointers"]:
                print(f"{name}: ...{context}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
