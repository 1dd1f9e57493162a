"""The drawing pad of notebook 08 (mnist_course.pad), driven through its handlers and through the
messages its browser front end sends (the synced `strokes` trait), without a browser."""

from __future__ import annotations

import json
import time

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


def front_end(pad, strokes):
    """What the browser sends when its strokes change: a comm "update" of the `strokes` trait."""
    pad.canvas._handle_msg({"content": {"data": {"method": "update", "state": {"strokes": strokes},
                                                 "buffer_paths": []}}, "buffers": []})


def error_text(pad) -> str:
    return "".join(o["text"] for o in pad.errors.outputs)


def test_pad_starts_empty(pad):
    assert pad.strokes == [] and pad.prediction is None and pad.canvas.strokes == []
    assert "Draw a digit" in pad.label.value
    assert "CNN not timed yet" in pad.timing.value and "MLP not timed yet" in pad.timing.value
    assert pad.selector.options == ("CNN", "MLP")
    assert pad.canvas.size == 280 and pad.brush == pytest.approx(280 / 16)
    assert pad.canvas.brush == pad.brush


def test_mouse_strokes_are_kept_and_predicted(pad):
    draw_one(pad)
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21
    assert pad.strokes[0][0] == (140.0, 40.0) and pad.strokes[0][-1] == (140.0, 240.0)
    assert pad.prediction.label == "3"
    assert "CNN: 3 (85.8 %)" in pad.label.value     # Fixed(3): softmax of +2 vs nine -2
    assert pad.canvas.strokes == [[[140.0, float(y)] for y in range(40, 241, 10)]]   # what the views show
    assert pad.prediction.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert f"width:{100 * pad.prediction.probs[3]:.1f}%" in pad.chart.value
    assert pad.chart.value.count("#2e7d32") == 1            # one best bar
    assert pad.input_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert pad.errors.outputs == ()
    img = pad.image()
    assert img.shape == (280, 280) and img[40:241, 140].all() and img[:, :120].max() == 0


def test_hovering_costs_the_kernel_nothing(pad):
    """Moves without a pressed button (before and after a stroke) change no state, send nothing
    to the browser and call no model."""
    changes = []
    pad.canvas.observe(changes.append, names="strokes")
    warm_up = pad.models["CNN"].calls
    pad.on_mouse_move(10, 10)
    pad.on_mouse_move(50, 50)
    assert pad.strokes == [] and pad.prediction is None and changes == [] and pad.models["CNN"].calls == warm_up
    draw_one(pad)
    n_changes, calls, prediction = len(changes), pad.models["CNN"].calls, pad.prediction
    for i in range(20):
        pad.clock_.t += 1.0
        pad.on_mouse_move(20 + 5 * i, 30)
    assert len(changes) == n_changes and pad.models["CNN"].calls == calls and pad.prediction is prediction
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21 and pad.errors.outputs == ()


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


def test_undo_and_clear(pad):
    draw_one(pad, x=80)
    draw_one(pad, x=200)
    assert len(pad.strokes) == 2
    pad.undo_button.click()
    assert len(pad.strokes) == 1 and pad.strokes[0][0][0] == 80
    assert pad.image()[:, 200].max() == 0 and pad.image()[100, 80] == 255
    pad.clear_button.click()
    assert pad.strokes == [] and pad.prediction.blank and pad.canvas.strokes == []
    assert "no digit (no ink)" in pad.label.value and "#2e7d32" not in pad.chart.value
    pad.undo()                              # undo on an empty pad is harmless
    assert pad.errors.outputs == ()


def test_touch_draws_like_the_mouse(pad):
    pad.on_touch_start([(140, 40)])
    for y in range(50, 241, 10):
        pad.on_touch_move([(140, y), (10, 10)])   # a second finger is ignored
    pad.on_touch_end([])
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) == 21
    assert pad.prediction.label == "3" and not pad.drawing


def test_browser_strokes_are_predicted(pad):
    """The front end sends the whole list of strokes (frame pixels) while drawing and when a
    stroke ends: each update is rasterised and predicted; nothing is sent back as a new change."""
    sent = []
    pad.canvas.observe(sent.append, names="strokes")
    warm_up = pad.models["CNN"].calls
    front_end(pad, [[[140, 40], [140, 140]]])                        # live, mid-stroke
    assert pad.strokes == [[(140.0, 40.0), (140.0, 140.0)]] and pad.prediction.label == "3"
    front_end(pad, [[[140, 40], [140, 140], [140, 240]], [[60, 40]]])  # a second stroke, a tap
    assert len(pad.strokes) == 2 and pad.strokes[1] == [(60.0, 40.0)] and not pad.drawing
    assert pad.image()[240, 140] == 255 and pad.image()[40, 60] == 255
    assert pad.models["CNN"].calls == warm_up + 2 and len(sent) == 2 and pad.errors.outputs == ()


@pytest.mark.parametrize("bad, message", [
    ([[[1, float("nan")]]], "not finite"),
    ([[]], "non-empty list"),
    ([[[1, 2, 3]]], "must be (x, y)"),
    ([[[1, 2]], 3], "stroke 1 must be a non-empty list"),
])
def test_bad_strokes_from_the_browser_are_shown_not_used(pad, bad, message):
    draw_one(pad)
    before = [list(s) for s in pad.strokes]
    front_end(pad, bad)
    assert message in error_text(pad) and pad.strokes == before
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pad.set_strokes(bad)
    with pytest.raises(ValueError, match="must be a list of strokes"):
        pad.set_strokes("scribble")


def test_strokes_round_trip_and_a_new_view_gets_them(pad):
    """The state a new view (reloaded page, reopened notebook) fetches holds the strokes drawn so
    far; sent back by a front end, they give the same image and the same answer. Re-running the
    cell makes a new, empty pad."""
    draw_one(pad, x=80)
    pad.on_touch_start([(200, 60)])
    pad.on_touch_move([(200, 200)])
    pad.on_touch_end()
    state = json.loads(json.dumps(pad.canvas.get_state()))          # what goes over the wire
    assert state["strokes"] == [[list(p) for p in s] for s in pad.strokes] and state["size"] == 280
    other = pd.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)})
    assert other.strokes == [] and other.canvas.get_state()["strokes"] == []
    front_end(other, state["strokes"])
    assert other.strokes == pad.strokes
    np.testing.assert_array_equal(other.image(), pad.image())
    assert other.prediction.topk == pad.prediction.topk
    pad.set_strokes(pad.strokes[:1])
    assert pad.canvas.get_state()["strokes"] == state["strokes"][:1]


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
    front_end(p, [[[10, 10], [100, 200]]])  # the browser's messages too
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
