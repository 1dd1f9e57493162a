"""The live digit pad of notebook 08: draw with the mouse or a finger, watch the models guess.

The pad keeps the strokes in Python and rasterises them with PIL (:func:`mnist_course.drawing.rasterize`),
so it can be driven, and tested, without a browser: call its ``on_mouse_down/move/up`` handlers yourself.
The preprocessing and the prediction are :mod:`mnist_course.drawing`'s. ipycanvas and ipywidgets are
imported only when a pad is built.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

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
    predict_probs,
    preprocess,
    rasterize,
)


class DrawingPad:
    """A digit pad for the notebook: draw with the mouse or a finger, watch the models guess.

    models: {"CNN": cnn, "MLP": mlp} (or one model); each takes normalised (N, 1, 28, 28) -> (N, 10).
    Strokes live in Python (``pad.strokes``) and are rasterised with PIL, so the handlers
    ``on_mouse_down/move/up`` and ``on_touch_start/move/end`` can be called directly, without a
    browser. Prediction runs live while drawing, at most once every `throttle` seconds, and always
    when a stroke ends. Errors inside handlers are shown in the pad (``pad.errors``), not lost.
    Display it by leaving ``pad`` last in a cell (or ``display(pad.widget)``).
    """

    def __init__(self, models, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                 classes: Sequence[str] = CLASSES, size: int = 280, brush: float = 20.0,
                 throttle: float = 0.15, clock: Callable[[], float] = time.perf_counter):
        if isinstance(models, torch.nn.Module):
            models = {"model": models}
        if not models:
            raise ValueError("DrawingPad needs at least one model, e.g. {'CNN': cnn, 'MLP': mlp}.")
        self.models = dict(models)
        for m in self.models.values():
            m.eval()
        self.mean, self.std, self.classes = mean, std, tuple(classes)
        self.size, self.brush, self.throttle, self.clock = size, brush, throttle, clock
        self.strokes: list[Stroke] = []
        self.drawing = False
        self.prediction: Prediction | None = None
        self.last_error: BaseException | None = None
        self.times: dict[str, list[float]] = {name: [] for name in self.models}
        self._last_predict = -np.inf
        self._build()
        for name, model in self.models.items():  # warm up each model, then time it once
            predict_probs(model, np.zeros((SIZE, SIZE), np.float32), mean, std)
            self._timed_probs(name, np.zeros((SIZE, SIZE), np.float32))
        self._show(None)

    # ---- widgets
    def _build(self) -> None:
        import ipywidgets as W
        from ipycanvas import Canvas

        self.canvas = Canvas(width=self.size, height=self.size,
                             layout=W.Layout(width=f"{self.size}px", height=f"{self.size}px",
                                             border="1px solid #888"))
        self.canvas.add_class("mnist-course-canvas")
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

        self.canvas.on_mouse_down(self.on_mouse_down)
        self.canvas.on_mouse_move(self.on_mouse_move)
        self.canvas.on_mouse_up(self.on_mouse_up)
        self.canvas.on_mouse_out(self.on_mouse_up)
        self.canvas.on_touch_start(self.on_touch_start)
        self.canvas.on_touch_move(self.on_touch_move)
        self.canvas.on_touch_end(self.on_touch_end)
        self.canvas.on_touch_cancel(self.on_touch_end)
        self.canvas.on_client_ready(lambda *_: self._guard(self._redraw))
        self.clear_button.on_click(lambda _: self._guard(self.clear))
        self.undo_button.on_click(lambda _: self._guard(self.undo))
        self.selector.observe(lambda _: self._guard(self.predict), names="value")
        self._redraw()

        left = W.VBox([self.canvas, W.HBox([self.clear_button, self.undo_button])])
        right = W.VBox([self.label, W.HBox([self.chart, W.VBox([W.HTML("model input (28x28)"), self.input_image])]),
                        self.selector, self.timing])
        self.widget = W.VBox([W.HBox([left, right], layout=W.Layout(grid_gap="16px")), self.errors])

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

    # ---- event handlers (callable from tests: coordinates in canvas pixels)
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

    def _check_point(self, x, y) -> tuple[float, float]:
        x, y = float(x), float(y)
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"canvas point ({x}, {y}) is not finite.")
        return x, y

    def _start(self, x, y) -> None:
        x, y = self._check_point(x, y)
        self.drawing = True
        self.strokes.append([(x, y)])
        self.canvas.fill_circle(x, y, self.brush / 2)

    def _move(self, x, y) -> None:
        if not self.drawing:
            return
        x, y = self._check_point(x, y)
        x0, y0 = self.strokes[-1][-1]
        self.strokes[-1].append((x, y))
        self.canvas.stroke_line(x0, y0, x, y)
        if self.clock() - self._last_predict >= self.throttle:
            self.predict()

    def _end(self) -> None:
        if self.drawing:
            self.drawing = False
            self.predict()

    def clear(self) -> None:
        """Forget every stroke and wipe the canvas."""
        self.strokes.clear()
        self.drawing = False
        self._redraw()
        self.predict()

    def undo(self) -> None:
        """Remove the last stroke."""
        if self.strokes:
            self.strokes.pop()
        self.drawing = False
        self._redraw()
        self.predict()

    def _redraw(self) -> None:
        from ipycanvas import hold_canvas

        c = self.canvas
        with hold_canvas():
            c.fill_style = "black"
            c.fill_rect(0, 0, self.size, self.size)
            c.stroke_style = "white"
            c.fill_style = "white"
            c.line_width = self.brush
            c.line_cap = "round"
            c.line_join = "round"
            for stroke in self.strokes:
                x0, y0 = stroke[0]
                c.fill_circle(x0, y0, self.brush / 2)
                if len(stroke) > 1:
                    c.stroke_lines(stroke)

    # ---- predicting
    def image(self) -> np.ndarray:
        """The strokes rasterised: uint8 (size, size), white ink on black."""
        return rasterize(self.strokes, self.size, self.size, self.brush)

    def _timed_probs(self, name: str, image: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        probs = predict_probs(self.models[name], image, self.mean, self.std)
        times = self.times[name]
        times.append(time.perf_counter() - start)
        del times[:-50]
        return probs

    def predict(self) -> Prediction:
        """Rasterise, preprocess and run the selected model; update the label, chart and input image."""
        self._last_predict = self.clock()
        start = time.perf_counter()
        pre = preprocess(self.image())
        if pre.blank:
            pred = Prediction(None, [], None, time.perf_counter() - start)
        else:
            probs = self._timed_probs(self.selector.value, pre.image)
            order = np.argsort(-probs)[:3]
            pred = Prediction(probs, [(self.classes[i], float(probs[i])) for i in order], pre.image,
                              time.perf_counter() - start)
        self._show(pred)
        return pred

    def _show(self, pred: Prediction | None) -> None:
        self.prediction = pred
        if pred is None or pred.blank:
            text = "Draw a digit" if pred is None else "No digit yet"
            self.label.value = f"<span style='font-size:1.4em'>{text}</span>"
            self.input_image.value = png_bytes(np.zeros((SIZE, SIZE), np.float32), 4)
        else:
            self.label.value = (f"<span style='font-size:1.4em'>Prediction: <b>{pred.label}</b></span> "
                                f"({100 * pred.topk[0][1]:.1f}%)")
            self.input_image.value = png_bytes(pred.image, 4)
        self.chart.value = bar_chart_html(None if pred is None else pred.probs, self.classes)
        chosen = self.selector.value
        self.timing.value = "inference: " + " · ".join(
            (f"<b>{n} {1000 * np.median(t):.2f} ms</b>" if n == chosen else f"{n} {1000 * np.median(t):.2f} ms")
            for n, t in self.times.items() if t)


def bar_chart_html(probs: np.ndarray | None, classes: Sequence[str] = CLASSES) -> str:
    """A horizontal bar chart of (10,) probabilities as one HTML snippet (the best bar in green)."""
    best = int(np.argmax(probs)) if probs is not None else -1
    rows = []
    for i, c in enumerate(classes):
        p = 0.0 if probs is None else float(probs[i])
        colour = "#2e7d32" if i == best else "#1e88e5"
        rows.append(
            "<div style='display:flex;align-items:center;height:20px'>"
            f"<span style='min-width:22px;padding-right:4px;white-space:nowrap'>{c}</span>"
            "<span style='width:150px;height:12px;background:#e0e0e0;display:inline-block'>"
            f"<span style='width:{100 * p:.1f}%;height:100%;background:{colour};display:block'></span></span>"
            f"<span style='width:56px;text-align:right'>{'' if probs is None else f'{100 * p:.1f}%'}</span></div>")
    return f"<div class='mnist-course-chart' style='font-family:monospace'>{''.join(rows)}</div>"


