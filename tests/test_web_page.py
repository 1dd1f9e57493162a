"""The service's drawing page in a real browser: a real `mnist-course serve` (uvicorn on
127.0.0.1, the course CNN) and Debian's Chromium driven by Playwright. Digits are drawn with the mouse;
the server's answer (POST /predict) and the in-browser answer (onnxruntime-web running the exported
ONNX model) must both be right and equal, for the same drawing. Also checked: the in-browser JS
preprocessing gives the same 28x28 model input as mnist_course.drawing, strokes land where the mouse
went at any window width, the in-browser mode sends no request per stroke, nothing is asked of any host
but 127.0.0.1, and the page logs no error. A screenshot goes to build/web-shots/page.png.

Also: before the first stroke no broken picture shows, and without onnxruntime-web the page says so
(with the fix, `make web-deps`) and answers from the server.

Needs /usr/bin/chromium (or $MNIST_COURSE_CHROMIUM), and onnxruntime-web from `make web-deps` for the
tests of the in-browser engine; in CI ($CI=true) their absence is a failure, elsewhere a skip saying what
to install. Playwright's own browser download is never used. Every wait is bounded; the server is stopped
whatever happens.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

import mnist_course as mc
from mnist_course import drawing
from mnist_course.bench import load

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("MNIST_COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVER_START_S = 300     # load the model, export it to ONNX and verify it on the test set
ANSWER_S = 120           # from releasing the mouse to the answer (the first in-browser one compiles 14 MB of wasm)
SHOTS = mc.repo_root() / "build" / "web-shots"


def _ellipse(cx, cy, rx, ry, n=28):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Digits as mouse strokes, in fractions of the canvas (x right, y down).
DIGITS = {
    "1": [[(0.50, 0.15), (0.52, 0.85)]],
    "7": [[(0.25, 0.20), (0.75, 0.20), (0.42, 0.85)]],
    "0": [_ellipse(0.5, 0.5, 0.22, 0.33)],
    "4": [[(0.40, 0.15), (0.25, 0.58), (0.75, 0.58)], [(0.62, 0.25), (0.62, 0.88)]],
    "2": [[(0.28, 0.32), (0.36, 0.20), (0.52, 0.16), (0.66, 0.22), (0.70, 0.36), (0.62, 0.50),
           (0.28, 0.82), (0.75, 0.82)]],
}
# Not digits: both engines must say "no digit", for the same reason.
NOT_DIGITS = {
    "a tap": [[(0.5, 0.5), (0.5, 0.5)]],
    "a dash": [[(0.25, 0.50), (0.75, 0.52)]],
}


def missing(what: str) -> None:
    """Fail in CI, skip elsewhere, saying what to install."""
    (pytest.fail if IN_CI else pytest.skip)(what)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URL of a real service (course CNN; its ONNX export written at startup into a temporary models folder)."""
    # The course CNN of this mode (fast or full), copied: the export goes to the copy's folder, never to models/.
    source = mc.models_dir()
    models = tmp_path_factory.mktemp("models")
    env = dict(os.environ, MNIST_COURSE_MODELS=str(models), MNIST_COURSE_PROGRESS="0", OMP_NUM_THREADS="1")
    target = models / "fast" if mc.settings.fast_mode() else models
    target.mkdir(parents=True, exist_ok=True)
    for name in ("course_cnn.safetensors", "course_cnn.json"):
        if (source / name).is_file():
            shutil.copy(source / name, target / name)
    with load.running_server(["--model", "cnn", "--models", "cnn"], env=env, startup_timeout=SERVER_START_S) as url:
        yield url


@pytest.fixture()
def ort():
    """onnxruntime-web from `make web-deps`, for the tests of the in-browser engine."""
    from mnist_course.serving import service as serve

    if not (serve.vendor_dir() / serve.ORT_ENTRY).is_file():
        missing(f"onnxruntime-web is not installed in {serve.vendor_dir()}: run make web-deps")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (as .ci/run does) "
                "or set MNIST_COURSE_CHROMIUM to a Chromium binary")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Page:
    """The drawing page in a fresh browser context, recording console errors, requests and foreign hosts."""

    def __init__(self, browser, url: str, width: int = 1200, height: int = 900, touch: bool = False,
                 routes: dict | None = None):
        self.context = browser.new_context(viewport={"width": width, "height": height}, has_touch=touch,
                                           is_mobile=touch)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.requests: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(ANSWER_S * 1000)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {urlparse(r.url).path}"))
        for pattern, handler in (routes or {}).items():     # the page's own routes come before the context's
            self.page.route(pattern, handler)
        self.page.goto(url)
        self.page.locator("body[data-ready='true']").wait_for()

    def _route(self, route):
        host = urlparse(route.request.url).hostname
        if host != "127.0.0.1":
            self.foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def draw(self, strokes, touch: bool = False) -> None:
        """Draw strokes (fractions of the canvas) with the mouse, or a finger (touch events through
        the DevTools protocol; needs Page(touch=True)), from a clear pad."""
        self.page.locator("#clear").tap() if touch else self.page.click("#clear")
        box = self.page.locator("#pad").bounding_box()
        cdp = self.context.new_cdp_session(self.page) if touch else None
        for stroke in strokes:
            points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
            if touch:
                for i, (x, y) in enumerate(points):
                    steps = [(x, y)] if i == 0 else [(px + (x - px) * k / 8, py + (y - py) * k / 8)
                                                     for k in range(1, 9) for px, py in [points[i - 1]]]
                    for tx, ty in steps:
                        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart" if i == 0 else "touchMove",
                                                              "touchPoints": [{"x": tx, "y": ty}]})
                cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
                continue
            self.page.mouse.move(*points[0])
            self.page.mouse.down()
            for x, y in points[1:]:
                self.page.mouse.move(x, y, steps=8)
            self.page.mouse.up()

    def ink(self, x0: int = 0, y0: int = 0, x1: int = 280, y1: int = 280) -> int:
        """Pixels of ink on the canvas within [x0, x1) x [y0, y1) (canvas pixels)."""
        return self.page.evaluate("""([x0, y0, x1, y1]) => {
            const d = document.getElementById('pad').getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] > 127) n++;
            return n; }""", [x0, y0, x1, y1])

    def engine(self, name: str) -> None:
        self.page.check(f"input[name='engine'][value='{name}']")

    def answer(self, engine: str) -> dict:
        """Wait for `engine`'s answer to the current drawing; {digit, status, answer, meta, seconds}."""
        start = time.perf_counter()
        try:   # done when the result is this engine's answer to the drawing as it is, or an error shows
            self.page.wait_for_function(
                """engine => { const r = document.getElementById('result');
                               return !document.getElementById('error').hidden || (r.dataset.engine === engine
                                      && r.dataset.version === document.getElementById('pad').dataset.version); }""",
                arg=engine, timeout=ANSWER_S * 1000)
        except Exception as e:
            state = self.page.evaluate("() => [{...document.getElementById('result').dataset}, "
                                       "document.getElementById('pad').dataset.version]")
            raise AssertionError(f"no {engine} answer within {ANSWER_S} s; result {state[0]}, "
                                 f"drawing version {state[1]}, console errors {self.errors}") from e
        seconds = time.perf_counter() - start
        out = self.page.evaluate("""() => { const r = document.getElementById('result');
            return {digit: r.dataset.digit, status: r.dataset.status, reason: r.dataset.reason,
                    probabilities: JSON.parse(r.dataset.probabilities),
                    answer: document.getElementById('answer').textContent,
                    meta: document.getElementById('meta').textContent,
                    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent}; }""")
        assert not out["error"], f"the page shows an error: {out['error']}"
        return {**out, "seconds": seconds}

    def both_answers(self, strokes) -> tuple[dict, dict]:
        """Draw `strokes` with the server engine, then switch to the browser engine (the drawing stays):
        (the server's answer, the browser's answer) to the same drawing."""
        self.engine("server")
        self.draw(strokes)
        srv = self.answer("server")
        self.engine("browser")
        return srv, self.answer("browser")

    def close(self) -> None:
        self.context.close()


def page_judge(server, browser, probs) -> list[list]:
    page = Page(browser, server)
    try:
        return page.page.evaluate("""async ([probs, classes]) => {
            const p = await import('/static/preprocess.js');
            return probs.map(q => { const r = p.judge(q, classes); return [r.status, r.reason]; }); }""",
                                  [probs.tolist(), list(drawing.CLASSES)])
    finally:
        page.close()


def test_page_preprocessing_equals_the_library(server, browser):
    """The page's JS port of the preprocessing (static/preprocess.js) gives drawing.preprocess's 28x28
    input, (x - mean) / std and "no digit" reasons for the canvas's RGBA pixels, as the server reads the
    canvas's PNG: MNIST test digits redrawn on a 280x280 canvas (light on dark and dark on light),
    strokes (thick, thin, in two pieces, dark on light), specks far and near, salt, a tap, a dash, blank
    and filled."""
    data = mc.load_mnist("mnist")
    rng = np.random.default_rng(0)
    cases = []
    for i in range(12):
        canvas = drawing.draw_digit_on_canvas(data.X_test[i].numpy(), rng)
        cases.append(255 - canvas if i % 3 == 2 else canvas)   # some dark ink on a light background
    four = [[(112, 42), (70, 162), (210, 162)], [(174, 70), (174, 246)]]
    cases += [drawing.rasterize(s) for s in ([[(140, 40), (142, 240)]],                   # a 1
                                              [[(140, 40), (142, 240)], [(30, 30)]],       # a 1, a speck far off
                                              [[(140, 40), (142, 240)], [(175, 60)]],      # ... and close by
                                              [[(140, 40), (142, 240)], [(60, 60), (70, 70)]],
                                              four,                                        # two strokes
                                              [[(140, 140)]],                              # a tap
                                              [[(60, 140), (220, 150)]])]                  # a dash
    cases += [255 - drawing.rasterize(four), drawing.rasterize([[(140, 40), (142, 240)]], brush=6),
              drawing.rasterize([[(x, y)] for x, y in rng.integers(0, 280, (30, 2))], brush=3),   # salt
              drawing.rasterize([[(60, y), (220, y)] for y in (130, 150, 170)]),                   # thick and flat
              drawing.rasterize([[(140, 140)]], brush=8),                                           # a small speck
              drawing.rasterize([[(140, 132), (140, 146)]], brush=3)]                               # a tiny line
    cases += [np.zeros((280, 280), np.uint8), np.full((280, 280), 255, np.uint8)]
    page = Page(browser, server)
    try:
        got = page.page.evaluate("""async ([cases, mean, std]) => {
            const p = await import('/static/preprocess.js');
            return cases.map(c => {
                const rgba = new Uint8ClampedArray(4 * 280 * 280);
                c.flat().forEach((v, i) => rgba.set([v, v, v, 255], 4 * i));
                const g = p.canvasToGray(rgba, 280, 280);
                const r = p.preprocess(g.gray, g.width, g.height);
                return {input: r.image ? Array.from(p.toModelInput(r.image, mean, std)) : null, reason: r.reason};
            });
        }""", [[c.tolist() for c in cases], data.mean, data.std])
        assert not page.errors, page.errors
    finally:
        page.close()
    probs = rng.dirichlet(np.full(10, 0.3), size=200)                 # confident and hesitant answers
    assert page_judge(server, browser, probs) == [list(drawing.judge(p)) for p in probs], \
        "the page's not-sure rule (preprocess.js judge, NOT_SURE_BELOW) differs from drawing.judge"
    for i, (canvas, js) in enumerate(zip(cases, got)):
        pre = drawing.preprocess(Image.fromarray(np.dstack([canvas] * 3 + [np.full_like(canvas, 255)]), "RGBA"))
        assert js["reason"] == pre.reason, f"case {i}: the page says {js['reason']!r}, the library {pre.reason!r}"
        if pre.blank:
            assert js["input"] is None, f"case {i}: the library says no digit, the page gave an input"
            continue
        want = drawing.to_model_input(pre.image, data.mean, data.std).numpy().ravel()
        diff = float(np.abs(np.asarray(js["input"], np.float32) - want).max())
        assert diff < 1e-4, f"case {i}: the page's model input differs from the library's by up to {diff:.3g}"


def test_strokes_land_under_the_mouse_at_any_width(server, browser):
    """A dot drawn at a quarter of the canvas lands at a quarter of the 280x280 frame, on a wide and a
    narrow (phone-sized) window; the canvas stays square."""
    for width, height in ((1200, 900), (360, 740)):
        page = Page(browser, server, width, height)
        try:
            box = page.page.locator("#pad").bounding_box()
            assert abs(box["width"] - box["height"]) <= 1, f"{width}px window: the canvas is {box['width']}x{box['height']}"
            page.draw([[(0.25, 0.30), (0.25, 0.30)]])
            ink = page.page.evaluate("""() => { const c = document.getElementById('pad');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0, sx = 0, sy = 0;
                for (let i = 0; i < c.width * c.height; i++) if (d[4 * i] > 127) { n++; sx += i % c.width; sy += Math.floor(i / c.width); }
                return [n, sx / n, sy / n]; }""")
            n, x, y = ink
            assert n > 50, f"{width}px window: the dot left {n} pixels of ink"
            assert abs(x - 70) < 4 and abs(y - 84) < 4, \
                f"{width}px window: a dot drawn at (70, 84) of the 280x280 frame landed at ({x:.0f}, {y:.0f})"
            assert not page.errors, page.errors
        finally:
            page.close()


def test_touch_and_strokes_leaving_the_canvas(server, browser):
    """A finger draws on a phone-sized page (touch events become pointer events, no scrolling); a mouse
    stroke that leaves the canvas goes on outside (pointer capture) and ends where the button is
    released, even outside: moving back over the canvas without a button draws nothing."""
    page = Page(browser, server, 360, 740, touch=True)
    try:
        page.draw(DIGITS["7"], touch=True)
        srv = page.answer("server")
        assert srv["digit"] == "7", f"drew a 7 with a finger, the server says {srv['answer']!r}"
        assert not page.errors, page.errors
    finally:
        page.close()
    page = Page(browser, server)
    try:
        page.draw([[(0.2, 0.5), (1.5, 0.5), (1.5, 0.9)]])         # out of the canvas, released outside
        page.answer("server")
        box = page.page.locator("#pad").bounding_box()
        assert page.ink(262, 130, 280, 150) > 50, "the stroke did not go on to the canvas's edge"
        before = page.ink()
        page.page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.05 * box["height"])
        page.page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.3 * box["height"], steps=10)
        assert page.ink() == before, "moving the mouse over the canvas without a button drew (the stroke never ended)"
        assert not page.errors, page.errors
    finally:
        page.close()


# Visible pictures that did not load (a broken-image icon): ids of the <img> elements shown with no picture.
BROKEN_IMAGES = """() => [...document.images].filter((img) => {
    const style = getComputedStyle(img), box = img.getBoundingClientRect();
    return style.visibility !== 'hidden' && style.display !== 'none' && box.width > 0 && box.height > 0
           && !(img.complete && img.naturalWidth > 0); }).map((img) => img.id || img.alt)"""


def test_no_broken_image_before_the_first_stroke(server, browser):
    """The model-input picture shows only once there is one: not before the first stroke, nor after a
    "no digit" answer or Clear, and it is the 28x28 input (shown 4 times larger) after a digit."""
    page = Page(browser, server)
    try:
        assert page.page.evaluate(BROKEN_IMAGES) == [], \
            f"before any stroke the page shows broken pictures: {page.page.evaluate(BROKEN_IMAGES)}"
        page.draw(DIGITS["7"])
        assert page.answer("server")["status"] != "no digit"
        assert page.page.locator("#input").is_visible(), "the model input is not shown after a digit"
        page.page.wait_for_function("() => { const i = document.getElementById('input'); "
                                    "return i.complete && i.naturalWidth === 112; }", timeout=10_000)
        assert page.page.evaluate(BROKEN_IMAGES) == []
        page.draw(NOT_DIGITS["a tap"])
        assert page.answer("server")["status"] == "no digit"
        assert page.page.evaluate(BROKEN_IMAGES) == [], "after a 'no digit' answer the page shows a broken picture"
        page.page.click("#clear")
        assert page.page.evaluate(BROKEN_IMAGES) == [], "after Clear the page shows a broken picture"
        assert not page.errors, page.errors
    finally:
        page.close()


def test_page_without_onnxruntime_web(server, browser):
    """Without `make web-deps` (the service's /models says the in-browser engine is unavailable, and
    /vendor/ answers 404, as tests/test_serve.py checks): the page says so in a visible line with the fix,
    offers only the server, answers from it, and asks nothing of /vendor/."""
    detail = ("the in-browser engine is not installed (onnxruntime-web: build/web-deps/... is missing); "
              "on the server, run `make web-deps` (npm), then reload the page. The answers come from the server meanwhile.")

    def models(route):
        body = route.fetch().json()
        body["browser_engine"] = {"available": False, "detail": detail}
        route.fulfill(json=body)

    def vendor(route):
        route.fulfill(status=404, json={"detail": detail})

    page = Page(browser, server, routes={"**/models": models, "**/vendor/**": vendor})
    try:
        note = page.page.locator("#engine-note")
        assert note.is_visible(), "the page does not say that the in-browser engine is unavailable"
        assert "make web-deps" in note.inner_text(), f"the note does not say how to get it: {note.inner_text()!r}"
        assert page.page.locator("input[name='engine'][value='browser']").is_disabled()
        page.draw(DIGITS["7"])
        srv = page.answer("server")
        assert srv["digit"] == "7", f"drew a 7, the server says {srv['answer']!r}"
        assert not [r for r in page.requests if "/vendor/" in r], f"asked for onnxruntime-web: {page.requests}"
        assert not page.errors, page.errors
    finally:
        page.close()


def test_draw_digits_server_and_browser_agree(server, browser, ort):
    page = Page(browser, server)
    report = []
    try:
        # 1. Server mode: draw each digit, read the server's answer, then the in-browser answer for the
        #    same drawing (switching engines does not change the drawing).
        for digit, strokes in DIGITS.items():
            report.append((digit, *page.both_answers(strokes)))
        for digit, srv, web in report:
            print(f"drew {digit}: server {srv['answer']!r} ({srv['seconds']:.2f} s to the answer; {srv['meta']}), "
                  f"browser {web['answer']!r} ({web['seconds']:.2f} s; {web['meta']})")
        wrong = [(d, s["answer"], w["answer"]) for d, s, w in report
                 if not (s["digit"] == w["digit"] == d and s["status"] == w["status"] == "digit")]
        assert not wrong, f"(drawn, server, browser) where an answer is wrong or they disagree: {wrong}"
        # Same model input, same weights (ONNX's logits match PyTorch's to 1e-4): the same probabilities,
        # compared as log-probabilities so that a confident answer's tiny ones count too.
        def log(p):
            return np.log(np.maximum(np.asarray(p, np.float64), 1e-30))

        gaps = {d: float(np.abs(log(s["probabilities"]) - log(w["probabilities"])).max()) for d, s, w in report}
        print("largest gap between the server's and the browser's log-probabilities, per digit:", gaps)
        assert max(gaps.values()) < 1e-3, f"the browser's log-probabilities differ from the server's: {gaps}"
        assert all("on the server" in s["meta"] and "in the browser" in w["meta"] for _, s, w in report), \
            "the page does not say which engine answered"
        for what, strokes in NOT_DIGITS.items():
            srv, web = page.both_answers(strokes)
            print(f"drew {what}: server {srv['answer']!r} {srv['reason']!r}, browser {web['answer']!r} {web['reason']!r}")
            assert srv["status"] == web["status"] == "no digit" and srv["reason"] == web["reason"], \
                f"drew {what}: the server says {srv['answer']!r} ({srv['reason']}), the browser {web['answer']!r} ({web['reason']})"

        # 2. In-browser mode while drawing: right answers, and no request to the service at all.
        page.engine("browser")
        before = len(page.requests)
        for digit, strokes in DIGITS.items():
            page.draw(strokes)
            web = page.answer("browser")
            assert web["digit"] == digit, f"in-browser mode: drew {digit}, the page says {web['answer']!r}"
        during = page.requests[before:]
        assert not during, f"in-browser mode sent requests while drawing: {during}"

        page.engine("server")
        page.draw(DIGITS["7"])
        page.answer("server")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(SHOTS / "page.png"), full_page=True)
        assert not page.foreign, f"the page asked hosts other than 127.0.0.1: {page.foreign}"
        assert not page.errors, f"errors in the browser console: {page.errors}"
        served = [r for r in page.requests if r.startswith("GET /vendor/") or r.startswith("GET /models/")]
        print("fetched for the in-browser mode:", json.dumps(served))
        assert sum(r == "GET /models/cnn.onnx" for r in page.requests) == 1, "the ONNX model was not fetched exactly once"
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise
    finally:
        page.close()
