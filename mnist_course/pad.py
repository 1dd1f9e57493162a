"""The live digit pad of notebook 12: draw with the mouse, a finger or a pen, watch the models guess.

The canvas is an ipycanvas ``Canvas`` (``sync_image_data=False``: no pixels travel). Its front end
sends the kernel every mouse and touch event (``mouse_down/move/up/out``, ``touch_*``), hovering
included; the kernel keeps the strokes (``pad.strokes``, frame pixels), draws the ink with canvas
commands (one batch per event, ``hold_canvas``) and predicts at most every `throttle` seconds while
a stroke is drawn (0.1), always when it ends. A move with no stroke being drawn (hovering) changes
nothing, draws nothing and calls no model.

Measured in JupyterLab with Chromium (tests/test_browser.py, ``test_messages_per_stroke_and_a_reload``,
2 shared CPU cores): every mouse move over the canvas is one message to the kernel, pressed or not,
and costs the kernel about 2 ms of CPU (ipykernel's handling of the message, more than the pad's);
a drawn move adds one batch of canvas commands back to the browser; a guess costs about 7 ms and up
to four widget updates (label, chart, model input, timing). A stroke of 200 moves guessed on every
move (throttle 0) took the kernel 2.0 s of CPU, 201 guesses and up to 640 updates, and its last
answer came up to 1.9 s after the release (the messages queue up); with throttle 0.1 it took
0.8 s, 33 to 44 guesses and 100 to 140 updates, the last answer 0.05 to 0.2 s after the release
(0.8 s once, with the machine busy). At the 60 moves a second of a screen, 0.1 keeps the kernel
well below one core (about 0.2 s of CPU a second) and the guess ten times a second: live. When a new view connects (a reloaded page, a reopened
notebook), ipycanvas says ``client_ready`` and the pad repaints its strokes there; re-running the
cell gives a new, empty pad.

ipycanvas sends no button state and no pointer capture, so a stroke that leaves the canvas is
decided in the kernel: the exit point ends the ink shown; the moves after the mouse comes back are
kept aside and join the stroke when the button is released over the canvas (it was held all the
way), or are dropped when the next press comes first (it was released outside). A finger keeps
its stroke outside the canvas (touch events stay with the canvas they started on). One pointer
draws at a time: a second finger, or the mouse during a touch stroke, is ignored.

The kernel rasterises the strokes with PIL (:func:`mnist_course.drawing.rasterize`) and predicts
with :func:`mnist_course.drawing.predict_image`, the one code path shared with pictures and the web
service, so what the model sees never depends on the browser. Everything the browser does can be
done from Python (``on_mouse_down/move/up/out``, ``on_touch_start/move/end``, ``set_strokes``),
which is how the tests and notebook 12 (section 6) drive the pad. ipycanvas and ipywidgets are
imported only when a pad is built.
"""

from __future__ import annotations

import math
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .drawing import (
    CLASSES,
    MNIST_MEAN,
    MNIST_STD,
    SIZE,
    Prediction,
    Stroke,
    png_bytes,
    predict_image,
    predict_probs,
    rasterize,
)

HERE = Path(__file__).parent
BRUSH = 1 / 16  # brush diameter as a fraction of the frame: 17.5 px of 280 (see DrawingPad)
CSS = HERE / "pad.css"


def parse_strokes(strokes) -> list[Stroke]:
    """Strokes from the browser or a user: a list of strokes, each a non-empty list of (x, y)
    points -> list of lists of (float, float). Raises ValueError saying what is wrong."""
    if not isinstance(strokes, (list, tuple)):
        raise ValueError(f"strokes must be a list of strokes (lists of (x, y) points), got {type(strokes).__name__}.")
    out = []
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, (list, tuple)) or len(stroke) == 0:
            raise ValueError(f"stroke {i} must be a non-empty list of (x, y) points, got {stroke!r:.60}.")
        points = []
        for p in stroke:
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ValueError(f"stroke {i}: each point must be (x, y), got {p!r:.60}.")
            x, y = float(p[0]), float(p[1])
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"stroke {i}: canvas point ({x}, {y}) is not finite.")
            points.append((x, y))
        out.append(points)
    return out


def _point(x, y) -> tuple[float, float]:
    (point,), = parse_strokes([[(x, y)]])
    return point


def label_text(pred: Prediction | None, model_name: str) -> str:
    """What the pad says: "CNN: 7 (99.1 %)", "CNN: not sure: 4 or 9?", "no digit (no ink)"."""
    if pred is None:
        return "Draw a digit"
    status, reason = pred.status, pred.reason
    if status == "no digit":
        return f"no digit ({reason})" if reason else "no digit"
    if status == "not sure":
        return f"{model_name}: not sure: {reason}" if reason else f"{model_name}: not sure"
    return f"{model_name}: {pred.label} ({100 * pred.topk[0][1]:.1f} %)"


class DrawingPad:
    """A digit pad for the notebook: draw with the mouse, a finger or a pen, watch the models guess.

    models: {"CNN": cnn, "MLP": mlp} (or one model); each takes normalised (N, 1, 28, 28) -> (N, 10).
    size: the frame, size x size pixels (280; shown smaller, still square, in a narrow window).
    brush: the brush diameter in frame pixels; default size / 16 (17.5 px of 280), relative to the
    frame so it looks the same at any size. The preprocessing crops to the ink and fits it into
    20x20, so the stroke the model sees is brush x 20 / (the digit's height + brush): a digit
    drawn small gets fat strokes. With the course CNN, six drawn shapes (0, 1, 2, 3, 4, 7) are all
    recognised from 60 to 250 px high with this brush; with a 23 px brush two of them are not at
    60 px (tests/test_pad.py::test_small_digits_are_not_blobs). Thinner still reads small digits
    better, but draws hairlines on screen and gives big digits strokes thinner than MNIST's.
    throttle: seconds between two guesses while a stroke is drawn (0.1; every stroke's end is
    guessed too). The browser sends each mouse move, up to one a screen frame; each costs the
    kernel about 2 ms, a guess about 7 ms more (the figures are in the module's docstring).
    not_sure_below: the probability under which a guess is "not sure" (None: drawing.NOT_SURE_BELOW;
    notebook 12 passes the one notebook 11 computed).

    The strokes are ``pad.strokes`` (lists of (x, y) frame points), drawn on ``pad.canvas`` (an
    ``ipycanvas.Canvas``) by the kernel. Each change predicts with ``drawing.predict_image`` on
    ``pad.image()``. ``pad.events`` counts what reached the handlers ("hover": moves while
    nothing is drawn), ``pad.predictions`` the guesses.
    ``pad.times[name]``: the model's own seconds per guess, after a warm-up call made here and
    never timed. Errors inside handlers are shown in the pad (``pad.errors``, ``pad.last_error``).
    Display it by leaving ``pad`` last in a cell (or ``display(pad.widget)``).
    """

    def __init__(self, models, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                 classes: Sequence[str] = CLASSES, size: int = 280, brush: float | None = None,
                 throttle: float = 0.1, clock: Callable[[], float] = time.perf_counter,
                 not_sure_below: float | None = None):
        if isinstance(models, torch.nn.Module):
            models = {"model": models}
        if not models:
            raise ValueError("DrawingPad needs at least one model, e.g. {'CNN': cnn, 'MLP': mlp}.")
        if isinstance(size, bool) or not isinstance(size, int) or size < SIZE:
            raise ValueError(f"size must be an integer of at least {SIZE} (frame pixels), got {size!r}.")
        brush = size * BRUSH if brush is None else float(brush)
        if not 0 < brush <= size / 2:
            raise ValueError(f"brush must be between 0 and size / 2 = {size / 2} frame pixels, got {brush}.")
        self.models = dict(models)
        for m in self.models.values():
            m.eval()
        self.mean, self.std, self.classes = mean, std, tuple(classes)
        self.size, self.brush, self.throttle, self.clock = size, brush, throttle, clock
        self.not_sure_below = not_sure_below   # None: drawing.NOT_SURE_BELOW
        self.strokes: list[Stroke] = []
        self.drawing: str | None = None        # who draws the current stroke: "mouse", "touch" or None
        self._away: list | None = None         # mouse points since the stroke left the canvas
        self.prediction: Prediction | None = None
        self.last_error: BaseException | None = None
        self.times: dict[str, list[tuple[float, float]]] = {name: [] for name in self.models}
        self.events: Counter = Counter()
        self.predictions = 0
        self._last_predict = -np.inf
        for model in self.models.values():   # warm-up, never timed: the first call is the slowest
            predict_probs(model, np.zeros((SIZE, SIZE), np.float32), mean, std)
        self._build()
        self._show(None)
        self._paint()

    # ---- widgets
    def _build(self) -> None:
        import ipywidgets as W
        from ipycanvas import Canvas

        # Square at any width: 100 % of its column (at most size px), height from the 1:1 frame.
        self.canvas = Canvas(width=self.size, height=self.size, sync_image_data=False,
                             layout=W.Layout(width="100%", height="auto", max_width=f"{self.size}px"))
        self.canvas.add_class("mnist-course-canvas")
        self.style = W.HTML(f"<style>{CSS.read_text()}</style>", layout=W.Layout(display="none"))
        self.clear_button = W.Button(description="Clear", icon="eraser", layout=W.Layout(width="90px"))
        self.undo_button = W.Button(description="Undo", icon="undo", layout=W.Layout(width="90px"))
        self.selector = W.ToggleButtons(options=list(self.models), description="Model:",
                                        style={"button_width": "70px"})
        self.timing = W.HTML()
        self.label = W.HTML()
        self.label.add_class("mnist-course-prediction")
        self.input_image = W.Image(format="png", width=112, height=112)
        self.chart = W.HTML(bar_chart_html(None, self.classes))   # one message per update, not twenty
        self.errors = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))

        c = self.canvas
        c.on_mouse_down(self.on_mouse_down)
        c.on_mouse_move(self.on_mouse_move)
        c.on_mouse_up(self.on_mouse_up)
        c.on_mouse_out(self.on_mouse_out)
        c.on_touch_start(self.on_touch_start)
        c.on_touch_move(self.on_touch_move)
        c.on_touch_end(self.on_touch_end)
        c.on_touch_cancel(self.on_touch_end)
        c.on_client_ready(lambda: self._guard(self._client_ready))
        self.clear_button.on_click(lambda _: self._guard(self.clear))
        self.undo_button.on_click(lambda _: self._guard(self.undo))
        self.selector.observe(lambda _: self._guard(self.predict), names="value")

        left = W.VBox([self.canvas, W.HBox([self.clear_button, self.undo_button])],
                      layout=W.Layout(flex="1 1 200px", max_width=f"{self.size}px", min_width="0"))
        right = W.VBox([self.label, W.HBox([self.chart, W.VBox([W.HTML("model input (28x28)"), self.input_image])],
                                           layout=W.Layout(flex_flow="row wrap")),
                        self.selector, self.timing], layout=W.Layout(flex="0 1 auto", min_width="0"))
        # In a narrow window the right column wraps below the canvas instead of squashing it.
        self.widget = W.VBox([self.style, W.HBox([left, right], layout=W.Layout(flex_flow="row wrap", grid_gap="16px")),
                              self.errors])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _guard(self, fn, *args):
        """Run a handler; show any exception's traceback in the pad instead of losing it."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - shown to the learner, kept in last_error
            self.last_error = e
            self.errors.append_stderr(f"{type(e).__name__} in the drawing pad: {e}\n" + traceback.format_exc())
            return None

    # ---- ink: canvas commands, one message per batch
    def _ink(self) -> None:
        c = self.canvas
        c.stroke_style = c.fill_style = "white"
        c.line_width, c.line_cap, c.line_join = self.brush, "round", "round"

    def _paint(self) -> None:
        """Paint every stroke on a black frame (every view shows it), in one message."""
        from ipycanvas import hold_canvas

        c = self.canvas
        with hold_canvas():
            c.fill_style = "black"
            c.fill_rect(0, 0, self.size, self.size)
            self._ink()
            for s in self.strokes:
                c.fill_circle(s[0][0], s[0][1], self.brush / 2)
                if len(s) > 1:
                    c.stroke_lines(s)

    def _segment(self, p, q) -> None:
        """Draw from point p to q (a dot at q when p is None), in one message."""
        from ipycanvas import hold_canvas

        c = self.canvas
        with hold_canvas():
            self._ink()
            if p is None:
                c.fill_circle(q[0], q[1], self.brush / 2)
            else:
                c.stroke_line(p[0], p[1], q[0], q[1])

    def _client_ready(self) -> None:
        """A new view (reloaded page, reopened notebook): paint the strokes there. Its canvas
        manager is new too, so the kernel's idea of the current canvas is stale (ipycanvas #322)."""
        self.events["client_ready"] += 1
        self.canvas._canvas_manager._current_canvas = None
        self._paint()

    def set_strokes(self, strokes) -> Prediction:
        """Replace every stroke (lists of (x, y) frame points), show them and predict."""
        self.strokes = parse_strokes(strokes)
        self.drawing, self._away = None, None
        self._paint()
        return self.predict()

    # ---- what the browser sends (ipycanvas callbacks), callable from Python (frame pixels)
    def on_mouse_down(self, x: float, y: float) -> None:
        self.events["mouse_down"] += 1
        self._guard(self._down, "mouse", x, y)

    def on_mouse_move(self, x: float, y: float) -> None:
        self.events["mouse_move" if self.drawing == "mouse" else "hover"] += 1
        if self.drawing == "mouse":
            self._guard(self._move, x, y)

    def on_mouse_out(self, x: float | None = None, y: float | None = None) -> None:
        self.events["mouse_out"] += 1
        if self.drawing == "mouse" and self._away is None:
            self._guard(self._leave, x, y)

    def on_mouse_up(self, x: float | None = None, y: float | None = None) -> None:
        self.events["mouse_up"] += 1
        if self.drawing == "mouse":
            self._guard(self._up, x, y)

    def on_touch_start(self, touches) -> None:
        self.events["touch_start"] += 1
        if touches and self.drawing is None:     # a second finger is ignored
            self._guard(self._down, "touch", *touches[0])

    def on_touch_move(self, touches) -> None:
        self.events["touch_move"] += 1
        if touches and self.drawing == "touch":   # the first finger down is the first of the touches
            self._guard(self._move, *touches[0])

    def on_touch_end(self, touches=None) -> None:
        """A finger lifted; the stroke goes on while its finger (the oldest touch, at its last
        point) is still down."""
        self.events["touch_end"] += 1
        if self.drawing != "touch":
            return
        if touches:
            (x, y), (lx, ly) = touches[0], self.strokes[-1][-1]
            if math.hypot(x - lx, y - ly) <= self.brush:
                return
        self._guard(self._end)

    def _down(self, who, x, y) -> None:
        point = _point(x, y)
        if self.drawing is not None:   # a press with a stroke open: released outside the canvas
            self._end()
        self.drawing, self._away = who, None
        self.strokes.append([point])
        self._segment(None, point)

    def _move(self, x, y) -> None:
        point = _point(x, y)
        if self._away is not None:     # back after leaving: held or not? the release will tell
            self._away.append(point)
            return
        stroke = self.strokes[-1]
        if point == stroke[-1]:
            return
        self._segment(stroke[-1], point)
        stroke.append(point)
        if self.clock() - self._last_predict >= self.throttle:
            self.predict()

    def _leave(self, x, y) -> None:
        if x is not None and y is not None:
            self._move(x, y)
        self._away = []
        self.predict()

    def _up(self, x, y) -> None:
        if self._away is not None:     # released over the canvas: the button was held all the way
            away, self._away = self._away, None
            if x is not None and y is not None:
                away.append(_point(x, y))
            self.strokes[-1].extend(away)
            self._paint()
        elif x is not None and y is not None:
            self._move(x, y)
        self._end()

    def _end(self) -> None:
        self.drawing, self._away = None, None
        self.predict()

    def clear(self) -> None:
        """Forget every stroke."""
        self.set_strokes([])

    def undo(self) -> None:
        """Remove the last stroke."""
        self.set_strokes(self.strokes[:-1])

    # ---- predicting
    def image(self) -> np.ndarray:
        """The strokes rasterised: uint8 (size, size), white ink on black."""
        return rasterize(self.strokes, self.size, self.size, self.brush)

    def predict(self) -> Prediction:
        """Rasterise the strokes and predict with the selected model (``drawing.predict_image``);
        update the label, chart, input image and timing."""
        self._last_predict = self.clock()
        self.predictions += 1
        name = self.selector.value
        pred = predict_image(self.image(), self.models[name], k=3, mean=self.mean, std=self.std,
                             classes=self.classes, ink="light",   # white ink on black: a filled pad is "ink everywhere"
                             not_sure_below=self.not_sure_below)
        if pred.model_seconds is not None:     # None: no model call ("no digit")
            times = self.times[name]
            times.append((pred.model_seconds, pred.seconds))
            del times[:-50]
        self._show(pred)
        return pred

    def _show(self, pred: Prediction | None) -> None:
        self.prediction = pred
        chosen = self.selector.value
        self.label.value = f"<span style='font-size:1.4em'>{label_text(pred, chosen)}</span>"
        image = None if pred is None else pred.image
        self.input_image.value = png_bytes(np.zeros((SIZE, SIZE), np.float32) if image is None else image, 4)
        probs = None if pred is None else pred.probs
        sure = pred is not None and pred.status == "digit"
        self.chart.value = bar_chart_html(probs, self.classes, best_colour="#2e7d32" if sure else "#ef6c00")
        parts = []
        for name, t in self.times.items():
            text = (f"{name} {1000 * np.median([m for m, _ in t]):.2f} ms "
                    f"({1000 * np.median([s for _, s in t]):.2f} ms with preprocessing)" if t
                    else f"{name} not timed yet")
            parts.append(f"<b>{text}</b>" if name == chosen else text)
        self.timing.value = (f"{self.predictions} guesses; model time, median of the guesses so far: "
                             + " · ".join(parts))


def bar_chart_html(probs: np.ndarray | None, classes: Sequence[str] = CLASSES,
                   best_colour: str = "#2e7d32") -> str:
    """A horizontal bar chart of (10,) probabilities as one HTML snippet (the best bar in
    `best_colour`: green for a digit, orange when the model is not sure)."""
    best = int(np.argmax(probs)) if probs is not None else -1
    rows = []
    for i, c in enumerate(classes):
        p = 0.0 if probs is None else float(probs[i])
        colour = best_colour if i == best else "#1e88e5"
        rows.append(
            "<div style='display:flex;align-items:center;height:20px'>"
            f"<span style='min-width:22px;padding-right:4px;white-space:nowrap'>{c}</span>"
            "<span style='width:150px;height:12px;background:#e0e0e0;display:inline-block'>"
            f"<span style='width:{100 * p:.1f}%;height:100%;background:{colour};display:block'></span></span>"
            f"<span style='width:56px;text-align:right'>{'' if probs is None else f'{100 * p:.1f}%'}</span></div>")
    return f"<div class='mnist-course-chart' style='font-family:monospace'>{''.join(rows)}</div>"
