"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, Debian's Chromium driven by
Playwright opens notebook 12, runs every cell, draws a digit on the pad with the mouse and waits
for the predicted label. A notebook with nothing but a pad counts the pad's widget messages per
stroke and while hovering (the figures behind its throttle) and draws again after a reload.

The notebook runs in fast mode on a temporary copy (JupyterLab's autosave never touches
notebooks/), with figures and results in a temporary folder. Models come from
$MNIST_COURSE_MODELS when set (CI: the ones the notebook run trained), else a temporary folder.
Needs /usr/bin/chromium (or $MNIST_COURSE_CHROMIUM); `.ci/run` installs it. Playwright's own
browser download is never used. Every wait is bounded; JupyterLab and its kernels are shut down
whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import mnist_course as mc
from mnist_course.bench import load

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
NOTEBOOK = "12_draw_a_digit.ipynb"
SERVER_START_S = 90      # JupyterLab must answer within this
RUN_ALL_S = 420          # the whole notebook in fast mode (quick models trained if missing)
PREDICT_S = 60           # from releasing the mouse to the label
INK_SETTLES_S = 20       # until the kernel has drawn every stroke it was sent
CANVAS = "canvas.mnist-course-canvas"   # the pad's ipycanvas view: the canvas element itself



def says(digit: str) -> str:
    """The pad's label naming `digit` as its answer: "CNN: 7 (98.1 %)", or "CNN: not sure: 7 or 1?" --
    CI runs with the fast-mode models, which are often unsure (below drawing.NOT_SURE_BELOW)."""
    return rf"CNN: ({digit} \(|not sure: {digit} or )"


def api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


@contextlib.contextmanager
def serve_lab(tmp_path, notebooks):
    """(base url, token, log path) of a JupyterLab serving temporary copies of `notebooks`
    ({name: path or nbformat notebook})."""
    root = tmp_path / "lab"
    root.mkdir()
    for name, nb in notebooks.items():
        if isinstance(nb, Path):
            shutil.copy(nb, root / name)
        else:
            (root / name).write_text(json.dumps(nb))
    port, token = load.free_port(), os.urandom(16).hex()
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


@pytest.fixture()
def jupyterlab(tmp_path):
    """(base url, token, log path) of a JupyterLab serving a temporary copy of notebook 12."""
    with serve_lab(tmp_path, {NOTEBOOK: mc.repo_root() / "notebooks" / NOTEBOOK}) as lab:
        yield lab


def kernel_message(payload) -> tuple[str, dict]:
    """(msg_type, content) of a kernel websocket frame: JSON text, or JupyterLab's binary
    v1.kernel.websocket.jupyter.org frame (offsets, then channel, header, parent header,
    metadata, content, buffers)."""
    try:
        if isinstance(payload, str):
            msg = json.loads(payload)
            return msg["header"]["msg_type"], msg.get("content") or {}
        n = int.from_bytes(payload[:8], "little")
        offsets = [int.from_bytes(payload[8 * i:8 * i + 8], "little") for i in range(1, n + 1)]
        part = [payload[a:b] for a, b in zip(offsets, offsets[1:])]
        return json.loads(part[1])["msg_type"], json.loads(part[4])
    except (ValueError, KeyError, IndexError, TypeError):
        return "unreadable", {}


def kernel_eval(tmp_path, expression: str):
    """The value of a Python expression (a literal: a number, a dict...) in the one kernel of the
    JupyterLab serving from tmp_path, asked through a second client of that kernel."""
    import ast

    from jupyter_client import BlockingKernelClient

    (connection,) = (tmp_path / "jupyter" / "runtime").glob("kernel-*.json")
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    out: list[dict] = []
    try:
        reply = client.execute_interactive(f"print(repr(({expression})))", timeout=30, store_history=False,
                                           output_hook=lambda msg: out.append(msg))
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
        return ast.literal_eval(text.strip())
    finally:
        client.stop_channels()


def code_prompts(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
                                   .map(e => e.textContent.trim())""")


class Browser:
    """Chromium on notebook 12 in the JupyterLab of the `jupyterlab` fixture: open, run, draw, read."""

    def __init__(self, sync_api, page, base, token):
        self.sync_api, self.page, self.base, self.token = sync_api, page, base, token
        self.sent: list[tuple[str, dict]] = []      # (msg_type, content) the page sent to the kernel
        self.received: list[tuple[str, dict]] = []  # and the kernel sent to the page,
        self.received_at: list[float] = []           # at these times (time.monotonic)
        page.on("websocket", self._watch)

    def _watch(self, ws):
        if "/api/kernels/" in ws.url:
            ws.on("framesent", lambda payload: self.sent.append(kernel_message(payload)))
            ws.on("framereceived", lambda payload: (self.received.append(kernel_message(payload)),
                                                    self.received_at.append(time.monotonic())))

    def traffic(self, sent_from: int = 0, received_from: int = 0) -> dict[str, int]:
        """Widget messages since the given message counts: to the kernel by ipycanvas event
        ("mouse_move", ...), from the kernel as "draw" (canvas command batches), "update"
        (widget state: the label, the chart, the model's input, the timing) and "guess" (the
        kernel's guesses, counted by the timing line)."""
        counts: dict[str, int] = {}
        for t, content in self.sent[sent_from:]:
            if t == "comm_msg":
                key = str((content.get("data", {}).get("content") or {}).get("event", "other"))
                counts[key] = counts.get(key, 0) + 1
        for t, content in self.received[received_from:]:
            if t == "comm_msg":
                data = content.get("data", {})
                key = "update" if data.get("method") == "update" else "draw"
                counts[key] = counts.get(key, 0) + 1
                if " guesses; model time" in str(data.get("state", {}).get("value", "")):
                    counts["guess"] = counts.get("guess", 0) + 1     # the pad's timing line counts its guesses
        return counts

    def open(self, notebook: str = NOTEBOOK) -> None:
        page = self.page
        page.goto(f"{self.base}/lab/tree/{notebook}?token={self.token}")
        page.locator(".jp-Notebook").first.wait_for(state="visible")
        # The kernel is up when the status bar says so.
        page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for()

    def run_all(self) -> None:
        page = self.page
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
            assert errors.count() == 0, f"a cell failed:\n{errors.first.text_content()[-2000:]}"
            assert time.monotonic() < deadline, f"notebook still running after {RUN_ALL_S} s: {prompts}"
            time.sleep(1)

    @property
    def canvas(self):
        canvas = self.page.locator(CANVAS).first
        canvas.scroll_into_view_if_needed()
        canvas.wait_for(state="visible")
        return canvas

    @property
    def label(self):
        return self.page.locator(".mnist-course-prediction").first

    def expect_label(self, pattern: str) -> None:
        try:
            self.sync_api.expect(self.label).to_contain_text(re.compile(pattern), timeout=PREDICT_S * 1000)
        except AssertionError:
            raise AssertionError(f"expected the pad to say {pattern!r}, it says {self.label.inner_text()!r}") from None

    def ink(self) -> float:
        """Fraction of the first pad canvas's pixels that show ink (read from the canvas itself),
        once the kernel has drawn all it was sent: the ink comes from the kernel, and a live guess
        (say "1" for half a 1) can come before the last moves are drawn."""
        last, deadline = None, time.monotonic() + INK_SETTLES_S
        while True:
            ink = self._ink()
            if ink == last or time.monotonic() > deadline:
                return ink
            last = ink
            self.page.wait_for_timeout(300)

    def _ink(self) -> float:
        return self.page.evaluate("""(selector) => {
            const c = document.querySelector(selector);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 128) ink++;
            return ink / (c.width * c.height);
        }""", CANVAS)

    def ink_box(self) -> list[float]:
        """[left, top, right, bottom] of the ink on the pad's canvas, as fractions of its frame."""
        self.ink()
        return self.page.evaluate("""(selector) => {
            const c = document.querySelector(selector);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let x0 = c.width, y0 = c.height, x1 = -1, y1 = -1;
            for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
                if (d[4 * (y * c.width + x)] > 128) {
                    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
                }
            }
            return [x0 / c.width, y0 / c.height, (x1 + 1) / c.width, (y1 + 1) / c.height];
        }""", CANVAS)

    def clear(self) -> None:
        self.page.locator(".jupyter-widgets button", has_text="Clear").first.click()
        self.expect_label(r"no digit")
        assert self.ink() == 0, "Clear left ink on the canvas"

    def stroke(self, *points, steps=12, every_ms: float = 0, press: bool = True) -> None:
        """One stroke through points given as fractions (x, y) of the canvas's box as shown, with
        `steps` mouse moves per segment, `every_ms` apart (16.7: the 60 a second a screen gives),
        or as fast as they go (0). press=False: the same moves with no button pressed (hovering)."""
        box = self.canvas.bounding_box()
        at = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in points]
        mouse = self.page.mouse
        mouse.move(*at[0])
        if press:
            mouse.down()
        for (x0, y0), (x1, y1) in zip(at, at[1:]):
            if not every_ms:
                mouse.move(x1, y1, steps=steps)
                continue
            for i in range(1, steps + 1):
                mouse.move(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
                self.page.wait_for_timeout(every_ms)
        if press:
            mouse.up()

    def draw_one(self) -> None:
        self.stroke((0.5, 0.18), (0.51, 0.5), (0.52, 0.82))


def browser_session(jupyterlab, tmp_path, viewport):
    """A context manager giving a Browser on the fixture's JupyterLab (a screenshot and the log's
    end are printed when the test fails)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (as .ci/run does) "
                    "or set MNIST_COURSE_CHROMIUM to a Chromium binary")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    base, token, log = jupyterlab

    @contextlib.contextmanager
    def session():
        shot = tmp_path / "failure.png"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(60_000)
                page.on("dialog", lambda dialog: dialog.accept())   # "leave the page?" on reload
                try:
                    yield Browser(sync_api, page, base, token)
                except Exception:
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot: {shot}\nJupyterLab log (end):\n{log.read_text()[-3000:]}")
                    raise
            finally:
                browser.close()
    return session()


def test_draw_a_digit_in_jupyterlab(jupyterlab, tmp_path):
    """Draw a 1 with the mouse; hovering changes nothing; a 7 whose stroke leaves the canvas and
    comes back with the button held is drawn as one stroke."""
    with browser_session(jupyterlab, tmp_path, {"width": 1400, "height": 1000}) as b:
        b.open()
        b.run_all()
        # Start from an empty pad (the notebook drew a 7 from code), then draw a 1 by mouse.
        b.clear()
        b.draw_one()
        # Live guesses may come first (a short stroke is no digit yet); the last one, on mouse up,
        # sees the whole stroke.
        b.expect_label(r"CNN: (1 \(\d+\.\d %\)|not sure: 1 or \d\?)")
        assert b.ink() > 0.01

        # Hovering (no button pressed): ipycanvas sends the kernel each move, the kernel answers none.
        box = b.canvas.bounding_box()
        sent, received, ink = len(b.sent), len(b.received), b.ink()
        for i in range(30):
            b.page.mouse.move(box["x"] + box["width"] * (0.1 + 0.025 * i), box["y"] + box["height"] * 0.3)
        b.page.wait_for_timeout(500)
        hover = b.traffic(sent, received)
        assert "draw" not in hover and "update" not in hover, f"hovering changed the pad: {hover}"
        assert b.ink() == ink
        b.expect_label(says("1"))

        # A 7 in one stroke that leaves the canvas on the right and comes back in, button held.
        b.clear()
        b.stroke((0.15, 0.15), (0.85, 0.15), (1.3, 0.15), (0.85, 0.15), (0.4, 0.9))
        b.expect_label(says("7"))


def test_the_pad_survives_a_reload_a_reopen_and_a_rerun(jupyterlab, tmp_path):
    """While the kernel runs: reload the page, then close and reopen the notebook: each time the pad
    comes back with its strokes, drawable, and predicts a new digit; re-running its cell gives a new,
    empty pad that works. The kernel is never restarted."""
    base, token, _ = jupyterlab
    with browser_session(jupyterlab, tmp_path, {"width": 1400, "height": 1000}) as b:
        page = b.page

        def menu(top, item):
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()

        def comes_back(label, ink):
            page.locator(".jp-Notebook").first.wait_for(state="visible")
            page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for()
            b.expect_label(label)
            page.wait_for_function("(selector) => { const c = document.querySelector(selector); return c && c.width > 0; }",
                                   arg=CANVAS)
            assert b.ink() == pytest.approx(ink, rel=0.05), "the pad does not show its strokes again"

        b.open()
        b.run_all()
        kernels = [k["id"] for k in api(base, token, "/api/kernels")]
        b.clear()
        b.draw_one()
        b.expect_label(says("1"))
        ink = b.ink()
        menu("File", "Save Notebook")    # as autosave would: the page reopens the saved notebook
        page.locator(".jp-mod-dirty").first.wait_for(state="detached")

        page.reload()                    # 1. reload the page
        comes_back(says("1"), ink)
        b.clear()
        b.stroke((0.15, 0.15), (0.85, 0.15), (0.4, 0.9))
        b.expect_label(says("7"))
        ink = b.ink()

        menu("File", "Close Tab")        # 2. close the notebook and open it again
        page.locator(".jp-Notebook").first.wait_for(state="detached")
        page.locator(".jp-DirListing-item", has_text=NOTEBOOK).first.dblclick()
        comes_back(says("7"), ink)
        b.clear()
        b.draw_one()
        b.expect_label(says("1"))

        cell = page.locator(".jp-CodeCell", has_text="pad = DrawingPad(").first   # 3. re-run the pad's cell
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        b.expect_label(r"Draw a digit")
        assert b.ink() == 0
        b.draw_one()
        b.expect_label(says("1"))
        assert [k["id"] for k in api(base, token, "/api/kernels")] == kernels, "the kernel was restarted"


def test_the_pad_stays_square_in_a_narrow_window(jupyterlab, tmp_path):
    """At 1024, 700 and 420 px wide windows the canvas is shown square (smaller where it must
    be), and what is drawn in the narrowest is mapped to the 280x280 frame and recognised."""
    with browser_session(jupyterlab, tmp_path, {"width": 1024, "height": 900}) as b:
        b.open()
        b.run_all()
        for width in (1024, 700, 420):
            b.page.set_viewport_size({"width": width, "height": 900})
            b.page.wait_for_timeout(500)
            box = b.canvas.bounding_box()
            print(f"window {width} px wide: canvas shown {box['width']:.1f} x {box['height']:.1f} px")
            assert box["width"] / box["height"] == pytest.approx(1.0, abs=0.02), f"window {width} px: canvas {box}"
        assert box["width"] < 270, f"the canvas was not shown smaller in a {width} px window: {box}"
        b.clear()
        b.stroke((0.15, 0.15), (0.85, 0.15), (0.4, 0.9))
        b.expect_label(says("7"))
        r = 1 / 32                      # the brush's radius, as a fraction of the frame
        assert b.ink_box() == pytest.approx([0.15 - r, 0.15 - r, 0.85 + r, 0.9 + r], abs=0.05), \
            "the stroke is not where it was drawn: screen pixels not mapped to the frame"


PAD_ONLY = "pad.ipynb"
PAD_MODULE = "mnist_course.pad"


def pad_only_notebook(throttle: float = 0.1):
    """A notebook with nothing but a pad, on a fixed random linear model: its answers mean
    nothing, its messages are the pad's."""
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\n"
        f"from {PAD_MODULE} import DrawingPad\n\n"
        "torch.manual_seed(0)\n"
        "pad = DrawingPad({'CNN': torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))}, "
        f"throttle={throttle})\n"
        "pad")], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_messages_per_stroke_and_a_reload(tmp_path):
    """Counts the pad's widget messages for 60 moves of hovering and a stroke of 60 moves, 60 a
    second at most (printed: the figures behind the pad's throttle), then reloads the page: the
    strokes come back, and a stroke drawn after the reload is drawn and guessed."""
    with serve_lab(tmp_path, {PAD_ONLY: pad_only_notebook(throttle=0.1)}) as lab, \
            browser_session(lab, tmp_path, {"width": 1200, "height": 900}) as b:
        b.open(PAD_ONLY)
        b.run_all()
        b.expect_label(r"Draw a digit")
        b.page.wait_for_timeout(1000)

        def measure(what, **stroke):
            n_sent, n_received = len(b.sent), len(b.received)
            t = time.monotonic()
            b.stroke(*stroke.pop("points"), **stroke)
            seconds = time.monotonic() - t
            b.page.wait_for_timeout(1500)      # every answer in
            counts = b.traffic(n_sent, n_received)
            print(f"{what} ({seconds:.2f} s): {counts}")
            return counts, seconds

        hover, _ = measure("hovering, 60 moves", points=[(0.1, 0.5), (0.9, 0.5)], steps=60, every_ms=16.7, press=False)
        assert hover.get("mouse_move", 0) >= 50, hover       # ipycanvas sends every move...
        assert "draw" not in hover and "update" not in hover, f"hovering changed the pad: {hover}"   # ...none answered
        assert b.ink() == 0

        one, seconds = measure("a stroke of 60 moves", points=[(0.5, 0.15), (0.5, 0.85)], steps=60, every_ms=16.7)
        assert one.get("mouse_down") == 1 and one.get("mouse_up") == 1 and one.get("mouse_move", 0) >= 50, one
        assert one.get("draw", 0) >= 50, f"the ink is not drawn as the mouse moves: {one}"
        assert 1 <= one.get("guess", 0) <= seconds / 0.1 + 2, f"guesses not throttled to 0.1 s: {one}"
        kernel = kernel_eval(tmp_path, "(pad.predictions, dict(pad.events))")
        print(f"the kernel: {kernel[0]} guesses, events {kernel[1]}")
        assert kernel[1].get("hover", 0) >= 50 and kernel[0] == one["guess"]
        ink = b.ink()
        assert ink > 0.01

        b.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$")).click()   # as autosave would
        b.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save Notebook$")).click()
        b.page.locator(".jp-mod-dirty").first.wait_for(state="detached")
        b.page.reload()                  # the page's widgets come back from the kernel, empty canvas first
        b.page.locator(".jp-Notebook").first.wait_for(state="visible")
        b.page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for()
        b.page.wait_for_function("(selector) => { const c = document.querySelector(selector); return c && c.width > 0; }",
                                 arg=CANVAS)
        b.page.wait_for_timeout(1000)
        assert b.ink() == pytest.approx(ink, rel=0.05), "the reloaded page does not show the strokes"
        again, _ = measure("after the reload, a second stroke", points=[(0.2, 0.3), (0.8, 0.3)], steps=30)
        assert again.get("draw", 0) >= 10 and again.get("guess", 0) >= 1, f"the pad stopped answering: {again}"
        assert b.ink() > ink * 1.3
        assert kernel_eval(tmp_path, "len(pad.strokes), pad.events['client_ready']") == (2, 2)
