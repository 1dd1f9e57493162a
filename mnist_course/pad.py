"""The live digit pad of notebook 08: draw with the mouse, a finger or a pen, watch the models guess.

The canvas is an anywidget (:class:`StrokeCanvas`, front end in ``pad.js`` and ``pad.css``): the
browser draws the ink itself and sends the kernel only the strokes, in frame pixels, only while a
button is pressed (hovering costs the kernel nothing), at most every `throttle` seconds (0.1) and
when a stroke ends.
The strokes live in a synced trait, so a reloaded page, a reopened notebook or a second view shows
them again; re-running the cell gives a new, empty pad.

The kernel rasterises the strokes with PIL (:func:`mnist_course.drawing.rasterize`) and predicts
with :func:`mnist_course.drawing.predict_image`, the one code path shared with pictures and the web
service, so what the model sees never depends on the browser. Everything the browser does can be
done from Python (``on_mouse_down/move/up``, ``on_touch_start/move/end``, ``set_strokes``), which
is how the tests and notebook 08 (section 6) drive the pad without a browser. anywidget and
ipywidgets are imported only when a pad is built.
"""

from __future__ import annotations

import math
import time
import traceback
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


def _canvas_class():
    """The anywidget class, defined on first use so importing this module needs no widgets."""
    global StrokeCanvas
    if "StrokeCanvas" in globals():
        return StrokeCanvas
    import anywidget
    import traitlets

    class StrokeCanvas(anywidget.AnyWidget):
        """A square canvas that keeps its strokes in the synced trait `strokes`:
        [[[x, y], ...], ...] in frame pixels (0..size, 0..size), drawn with a round brush of
        diameter `brush` frame pixels. Shown at most size x size, smaller in a narrow window. While a
        stroke is drawn the browser sends the strokes at most every `throttle` seconds."""

        _esm = HERE / "pad.js"
        _css = HERE / "pad.css"
        strokes = traitlets.List().tag(sync=True)
        size = traitlets.Int(280).tag(sync=True)
        brush = traitlets.Float(280 * BRUSH).tag(sync=True)
        throttle = traitlets.Float(0.1).tag(sync=True)   # seconds between two sends while drawing

    return StrokeCanvas


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

    The strokes are ``pad.strokes`` (lists of (x, y) frame points), synced with the browser through
    ``pad.canvas.strokes``. Each change predicts with ``drawing.predict_image`` on ``pad.image()``;
    strokes drawn from Python (``on_mouse_*``, ``on_touch_*``) predict at most once every
    `throttle` seconds while drawing and always when a stroke ends; the browser sends its strokes
    as often.
    ``pad.times[name]``: the model's own seconds per guess, after a warm-up call made here and
    never timed. Errors inside handlers are shown in the pad (``pad.errors``, ``pad.last_error``).
    Display it by leaving ``pad`` last in a cell (or ``display(pad.widget)``).
    """

    def __init__(self, models, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                 classes: Sequence[str] = CLASSES, size: int = 280, brush: float | None = None,
                 throttle: float = 0.1, clock: Callable[[], float] = time.perf_counter):
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
        self.strokes: list[Stroke] = []
        self.drawing = False
        self.prediction: Prediction | None = None
        self.last_error: BaseException | None = None
        self.times: dict[str, list[tuple[float, float]]] = {name: [] for name in self.models}
        self._last_predict = -np.inf
        self._pushing = False
        for model in self.models.values():   # warm-up, never timed: the first call is the slowest
            predict_probs(model, np.zeros((SIZE, SIZE), np.float32), mean, std)
        self._build()
        self._show(None)

    # ---- widgets
    def _build(self) -> None:
        import ipywidgets as W

        self.canvas = _canvas_class()(size=self.size, brush=self.brush, throttle=self.throttle)
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

        self.canvas.observe(lambda change: self._guard(self._from_browser, change["new"]), names="strokes")
        self.clear_button.on_click(lambda _: self._guard(self.clear))
        self.undo_button.on_click(lambda _: self._guard(self.undo))
        self.selector.observe(lambda _: self._guard(self.predict), names="value")

        left = W.VBox([self.canvas, W.HBox([self.clear_button, self.undo_button])],
                      layout=W.Layout(flex="1 1 200px", max_width=f"{self.size}px", min_width="0"))
        right = W.VBox([self.label, W.HBox([self.chart, W.VBox([W.HTML("model input (28x28)"), self.input_image])],
                                           layout=W.Layout(flex_flow="row wrap")),
                        self.selector, self.timing], layout=W.Layout(flex="0 1 auto", min_width="0"))
        # In a narrow window the right column wraps below the canvas instead of squashing it.
        self.widget = W.VBox([W.HBox([left, right], layout=W.Layout(flex_flow="row wrap", grid_gap="16px")),
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

    # ---- the browser's side: strokes arrive in the synced trait
    def _from_browser(self, strokes) -> None:
        if self._pushing:          # our own change, sent to the browser
            return
        self.strokes = parse_strokes(strokes)
        self.drawing = False
        self.predict()

    def _push(self) -> None:
        """Send the strokes to the browser (every view repaints them)."""
        self._pushing = True
        try:
            self.canvas.strokes = [[[x, y] for x, y in s] for s in self.strokes]
        finally:
            self._pushing = False

    def set_strokes(self, strokes) -> Prediction:
        """Replace every stroke (lists of (x, y) frame points), show them and predict."""
        self.strokes = parse_strokes(strokes)
        self.drawing = False
        self._push()
        return self.predict()

    # ---- what the browser does, callable from Python (coordinates in frame pixels)
    def on_mouse_down(self, x: float, y: float) -> None:
        self._guard(self._start, x, y)

    def on_mouse_move(self, x: float, y: float) -> None:
        self._guard(self._move, x, y)

    def on_mouse_up(self, x: float | None = None, y: float | None = None) -> None:
        self._guard(self._end)

    def on_touch_start(self, touches) -> None:
        if touches:
            self.on_mouse_down(*touches[0])

    def on_touch_move(self, touches) -> None:
        if touches:
            self.on_mouse_move(*touches[0])

    def on_touch_end(self, touches=None) -> None:
        self.on_mouse_up()

    def _start(self, x, y) -> None:
        (point,), = parse_strokes([[(x, y)]])
        self.drawing = True
        self.strokes.append([point])
        self._push()

    def _move(self, x, y) -> None:
        if not self.drawing:       # hovering: no state changes, nothing is sent
            return
        (point,), = parse_strokes([[(x, y)]])
        self.strokes[-1].append(point)
        if self.clock() - self._last_predict >= self.throttle:
            self._push()
            self.predict()

    def _end(self) -> None:
        if self.drawing:
            self.drawing = False
            self._push()
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
        name = self.selector.value
        pred = predict_image(self.image(), self.models[name], k=3, mean=self.mean, std=self.std,
                             classes=self.classes, ink="light")   # white ink on black: a filled pad is "ink everywhere"
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
        self.timing.value = "model time, median of the guesses so far: " + " · ".join(parts)


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
