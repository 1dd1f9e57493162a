"""The drawing pad of notebook 08 (mnist_course.pad), driven through its handlers without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import FakeClock, Fixed, draw_one
from torch import nn

from mnist_course import pad as pd

# ---------------------------------------------------------------------------- the drawing pad


@pytest.fixture()
def pad():
    clock = FakeClock()
    p = pd.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)}, throttle=0.1, clock=clock)
    p.clock_ = clock
    return p


def test_pad_starts_empty(pad):
    assert pad.strokes == [] and pad.prediction is None
    assert "Draw a digit" in pad.label.value
    assert "CNN" in pad.timing.value and "MLP" in pad.timing.value and "ms" in pad.timing.value
    assert pad.selector.options == ("CNN", "MLP")
    assert pad.canvas.width == 280 and pad.canvas.height == 280


def test_mouse_strokes_are_kept_and_predicted(pad):
    draw_one(pad)
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21
    assert pad.strokes[0][0] == (140.0, 40.0) and pad.strokes[0][-1] == (140.0, 240.0)
    assert pad.prediction.label == "3"
    assert "Prediction: <b>3</b>" in pad.label.value
    assert pad.prediction.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert f"width:{100 * pad.prediction.probs[3]:.1f}%" in pad.chart.value
    assert pad.chart.value.count("#2e7d32") == 1            # one best bar
    assert pad.input_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert pad.errors.outputs == ()
    img = pad.image()
    assert img.shape == (280, 280) and img[40:241, 140].all() and img[:, :120].max() == 0


def test_moves_without_a_pressed_button_draw_nothing(pad):
    pad.on_mouse_move(10, 10)
    pad.on_mouse_move(50, 50)
    assert pad.strokes == [] and pad.prediction is None


def test_live_prediction_is_throttled(pad):
    model = pad.models["CNN"]
    calls0 = model.calls
    pad.on_mouse_down(100, 50)
    for i in range(10):                     # ten moves within 0.1 s: one live prediction
        pad.clock_.t += 0.005
        pad.on_mouse_move(100, 60 + 15 * i)
    assert model.calls - calls0 == 1
    pad.clock_.t += 0.2                     # after the throttle interval: predicts again
    pad.on_mouse_move(100, 230)
    assert model.calls - calls0 == 2
    pad.on_mouse_up(100, 230)               # the end of a stroke always predicts
    assert model.calls - calls0 == 3


def test_undo_and_clear(pad):
    draw_one(pad, x=80)
    draw_one(pad, x=200)
    assert len(pad.strokes) == 2
    pad.undo_button.click()
    assert len(pad.strokes) == 1 and pad.strokes[0][0][0] == 80
    assert pad.image()[:, 200].max() == 0 and pad.image()[100, 80] == 255
    pad.clear_button.click()
    assert pad.strokes == [] and pad.prediction.blank
    assert "No digit" in pad.label.value and "#2e7d32" not in pad.chart.value
    pad.undo()                              # undo on an empty pad is harmless
    assert pad.errors.outputs == ()


def test_touch_draws_like_the_mouse(pad):
    pad.on_touch_start([(140, 40)])
    for y in range(50, 241, 10):
        pad.on_touch_move([(140, y), (10, 10)])   # a second finger is ignored
    pad.on_touch_end([])
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21
    assert pad.prediction.label == "3" and not pad.drawing


def test_browser_messages_reach_the_handlers(pad):
    """The pad is wired to the canvas: feed the messages ipycanvas gets from the browser (through
    its private _handle_frontend_event, as the comm would)."""
    def send(**content):
        pad.canvas._handle_frontend_event(None, content, [])

    send(event="mouse_down", x=140, y=40)
    for y in range(50, 241, 10):
        send(event="mouse_move", x=140, y=y)
    send(event="mouse_out", x=140, y=250)          # leaving the canvas ends the stroke
    send(event="mouse_move", x=10, y=10)           # ... so this draws nothing
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21 and not pad.drawing
    assert pad.prediction.label == "3"
    send(event="touch_start", touches=[{"x": 60, "y": 40}])
    send(event="touch_move", touches=[{"x": 60, "y": 200}])
    send(event="touch_end", touches=[])
    assert len(pad.strokes) == 2 and pad.strokes[1] == [(60.0, 40.0), (60.0, 200.0)]


def test_model_selector_switches_model_and_times_each(pad):
    draw_one(pad)
    assert pad.prediction.label == "3"
    pad.selector.value = "MLP"              # re-predicts with the other model at once
    assert pad.prediction.label == "8"
    assert "<b>MLP" in pad.timing.value
    assert len(pad.times["MLP"]) >= 2 and all(t > 0 for t in pad.times["MLP"])


def test_errors_in_handlers_are_shown_not_swallowed(pad):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.armed = False

        def forward(self, X):
            if self.armed:
                raise RuntimeError("model exploded")
            return torch.zeros(len(X), 10)

    broken = Broken()
    p = pd.DrawingPad({"broken": broken})
    broken.armed = True
    draw_one(p)                             # must not raise into ipycanvas (which would hide it)
    assert isinstance(p.last_error, RuntimeError)
    text = "".join(o["text"] for o in p.errors.outputs)
    assert "model exploded" in text and "Traceback" in text
    pad.on_mouse_down(float("nan"), 3.0)
    assert "not finite" in "".join(o["text"] for o in pad.errors.outputs)


def test_bar_chart_html():
    probs = np.array([0.05, 0.6, 0.05, 0.3, 0, 0, 0, 0, 0, 0])
    html = pd.bar_chart_html(probs)
    assert html.count("display:flex") == 10
    assert "width:60.0%" in html and "width:30.0%" in html and "60.0%</span>" in html
    assert "%</span>" not in pd.bar_chart_html(None)


def test_pad_rejects_no_models():
    with pytest.raises(ValueError, match="at least one model"):
        pd.DrawingPad({})


def test_pad_recognises_a_drawn_one(course_cnn):
    model, mean, std, _ = course_cnn
    p = pd.DrawingPad({"CNN": model}, mean=mean, std=std)
    draw_one(p, x=140, y0=50, y1=230)
    assert p.prediction.label == "1", str(p.prediction)
    p.clear()
    # a zero: a closed loop of points
    t = np.linspace(0, 2 * np.pi, 40)
    pts = list(zip(140 + 55 * np.sin(t), 140 - 85 * np.cos(t)))
    p.on_mouse_down(*pts[0])
    for q in pts[1:]:
        p.on_mouse_move(*q)
    p.on_mouse_up(*pts[-1])
    assert p.prediction.label == "0", str(p.prediction)


