"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's Chromium driven by
Playwright opens notebook 08, runs every cell, draws a digit on the pad with the mouse and waits
for the predicted label.

The notebook runs in fast mode on a temporary copy (JupyterLab's autosave never touches
notebooks/), with figures and results in a temporary folder. Models come from
$MNIST_COURSE_MODELS when set (CI: the ones the notebook run trained), else a temporary folder.
Needs /usr/bin/chromium (or $MNIST_COURSE_CHROMIUM); `.ci/run` installs it. Playwright's own
browser download is never used. Every wait is bounded; JupyterLab and its kernels are shut down
whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import mnist_course as mc

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
NOTEBOOK = "08_draw_a_digit.ipynb"
SERVER_START_S = 90      # JupyterLab must answer within this
RUN_ALL_S = 420          # the whole notebook in fast mode (quick models trained if missing)
PREDICT_S = 60           # from releasing the mouse to the label


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@pytest.fixture()
def jupyterlab(tmp_path):
    """(base url, token, log path) of a JupyterLab serving a temporary copy of notebook 08."""
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(mc.repo_root() / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = free_port(), os.urandom(16).hex()
    jupyter = tmp_path / "jupyter"
    env = dict(os.environ, MNIST_COURSE_FAST="1", MNIST_COURSE_PROGRESS="0",
               MNIST_COURSE_FIGURES=str(tmp_path / "figures"), MNIST_COURSE_RESULTS=str(tmp_path / "results.json"),
               JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(jupyter / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"))
    env.setdefault("MNIST_COURSE_MODELS", str(tmp_path / "models"))
    # No news or update pop-ups over the notebook.
    settings = jupyter / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                api(base, token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token, log
    finally:
        try:  # shut the kernels down through the API, then the server (its own process group)
            for kernel in api(base, token, "/api/kernels") or []:
                api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def code_prompts(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
                                   .map(e => e.textContent.trim())""")


def test_draw_a_digit_in_jupyterlab(jupyterlab, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (as .ci/run does) "
                    "or set MNIST_COURSE_CHROMIUM to a Chromium binary")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    base, token, log = jupyterlab
    shot = tmp_path / "failure.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
                page.locator(".jp-Notebook").first.wait_for(state="visible")
                # The kernel is up when the status bar says so.
                page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for()

                # Run > Run All Cells
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

                # Wait until every code cell has run ("[n]:" everywhere, no "[*]:").
                deadline = time.monotonic() + RUN_ALL_S
                while True:
                    prompts = code_prompts(page)
                    if prompts and all(re.fullmatch(r"\[\d+\]:", t) for t in prompts):
                        break
                    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                          has_text="Traceback")
                    assert errors.count() == 0, f"a cell failed:\n{errors.first.inner_text()[-2000:]}"
                    assert time.monotonic() < deadline, f"notebook still running after {RUN_ALL_S} s: {prompts}"
                    time.sleep(1)

                canvas = page.locator(".mnist-course-canvas canvas, canvas.mnist-course-canvas").first
                canvas.scroll_into_view_if_needed()
                canvas.wait_for(state="visible")
                label = page.locator(".mnist-course-prediction").first

                # Start from an empty pad (the notebook drew a 7 from code), then draw a 1 by mouse.
                page.locator(".jupyter-widgets button", has_text="Clear").first.click()
                sync_api.expect(label).to_contain_text("No digit", timeout=PREDICT_S * 1000)
                box = canvas.bounding_box()
                x = box["x"] + box["width"] * 0.5
                page.mouse.move(x, box["y"] + box["height"] * 0.18)
                page.mouse.down()
                page.mouse.move(x + 3, box["y"] + box["height"] * 0.5, steps=15)
                page.mouse.move(x + 6, box["y"] + box["height"] * 0.82, steps=15)
                page.mouse.up()
                # Live guesses come first (a short stroke looks like a blob); the last one, on mouse up,
                # sees the whole stroke.
                sync_api.expect(label).to_contain_text(re.compile(r"Prediction: \d"), timeout=PREDICT_S * 1000)
                try:
                    sync_api.expect(label).to_contain_text(re.compile(r"Prediction: 1\b"), timeout=PREDICT_S * 1000)
                except AssertionError:
                    raise AssertionError(f"drew a 1, the pad says {label.inner_text()!r}") from None
            except Exception:
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}\nJupyterLab log (end):\n{log.read_text()[-3000:]}")
                raise
        finally:
            browser.close()
