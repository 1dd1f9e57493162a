"""The front door: a short README that says what the course is and how to start, the rest in docs/,
and every measured number in either generated from the results files (`mnist-course readme`)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import mnist_course as mc
from mnist_course.tooling import readme as RM

ROOT = mc.repo_root()
README = ROOT / "README.md"
PAGES = RM.default_pages(ROOT)
DOCS = [p for p in PAGES if p != README]


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines: keep it under 150, move the rest to docs/"


def test_readme_says_how_to_start_and_where_to_go_next():
    text = README.read_text()
    for command in ("make course", "make test", "make lab"):
        assert f"\n{command}" in text, f"the README must show `{command}` in a code block"
    for page in ("CONTRIBUTING.md", *(f"docs/{p.name}" for p in DOCS)):
        assert f"]({page})" in text, f"the README must link to {page}"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) == 1 and pictures[0].startswith("figures/"), (
        f"the README shows one picture from the recorded run's figures/: {pictures}")


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)  # a `# comment` is no heading
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_pictures_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        assert path.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{page.name} links to {target}: {path.name} has no such heading"


def test_the_notebook_table_covers_every_notebook():
    guide = [name for name, _, _ in RM.NOTEBOOK_GUIDE]
    assert guide == [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def _outside_generated(text: str) -> str:
    text = RM.VALUE.sub("", text)
    for start, end, _ in RM.BLOCKS.values():
        if start in text:
            head, rest = text.split(start, 1)
            text = head + rest.split(end, 1)[1]
    return text


DURATION = re.compile(r"\b\d[\d,.]*\s?(?:ms|s|sec|seconds?|min|minutes?|h|hours?)\b")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_hand_typed_durations(page):
    """A duration in the README or the docs comes from the results files, never from a keyboard:
    the course once said it took 26 minutes while its recorded run took 36."""
    found = DURATION.findall(_outside_generated(page.read_text()))
    assert not found, f"{page.name} states {found} by hand: generate it (a block or <!-- value:KEY -->)"


def test_the_generated_blocks_sit_where_readers_look():
    assert RM.NOTEBOOKS_START in README.read_text()
    results_page = (ROOT / "docs" / "results.md").read_text()
    assert RM.START in results_page and RM.BENCH_START in results_page


def _copy_pages(tmp_path: Path) -> Path:
    """README.md, docs/ and the results files in a temporary repository-like folder."""
    shutil.copy(README, tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "results", tmp_path / "results")
    return tmp_path


def _check(root: Path) -> int:
    return RM.main(["--root", str(root), "--results", str(root / "results" / "results.json"),
                    "--benchmark", str(root / "results" / "benchmark.md"), "--check"])


def test_check_fails_when_a_number_changes(tmp_path):
    """--check passes on a copy of the pages, then fails after one number changes: in the results
    file, in the benchmark report, in a docs page or in the README."""
    root = _copy_pages(tmp_path)
    assert _check(root) == 0
    results = root / "results" / "results.json"
    data = json.loads(results.read_text())
    data["results"]["mnist/06_regularisation_and_tricks/best_cnn_test_acc"]["value"] = 99.1
    results.write_text(json.dumps(data))
    assert _check(root) == 1  # the README's notebook table and inline value, docs/results.md, docs/training.md
    assert RM.main(["--root", str(root), "--results", str(results), "--benchmark",
                    str(root / "results" / "benchmark.md"), "--update"]) == 0
    assert _check(root) == 0 and "99.10%" in (root / "README.md").read_text()

    page = root / "docs" / "results.md"
    before = page.read_text()
    page.write_text(before.replace("| 92.27% |", "| 92.28% |", 1))
    assert page.read_text() != before and _check(root) == 1
    page.write_text(before)
    bench = root / "results" / "benchmark.md"
    text = bench.read_text()
    number = re.search(r"\| (\d[\d,]*\d) \|", text)  # the first number of the report's tables, whatever the run
    changed = number.group(1)[:-1] + str((int(number.group(1)[-1]) + 1) % 10)
    bench.write_text(text.replace(f"| {number.group(1)} |", f"| {changed} |", 1))
    assert _check(root) == 1


def test_a_result_the_pages_show_but_the_file_lacks_is_an_error(tmp_path, capsys):
    root = _copy_pages(tmp_path)
    results = root / "results" / "results.json"
    data = json.loads(results.read_text())
    del data["results"]["mnist/04_mlp_vs_cnn/cnn_test_acc"]
    results.write_text(json.dumps(data))
    assert _check(root) == 2
    assert "mnist/04_mlp_vs_cnn/cnn_test_acc" in capsys.readouterr().err


def test_a_missing_block_is_an_error(tmp_path, capsys):
    root = _copy_pages(tmp_path)
    page = root / "docs" / "results.md"
    page.write_text(page.read_text().replace(RM.BENCH_START, "").replace(RM.BENCH_END, ""))
    assert _check(root) == 2
    assert "benchmark" in capsys.readouterr().err


def _entry(notebook, key, value, unit="", **kw):
    return {"notebook": notebook, "key": key, "value": value, "label": key, "unit": unit, "digits": 0,
            "mode": "full", "dataset": "mnist", "seed": 0, "date": "2026-01-01", "machine": "m", **kw}


def _guide_results(run_seconds: dict[str, float]) -> dict:
    """Every key that NOTEBOOK_GUIDE's templates name, plus the given run times."""
    entries = {}
    for notebook, _, template in RM.NOTEBOOK_GUIDE:
        for key in RM.TEMPLATE_KEY.findall(template):
            entries[f"mnist/{notebook}/{key}"] = _entry(notebook, key, 1)
        if notebook in run_seconds:
            entries[f"mnist/{notebook}/{RM.RUN_TIME_KEY}"] = _entry(notebook, RM.RUN_TIME_KEY,
                                                                    run_seconds[notebook], "s")
    return {"results": entries}


def test_the_course_time_is_the_sum_of_the_recorded_run_times():
    names = [n for n, _, _ in RM.NOTEBOOK_GUIDE]
    none = RM.notebooks_table(_guide_results({}))
    assert "| time |" not in none and "records none yet" in none
    every = RM.notebooks_table(_guide_results({n: 270.0 for n in names}))
    assert "| 4 min |" in every and f"took {RM._duration(270.0 * len(names))}." in every
    some = RM.notebooks_table(_guide_results({names[0]: 30.0}))
    assert "| 30 s |" in some and "| — |" in some and "took 30 s together" in some


def test_a_notebook_newer_than_the_recorded_run_says_so_and_a_missing_key_still_fails():
    """A notebook with no result at all is 'not in the recorded run yet'; one whose results lack a key
    its template names (renamed, no longer recorded) stops the update, naming the key."""
    names = [n for n, _, _ in RM.NOTEBOOK_GUIDE]
    data = _guide_results({})
    newest = [k for k in data["results"] if k.startswith(f"mnist/{names[-2]}/")]
    table = RM.notebooks_table({"results": {k: v for k, v in data["results"].items() if k not in newest}})
    row = next(line for line in table.splitlines() if f"`{names[-2]}`" in line)
    assert "not in the recorded run yet" in row
    del data["results"][newest[0]]
    with pytest.raises(ValueError, match=newest[0]):
        RM.notebooks_table(data)


def test_constant_columns_become_one_sentence():
    rows = {"a": _entry("01_a", "x", 1), "b": _entry("02_b", "y", 2, date="2026-01-02")}
    text = RM.markdown_table({"results": rows})
    assert text.startswith("All 2 numbers: dataset mnist, full mode, seed 0, on m.")
    assert "| Notebook | Result | Value | Date |" in text


def _row(part, kind, value, polarity, right, cw, no_digit=0.0):
    from mnist_course.bench.conditions import Condition

    return {"part": part, "condition": Condition(kind, value).name, "kind": kind, "value": value,
            "polarity": polarity, "n": 300, "right": right, "not_sure": 1 - right - cw - no_digit,
            "no_digit": no_digit, "confident_wrong": cw}


def test_the_pictures_block_names_the_rows_out_of_scope_from_the_held_out_part(tmp_path):
    # Rejects a summary that reads the dev part (tuned on), drops a row under 95 % right or hides a
    # row over the 1 % confident-wrong goal.
    rows = [_row("dev", "tight", 16, "dark", 0.10, 0.50),
            *(_row("held-out", "tight", 20, p, r, 0.003) for p, r in (("dark", 0.993), ("light", 0.987))),
            *(_row("held-out", "thumb", 6, p, r, 0.013) for p, r in (("dark", 0.84), ("light", 0.867))),
            *(_row("held-out", "margin", 5, p, 0.99, 0.0) for p in ("dark", "light")),
            _row("held-out", "blank", "noise", "dark", 0.0, 0.0, no_digit=0.997)]
    section = {"n": 300, "model": "cnn", "rows": rows}
    root = _copy_pages(tmp_path)
    (root / "results" / "benchmark.json").write_text(json.dumps({"pictures": {"conditions": section}}))
    readme = root / "README.md"
    assert _check(root) == 1            # the README's block still says what the old report gave
    assert RM.main(["--root", str(root), "--results", str(root / "results" / "results.json"), "--benchmark",
                    str(root / "results" / "benchmark.md"), "--update"]) == 0
    block = readme.read_text().split(RM.PICTURES_START)[1].split(RM.PICTURES_END)[0]
    assert "tight crops (20 px): 98.7% to 99.3% right, at most 0.3% confidently wrong" in block
    assert "**out of scope**: 6x6 thumbnail scaled up to 48 px: 84.0% (dark) / 86.7% (light) right" in block
    assert "above the 1 % goal: 6x6 thumbnail scaled up to 48 px (dark): 1.3%" in block
    assert "every digit row in scope: at least 98.7% right" in block and "99.7% \"no digit\"" in block
    assert "10.0%" not in block and "50.0%" not in block          # the dev row stays out
