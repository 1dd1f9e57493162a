"""The drawing pad of notebook 12 (mnist_course.pad), driven through its handlers and through the
messages its browser front end (ipycanvas) sends, without a browser; what it draws is read from
the canvas commands sent to the browser."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from fakes import FakeClock, Fixed, draw_one
from torch import nn

from mnist_course import pad as pd

# ---------------------------------------------------------------------------- the drawing pad


@pytest.fixture()
def drawn(monkeypatch):
    """The canvas command batches the kernel sends to the browser: a list of lists of command
    names ("strokeLine", "fillCircle", ...), one list per message."""
    from ipycanvas.canvas import _CANVAS_MANAGER, COMMANDS

    names = {v: k for k, v in COMMANDS.items()}
    batches = []

    def send(command, buffers=()):
        batch = command if command and isinstance(command[0], list) else [command]
        batches.append([names[c[0]] for c in batch])

    monkeypatch.setattr(_CANVAS_MANAGER, "_send_custom", send, raising=False)
    return batches


@pytest.fixture()
def pad(drawn):
    clock = FakeClock()
    p = pd.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)}, throttle=0.1, clock=clock)
    p.clock_ = clock
    drawn.clear()
    return p


def test_the_pad_passes_its_threshold_on(drawn):
    """DrawingPad(not_sure_below=...) reaches predict_image: Fixed(3)'s 0.87 is 'not sure' under 0.9."""
    p = pd.DrawingPad({"CNN": Fixed(3)}, throttle=0.1, clock=FakeClock(), not_sure_below=0.9)
    draw_one(p)
    assert "not sure" in p.label.value, p.label.value


def front_end(pad, event, x=None, y=None, touches=None):
    """What ipycanvas's front end sends on a mouse or touch event: a custom comm message."""
    content = {"event": event}
    if touches is not None:
        content["touches"] = [{"x": tx, "y": ty} for tx, ty in touches]
    else:
        content.update(x=x, y=y)
    pad.canvas._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def browser_stroke(pad, points):
    front_end(pad, "mouse_down", *points[0])
    for p in points[1:]:
        front_end(pad, "mouse_move", *p)
    front_end(pad, "mouse_up", *points[-1])


def error_text(pad) -> str:
    return "".join(o["text"] for o in pad.errors.outputs)


def test_pad_starts_empty(drawn):
    from ipycanvas import Canvas

    pad = pd.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)})
    assert pad.strokes == [] and pad.prediction is None
    assert "Draw a digit" in pad.label.value
    assert "CNN not timed yet" in pad.timing.value and "MLP not timed yet" in pad.timing.value
    assert pad.selector.options == ("CNN", "MLP")
    assert pad.size == 280 and pad.brush == pytest.approx(280 / 16)
    c = pad.canvas
    assert isinstance(c, Canvas) and (c.width, c.height) == (280, 280) and not c.sync_image_data
    assert (c.layout.width, c.layout.height, c.layout.max_width) == ("100%", "auto", "280px")   # square at any width
    assert "mnist-course-canvas" in c._dom_classes and "aspect-ratio: 1 / 1" in pad.style.value
    assert drawn == [["switchCanvas", "set", "fillRect", "set", "set", "set", "set", "set"]]   # one batch: a black frame


def test_mouse_strokes_are_kept_and_predicted(pad, drawn):
    draw_one(pad)
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21
    assert pad.strokes[0][0] == (140.0, 40.0) and pad.strokes[0][-1] == (140.0, 240.0)
    assert pad.prediction.label == "3"
    assert "CNN: 3 (85.8 %)" in pad.label.value     # Fixed(3): softmax of +2 vs nine -2
    assert len(drawn) == 21 and drawn[0][-1] == "fillCircle" and all(b[-1] == "strokeLine" for b in drawn[1:])
    assert pad.prediction.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert f"width:{100 * pad.prediction.probs[3]:.1f}%" in pad.chart.value
    assert pad.chart.value.count("#2e7d32") == 1            # one best bar
    assert pad.input_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert pad.errors.outputs == ()
    img = pad.image()
    assert img.shape == (280, 280) and img[40:241, 140].all() and img[:, :120].max() == 0


def test_hovering_changes_nothing(pad, drawn):
    """ipycanvas sends every mouse move, button pressed or not: moves with no stroke being drawn
    (before and after a stroke) are counted, change no state, draw nothing and call no model."""
    warm_up = pad.models["CNN"].calls
    front_end(pad, "mouse_move", 10, 10)
    pad.on_mouse_move(50, 50)
    assert pad.strokes == [] and pad.prediction is None and drawn == [] and pad.models["CNN"].calls == warm_up
    draw_one(pad)
    n_drawn, calls, prediction = len(drawn), pad.models["CNN"].calls, pad.prediction
    for i in range(20):
        pad.clock_.t += 1.0
        front_end(pad, "mouse_move", 20 + 5 * i, 30)
    assert len(drawn) == n_drawn and pad.models["CNN"].calls == calls and pad.prediction is prediction
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21 and pad.errors.outputs == ()
    assert pad.events["hover"] == 22 and pad.events["mouse_move"] == 20


def test_live_prediction_is_throttled(pad):
    predictions = []
    predict = pad.predict
    pad.predict = lambda: predictions.append(predict())
    pad.on_mouse_down(100, 50)
    for i in range(10):                     # ten moves within 0.1 s: one live prediction
        pad.clock_.t += 0.005
        pad.on_mouse_move(100, 60 + 15 * i)
    assert len(predictions) == 1
    pad.clock_.t += 0.2                     # after the throttle interval: predicts again
    pad.on_mouse_move(100, 230)
    assert len(predictions) == 2
    pad.on_mouse_up(100, 230)               # the end of a stroke always predicts
    assert len(predictions) == 3 and pad.prediction.label == "3"


def test_undo_and_clear(pad, drawn):
    draw_one(pad, x=80)
    draw_one(pad, x=200)
    assert len(pad.strokes) == 2
    drawn.clear()
    pad.undo_button.click()
    assert len(pad.strokes) == 1 and pad.strokes[0][0][0] == 80
    assert pad.image()[:, 200].max() == 0 and pad.image()[100, 80] == 255
    assert len(drawn) == 1 and drawn[0].count("fillRect") == 1 and drawn[0].count("strokeLines") == 1  # repainted
    pad.clear_button.click()
    assert pad.strokes == [] and pad.prediction.blank and "strokeLines" not in drawn[-1]
    assert "no digit (no ink)" in pad.label.value and "#2e7d32" not in pad.chart.value
    pad.undo()                              # undo on an empty pad is harmless
    assert pad.errors.outputs == ()


def test_touch_draws_like_the_mouse(pad):
    front_end(pad, "touch_start", touches=[(140, 40)])
    front_end(pad, "touch_start", touches=[(140, 40), (10, 10)])      # a second finger is ignored...
    for y in range(50, 241, 10):
        front_end(pad, "touch_move", touches=[(140, y), (10, 10)])
    front_end(pad, "touch_end", touches=[(140, 240)])                # ...and so is its lifting
    assert pad.drawing == "touch"
    front_end(pad, "touch_move", touches=[(140, 300)])               # a finger keeps drawing outside the canvas
    front_end(pad, "touch_end", touches=[])
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 22 and pad.strokes[0][-1] == (140.0, 300.0)
    assert pad.prediction.label == "3" and pad.drawing is None
    pad.on_touch_start([(100, 100)])         # the first finger lifts while a second stays: the stroke ends
    pad.on_touch_move([(100, 150), (200, 200)])
    pad.on_touch_end([(200, 200)])
    pad.on_touch_move([(200, 230)])
    assert len(pad.strokes) == 2 and pad.strokes[1] == [(100.0, 100.0), (100.0, 150.0)] and pad.drawing is None


def test_one_pointer_at_a_time(pad):
    """The mouse does nothing during a touch stroke; a finger does nothing during a mouse stroke."""
    pad.on_mouse_down(140, 40)
    pad.on_touch_start([(10, 10)])
    pad.on_touch_move([(20, 20)])
    pad.on_mouse_move(140, 140)
    pad.on_touch_end([])
    pad.on_mouse_up(140, 240)
    pad.on_touch_start([(60, 60)])
    pad.on_mouse_move(200, 200)
    pad.on_touch_end([])
    assert pad.strokes == [[(140.0, 40.0), (140.0, 140.0), (140.0, 240.0)], [(60.0, 60.0)]]


def test_browser_events_are_drawn_and_predicted(pad, drawn):
    """ipycanvas's messages (frame pixels) draw and predict as the handlers do: one canvas batch
    per move, a guess at most every `throttle` seconds while drawing and one when the button lifts."""
    warm_up = pad.models["CNN"].calls
    front_end(pad, "mouse_down", 140, 40)
    front_end(pad, "mouse_move", 140, 140)                   # live, mid-stroke
    assert pad.strokes == [[(140.0, 40.0), (140.0, 140.0)]] and pad.prediction.label == "3"
    front_end(pad, "mouse_move", 140, 240)
    front_end(pad, "mouse_up", 140, 240)
    browser_stroke(pad, [(60, 40)])                          # a tap
    assert len(pad.strokes) == 2 and pad.strokes[1] == [(60.0, 40.0)] and pad.drawing is None
    assert pad.image()[240, 140] == 255 and pad.image()[40, 60] == 255
    assert pad.models["CNN"].calls == warm_up + 3 and len(drawn) == 4 and pad.errors.outputs == ()
    assert pad.events == {"mouse_down": 2, "mouse_move": 2, "mouse_up": 2}


def test_a_stroke_that_leaves_and_comes_back_is_one_stroke(pad, drawn):
    """No button state, no pointer capture in ipycanvas: the moves after the mouse comes back are
    kept aside; the release over the canvas proves the button was held, and they join the stroke."""
    front_end(pad, "mouse_down", 40, 40)
    front_end(pad, "mouse_move", 240, 40)
    front_end(pad, "mouse_out", 281, 40)                      # leaves on the right: the ink shown ends here
    n = len(drawn)
    front_end(pad, "mouse_move", 279, 42)                     # back in, button held or not?
    front_end(pad, "mouse_move", 200, 100)
    assert len(drawn) == n and pad.strokes == [[(40.0, 40.0), (240.0, 40.0), (281.0, 40.0)]]
    front_end(pad, "mouse_up", 110, 250)                      # released here: it was held all the way
    assert pad.strokes == [[(40.0, 40.0), (240.0, 40.0), (281.0, 40.0), (279.0, 42.0), (200.0, 100.0), (110.0, 250.0)]]
    assert pad.drawing is None and "strokeLines" in drawn[-1] and pad.image()[250, 110] == 255


def test_a_release_outside_ends_the_stroke_at_the_edge(pad):
    """Released outside the canvas: the moves back in are hovering, dropped when the next press
    (the start of the next stroke) comes."""
    front_end(pad, "mouse_down", 40, 40)
    front_end(pad, "mouse_move", 240, 40)
    front_end(pad, "mouse_out", 281, 40)
    assert pad.prediction is not None                     # what was drawn is guessed when the mouse leaves
    front_end(pad, "mouse_move", 250, 150)                # hovering back in
    front_end(pad, "mouse_down", 140, 100)
    front_end(pad, "mouse_move", 140, 200)
    front_end(pad, "mouse_up", 140, 200)
    assert pad.strokes == [[(40.0, 40.0), (240.0, 40.0), (281.0, 40.0)], [(140.0, 100.0), (140.0, 200.0)]]
    assert pad.image()[150, 250] == 0


def test_a_new_view_gets_the_strokes(pad, drawn):
    """A reloaded page or a reopened notebook: ipycanvas's front end says "client_ready" and the
    pad repaints every stroke there, naming the canvas first (the new page's canvas manager does
    not know which canvas is current: ipycanvas #322). Re-running the cell makes a new, empty pad."""
    draw_one(pad, x=80)
    pad.on_touch_start([(200, 60)])
    pad.on_touch_move([(200, 200)])
    pad.on_touch_end()
    drawn.clear()
    front_end(pad, "client_ready")
    assert len(drawn) == 1 and drawn[0][0] == "switchCanvas" and drawn[0].count("strokeLines") == 2
    assert drawn[0].count("fillCircle") == 2 and pad.errors.outputs == ()
    other = pd.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)})
    assert other.strokes == [] and other.prediction is None
    other.set_strokes(pad.strokes)
    np.testing.assert_array_equal(other.image(), pad.image())
    assert other.prediction.topk == pad.prediction.topk


@pytest.mark.parametrize("bad, message", [
    ([[[1, float("nan")]]], "not finite"),
    ([[]], "non-empty list"),
    ([[[1, 2, 3]]], "must be (x, y)"),
    ([[[1, 2]], 3], "stroke 1 must be a non-empty list"),
])
def test_bad_strokes_are_refused(pad, bad, message):
    draw_one(pad)
    before = [list(s) for s in pad.strokes]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pad.set_strokes(bad)
    with pytest.raises(ValueError, match="must be a list of strokes"):
        pad.set_strokes("scribble")
    assert pad.strokes == before


def test_bad_points_from_the_browser_are_shown_not_used(pad):
    draw_one(pad)
    before = [list(s) for s in pad.strokes]
    front_end(pad, "mouse_down", float("nan"), 3.0)
    front_end(pad, "mouse_down", None, 3.0)
    assert error_text(pad).count("in the drawing pad") == 2 and "not finite" in error_text(pad)
    assert pad.strokes == before and pad.drawing is None


def test_model_selector_switches_model_and_times_each(pad):
    draw_one(pad)
    assert pad.prediction.label == "3"
    assert "CNN: 3 (" in pad.label.value
    pad.selector.value = "MLP"              # re-predicts with the other model at once
    assert pad.prediction.label == "8"
    assert "MLP: 8 (" in pad.label.value and "CNN" not in pad.label.value   # the label names the model
    assert "<b>MLP" in pad.timing.value
    assert len(pad.times["MLP"]) == 1 and all(0 < m <= s for m, s in pad.times["MLP"])


class SlowFirst(Fixed):
    """Fixed, but its first call takes 0.3 s, as a real model's warm-up does."""

    def forward(self, X):
        if self.calls == 0:
            time.sleep(0.3)
        return super().forward(X)


def test_timings_exclude_the_warm_up():
    p = pd.DrawingPad({"CNN": SlowFirst(3), "MLP": SlowFirst(8)})
    draw_one(p)
    p.selector.value = "MLP"
    for name in ("CNN", "MLP"):
        assert p.models[name].calls >= 2 and len(p.times[name]) >= 1
        assert max(m for m, _ in p.times[name]) < 0.1, (name, p.times[name])
    assert "not timed yet" not in p.timing.value


class Unsure(Fixed):
    """Logits 1.0 for 4 and 9, 0 elsewhere: 4 or 9, neither above 30 %."""

    def forward(self, X):
        self.calls += 1
        logits = torch.zeros(len(X), 10)
        logits[:, [4, 9]] = 1.0
        return logits


def test_the_pad_answers_as_predict_image_does():
    """One code path: the pad's answer is drawing.predict_image's on pad.image(), "not sure" included."""
    from mnist_course.drawing import predict_image

    p = pd.DrawingPad({"CNN": Unsure(), "MLP": Fixed(8)})
    draw_one(p)
    expected = predict_image(p.image(), p.models["CNN"]).to_dict()
    got = p.prediction.to_dict()
    for d in (expected, got):
        d.pop("seconds"), d.pop("model_seconds")
    assert got == expected and got["status"] == "not sure" and got["reason"] == "4 or 9?"
    assert "CNN: not sure: 4 or 9?" in p.label.value and "#2e7d32" not in p.chart.value


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
    draw_one(p)                             # must not raise into the widget's callback (which would hide it)
    assert isinstance(p.last_error, RuntimeError)
    assert "model exploded" in error_text(p) and "Traceback" in error_text(p)
    browser_stroke(p, [(10, 10), (100, 200)])  # the browser's messages too
    assert error_text(p).count("RuntimeError in the drawing pad: model exploded") == 2
    pad.on_mouse_down(float("nan"), 3.0)
    assert "not finite" in error_text(pad)


def test_bar_chart_html():
    probs = np.array([0.05, 0.6, 0.05, 0.3, 0, 0, 0, 0, 0, 0])
    html = pd.bar_chart_html(probs)
    assert html.count("display:flex") == 10
    assert "width:60.0%" in html and "width:30.0%" in html and "60.0%</span>" in html
    assert "%</span>" not in pd.bar_chart_html(None)


def test_pad_rejects_no_models_and_bad_sizes():
    with pytest.raises(ValueError, match="at least one model"):
        pd.DrawingPad({})
    with pytest.raises(ValueError, match="size must be an integer of at least 28"):
        pd.DrawingPad(Fixed(), size=20)
    with pytest.raises(ValueError, match="brush must be between 0 and size / 2"):
        pd.DrawingPad(Fixed(), brush=0)


def test_label_text():
    from mnist_course.drawing import Prediction

    probs = np.full(10, 0.01)
    probs[7] = 0.91
    assert pd.label_text(None, "CNN") == "Draw a digit"
    assert pd.label_text(Prediction(probs, [("7", 0.91)], None, 0.0), "CNN") == "CNN: 7 (91.0 %)"
    assert (pd.label_text(Prediction(probs, [("7", 0.91)], None, 0.0, status="not sure", reason="7 or 1?"), "MLP")
            == "MLP: not sure: 7 or 1?")
    assert (pd.label_text(Prediction(None, [], None, 0.0, status="no digit", reason="too little structure"), "CNN")
            == "no digit (too little structure)")


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




def tap(pad, x, y):
    pad.on_mouse_down(x, y)
    pad.on_mouse_up(x, y)


def line(pad, start, end, steps=10):
    (x0, y0), (x1, y1) = start, end
    pad.on_mouse_down(x0, y0)
    for t in np.linspace(0, 1, steps)[1:]:
        pad.on_mouse_move(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    pad.on_mouse_up(x1, y1)


@pytest.mark.parametrize("scribble", ["a tap", "two taps", "a short dash", "a short slanted dash", "a long bar"])
def test_taps_and_dashes_are_no_confident_digit(course_cnn, scribble):
    """The previous preprocessing: a single click gave "0 (99.7 %)", a lone bar "2 (99.4 %)". Not digits: the pad
    must say "no digit" or "not sure", through the same code path as predict_image."""
    model, mean, std, where = course_cnn
    p = pd.DrawingPad({"CNN": model}, mean=mean, std=std)
    if scribble == "a tap":
        tap(p, 140, 140)
    elif scribble == "two taps":
        tap(p, 100, 120)
        tap(p, 180, 150)
    elif scribble == "a short dash":
        line(p, (120, 140), (160, 140))
    elif scribble == "a short slanted dash":
        line(p, (130, 130), (155, 160))
    else:
        line(p, (40, 140), (240, 140))
    assert p.prediction.status != "digit", f"{scribble}: {p.prediction} ({where})"
    assert p.prediction.label is None and "CNN: " not in p.label.value or "not sure" in p.label.value


def test_a_filled_pad_is_ink_everywhere(course_cnn):
    """The previous preprocessing: a filled canvas gave "0 (99 %)". The pad reads its canvas as white ink on black
    (ink="light"), so a pad painted over is "no digit (ink everywhere)", not a digit on dark paper."""
    model, mean, std, where = course_cnn
    p = pd.DrawingPad({"CNN": model}, mean=mean, std=std)
    for y in range(0, 281, 12):
        line(p, (0, y), (280, y), steps=4)
    assert p.prediction.status == "no digit" and p.prediction.reason == "ink everywhere", f"{p.prediction} ({where})"


SHAPES = {  # digits drawn as strokes in a unit square (x right, y down)
    "0": [list(zip(0.5 + 0.32 * np.sin(2 * np.pi * np.linspace(0, 1, 30)),
                   0.5 - 0.5 * np.cos(2 * np.pi * np.linspace(0, 1, 30))))],
    "1": [[(0.5, 0.0), (0.52, 1.0)]],
    "2": [list(zip(0.5 - 0.4 * np.cos(np.linspace(0, 1.2 * np.pi, 15)),
                   0.3 - 0.3 * np.sin(np.linspace(0, 1.2 * np.pi, 15)))) + [(0.1, 1.0), (0.9, 1.0)]],
    "3": [list(zip(0.45 + 0.4 * np.sin(np.linspace(0, np.pi, 30)), 0.25 - 0.25 * np.cos(np.linspace(0, np.pi, 30))))
          + list(zip(0.45 + 0.45 * np.sin(np.linspace(0, np.pi, 30)), 0.75 - 0.25 * np.cos(np.linspace(0, np.pi, 30))))],
    "4": [[(0.6, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
    "7": [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)]],
}


@pytest.mark.parametrize("height", [60, 120, 250])
def test_small_digits_are_not_blobs(course_cnn, height):
    """The default brush (1/16 of the frame) keeps digits drawn 60 px high readable: the crop
    enlarges their strokes, and a 20 px brush (the old default) or 23 px turns some into blobs."""
    model, mean, std, where = course_cnn
    p = pd.DrawingPad({"CNN": model}, mean=mean, std=std)
    wrong = {}
    for digit, strokes in SHAPES.items():
        p.set_strokes([[(140 + (x - 0.5) * height, 140 + (y - 0.5) * height) for x, y in s] for s in strokes])
        if p.prediction.label != digit:
            wrong[digit] = str(p.prediction)
    assert not wrong, f"drawn {height} px high with a {p.brush:.1f} px brush ({where}): {wrong}"
