"""A finished progress bar leaves no widget behind in the saved notebook.

`mc.progress` in a notebook is a tqdm widget. Once the bar is closed its widget model is gone, so
a notebook saved with the widget's view in its outputs shows "Error displaying widget: model not
found" after a page reload or when reopened. The bar is therefore shown with a display handle and,
when it closes, that display is replaced by the bar's last line as plain text (nbclient, papermill
and JupyterLab all apply such an update to the stored output)."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = {
    "setup": "import mnist_course as mc\nmc.set_progress(True)",
    "done": "for i in mc.progress(range(3), desc='epoch 1'):\n    pass",
    "stopped": "for i in mc.progress(range(5), desc='stopped early'):\n    if i == 2:\n        break",
    "manual": "bar = mc.progress(total=4, desc='manual', leave=True)\nbar.update(4)\nbar.close()",
    "failed": "for i in mc.progress(range(4), desc='failed'):\n    if i == 1:\n        raise RuntimeError('boom')",
    "two": "for run in mc.progress(range(2), desc='runs'):\n    for step in mc.progress(range(2), desc=f'run {run}'):\n"
           "        pass",
}
LINES = {  # what each cell's bars leave, in order
    "done": [r"epoch 1: 100%\|█{10}\| 3/3 \["],
    "stopped": [r"stopped early:  40%\|████ {6}\| 2/5 \["],
    "manual": [r"manual: 100%\|█{10}\| 4/4 \["],
    "failed": [r"failed:  25%\|██▌ {7}\| 1/4 \["],
    "two": [r"runs: 100%\|█{10}\| 2/2 \[", r"run 0: 100%\|█{10}\| 2/2 \[", r"run 1: 100%\|█{10}\| 2/2 \["],
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The notebook above, run by nbclient (as papermill runs the course), saved and read back."""
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("progress")
    cells = [new_code_cell(source, metadata={"tags": ["raises-exception"]} if name == "failed" else {})
             for name, source in CELLS.items()]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(folder)}}).execute()
    nbformat.write(nb, folder / "progress.ipynb")
    return folder / "progress.ipynb"


def test_a_saved_notebook_holds_no_widget_view_of_a_finished_bar(saved):
    text = saved.read_text()
    nb = nbformat.read(saved, as_version=4)
    nbformat.validate(nb)
    views = [name for name, cell in zip(CELLS, nb.cells) for out in cell.outputs if WIDGET_VIEW in out.get("data", {})]
    assert not views, f"widget views left in the saved outputs of cell(s) {views}: a reload shows 'model not found'"
    assert WIDGET_VIEW not in text


@pytest.mark.parametrize("name", sorted(LINES))
def test_each_finished_bar_leaves_its_last_line(saved, name):
    """Also when the loop stops early or fails; the bar's display is updated in place, not added to."""
    nb = nbformat.read(saved, as_version=4)
    cell = nb.cells[list(CELLS).index(name)]
    shown = [out.data["text/plain"] for out in cell.outputs if out.output_type == "display_data"]
    assert len(shown) == len(LINES[name]), f"{name}: {len(shown)} displays for {len(LINES[name])} bars: {shown}"
    for line, pattern in zip(shown, LINES[name]):
        assert re.match(pattern, line), f"{name}: {line!r} is not the bar's last line ({pattern})"
    assert all(set(out.data) == {"text/plain"} for out in cell.outputs if out.output_type == "display_data")
    if name == "failed":
        assert [out.ename for out in cell.outputs if out.output_type == "error"] == ["RuntimeError"]


def test_a_silenced_bar_shows_nothing(tmp_path):
    from nbclient import NotebookClient

    nb = new_notebook(cells=[new_code_cell("import mnist_course as mc\nmc.set_progress(False)\n"
                                           "for i in mc.progress(range(3), desc='quiet'):\n    pass")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs == []


RELOAD_WAIT_S = 10  # after a reload, how long the page has to show a widget error if it would


@pytest.mark.slow
def test_finished_bars_survive_a_reload_and_a_reopened_notebook_in_jupyterlab(saved, tmp_path):
    """Chromium in a real JupyterLab: the saved notebook opened as it is, then run, saved and reloaded
    (the kernel still running): no "Error displaying widget", and every bar's last line is there.
    (Without the fix, the reopened notebook shows each bar's first text, "0%| | 0/3", and the reloaded
    one "Error displaying widget: model not found".)"""
    from test_browser import CHROMIUM, CHROMIUM_ARGS, Browser, serve_lab

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package, or set MNIST_COURSE_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    nb = nbformat.read(saved, as_version=4)
    nb.cells = [c for name, c in zip(CELLS, nb.cells) if name != "failed"]  # Run All stops at an error
    lines = [p for name, patterns in LINES.items() if name != "failed" for p in patterns]

    def check(page, when):
        page.locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
        time.sleep(RELOAD_WAIT_S)  # the widget manager answers "model not found" by then
        shown = page.locator(".jp-OutputArea-output").all_text_contents()
        errors = [t for t in shown if "Error displaying widget" in t]
        assert not errors, f"{when}: {errors[:3]}"
        for pattern in lines:
            assert any(re.search(pattern, t) for t in shown), f"{when}: no output matches {pattern}: {shown}"

    with serve_lab(tmp_path, {"progress.ipynb": json.loads(nbformat.writes(nb))}) as (base, token, _log):
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 1600})
                page.set_default_timeout(60_000)
                page.on("dialog", lambda dialog: dialog.accept())
                lab = Browser(sync_api, page, base, token)
                lab.open("progress.ipynb")
                check(page, "the saved notebook, reopened")
                lab.run_all()
                page.keyboard.press("Control+s")
                time.sleep(2)
                page.reload()
                page.locator(".jp-Notebook").first.wait_for(state="visible")
                check(page, "after running and a page reload")
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                print(f"screenshot: {tmp_path / 'failure.png'}")
                raise
            finally:
                browser.close()
