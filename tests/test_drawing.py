"""Tests for mnist_course.drawing: MNIST-style preprocessing, predict_image and the drawing pad.

The pad is driven by calling its mouse/touch handlers directly, as ipycanvas would: no browser.
The browser test is tests/test_browser.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import mnist_course as mc
from mnist_course import drawing as dr

# ------------------------------------------------------------------------------------ helpers


def bar_image(h=200, w=50, size=280, top=30, left=100) -> np.ndarray:
    """uint8 (size, size): a white h x w rectangle on black."""
    a = np.zeros((size, size), np.uint8)
    a[top: top + h, left: left + w] = 255
    return a


class Fixed(nn.Module):
    """A stand-in model: always the same logits, favouring class `label`; counts its calls."""

    def __init__(self, label: int = 3):
        super().__init__()
        self.bias = nn.Parameter(torch.full((10,), -2.0).index_fill(0, torch.tensor([label]), 2.0))
        self.calls = 0

    def forward(self, X):
        assert X.shape[1:] == (1, 28, 28) and X.dtype == torch.float32
        self.calls += 1
        return self.bias.expand(len(X), 10)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def draw_one(pad, x=140, y0=40, y1=240, step=10):
    """A vertical stroke, as the mouse would draw a '1'."""
    pad.on_mouse_down(x, y0)
    for y in range(y0 + step, y1 + 1, step):
        pad.on_mouse_move(x, y)
    pad.on_mouse_up(x, y1)


# ------------------------------------------------------------------------------ preprocessing


def test_preprocess_follows_the_mnist_recipe():
    pre = dr.preprocess(bar_image(h=200, w=50))
    img = pre.image
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    ink = img > 0.5
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert rows[-1] - rows[0] + 1 == 20             # longer side fitted to 20 pixels
    assert cols[-1] - cols[0] + 1 == 5              # aspect ratio kept: 200x50 -> 20x5
    cy, cx = dr.centre_of_mass(img)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert not pre.inverted
    assert list(pre.steps)[-1] == "centred in 28x28"


def test_preprocess_leaves_mnist_digits_almost_unchanged(mnist):
    X = mnist.X_test[:200].numpy()
    diffs = [np.abs(dr.preprocess(x).image - x / 255.0).mean() for x in X]
    assert np.mean(diffs) < 0.01


def test_dark_ink_on_light_paper_is_inverted():
    light = dr.preprocess(255 - bar_image())
    dark = dr.preprocess(bar_image())
    assert light.inverted and not dark.inverted
    np.testing.assert_allclose(light.image, dark.image, atol=1e-5)


def test_grey_photo_background_is_stretched_to_black():
    a = np.full((120, 90), 200, np.uint8)          # grey paper ...
    a[20:100, 40:50] = 40                          # ... with a dark pencil stroke
    pre = dr.preprocess(a)
    assert pre.inverted
    assert pre.image.min() == 0.0 and pre.image.max() > 0.95


@pytest.mark.parametrize("kind", ["float", "rgb", "rgba_dark_ink", "rgba_light_ink", "tensor_1hw", "bool"])
def test_every_input_kind_gives_the_same_digit(kind):
    base = bar_image()
    expected = dr.preprocess(base).image
    if kind == "float":
        src = base.astype(np.float32) / 255
    elif kind == "rgb":
        src = np.repeat(base[..., None], 3, axis=2)
    elif kind == "rgba_dark_ink":                  # black ink on a transparent background
        src = np.zeros((*base.shape, 4), np.uint8)
        src[..., 3] = base
    elif kind == "rgba_light_ink":                 # white ink on a transparent background
        src = np.full((*base.shape, 4), 255, np.uint8)
        src[..., 3] = base
    elif kind == "tensor_1hw":
        src = torch.from_numpy(base)[None]
    else:
        src = base > 127
    np.testing.assert_allclose(dr.preprocess(src).image, expected, atol=0.02)


@pytest.mark.parametrize("fmt,mode", [("PNG", "L"), ("PNG", "RGBA"), ("JPEG", "RGB")])
def test_image_files_of_any_size_and_mode(tmp_path, fmt, mode):
    path = tmp_path / f"digit.{fmt.lower()}"
    Image.fromarray(255 - bar_image(size=280)).resize((333, 517)).convert(mode).save(path, format=fmt)
    pred = dr.predict_image(path, Fixed(7), k=3)
    assert pred.label == "7" and len(pred.topk) == 3
    assert pred.image.shape == (28, 28)
    assert abs(pred.probs.sum() - 1) < 1e-5
    assert pred.topk[0][1] >= pred.topk[1][1] >= pred.topk[2][1]


@pytest.mark.parametrize("image", [
    np.zeros((280, 280), np.uint8),                           # black canvas
    np.full((280, 280), 255, np.uint8),                       # white paper
    np.full((50, 60, 3), 128, np.uint8),                      # flat grey
    np.random.default_rng(0).integers(0, 20, (280, 280)).astype(np.uint8),  # faint noise
    np.pad(np.full((3, 3), 255, np.uint8), 138),              # a 3x3 speck on 280x280
])
def test_blank_or_nearly_blank_gives_no_digit(image):
    model = Fixed(5)
    assert dr.preprocess(image).blank
    pred = dr.predict_image(image, model)
    assert pred.blank and pred.label is None and pred.topk == [] and str(pred) == "no digit"
    assert model.calls == 0                                    # no guess was made


def test_bad_inputs_raise_clear_errors(tmp_path):
    model = Fixed()
    with pytest.raises(FileNotFoundError, match="no image file"):
        dr.predict_image(tmp_path / "missing.png", model)
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not a picture")
    with pytest.raises(ValueError, match="not a readable image"):
        dr.predict_image(bogus, model)
    with pytest.raises(ValueError, match="empty"):
        dr.predict_image(np.zeros((0, 28)), model)
    with pytest.raises(ValueError, match="empty"):
        dr.predict_image(Image.new("L", (0, 0)), model)
    nan = np.zeros((28, 28), np.float32)
    nan[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dr.predict_image(nan, model)
    with pytest.raises(ValueError, match="shape"):
        dr.predict_image(np.zeros((28, 28, 2)), model)
    with pytest.raises(ValueError, match=r"\[0, 1\] or \[0, 255\]"):
        dr.predict_image(np.full((28, 28), -3.0), model)
    with pytest.raises(TypeError, match="file path"):
        dr.predict_image([[0, 1], [1, 0]], model)
    with pytest.raises(ValueError, match="k must be"):
        dr.predict_image(bar_image(), model, k=0)


def test_to_model_input_normalises():
    x = dr.to_model_input(np.ones((28, 28)), mean=0.5, std=0.25)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_rasterize_uses_a_round_brush():
    dot = dr.rasterize([[(100, 100)]], brush=20)
    ys, xs = np.nonzero(dot)
    assert 19 <= np.ptp(ys) + 1 <= 22 and 19 <= np.ptp(xs) + 1 <= 22
    assert abs(dot.astype(bool).sum() - np.pi * 10**2) < 0.15 * np.pi * 10**2   # a disc, not a square
    line = dr.rasterize([[(50, 100), (200, 100)]], brush=20)
    assert line[100, 40:211].all() and line[100, 30] == 0
    assert dr.rasterize([]).max() == 0


def test_draw_digit_on_canvas_is_seeded(mnist):
    a = dr.draw_digit_on_canvas(mnist.X_test[0].numpy(), np.random.default_rng(1))
    b = dr.draw_digit_on_canvas(mnist.X_test[0].numpy(), np.random.default_rng(1))
    assert a.shape == (280, 280) and a.dtype == np.uint8 and a.max() > 200
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------- the goal: redrawn test digits at >= 97 %


@pytest.fixture(scope="session")
def course_cnn(mnist):
    """(model, mean, std, where): the course's best CNN when models_dir() holds a fully trained one
    (test accuracy >= 98.5 %); otherwise a small CNN (16, 32 channels) trained here for one epoch on
    the 60,000 training digits (about a minute on 2 CPU cores) and kept in models_dir() for next time."""
    from mnist_course.models import build_model

    course = mc.models_dir(create=False) / "course_cnn.safetensors"
    if course.exists():
        from mnist_course.pretrained import load_course_model

        model, info = load_course_model("cnn", device="cpu", train_if_missing=False)
        if info["test_acc"] >= 0.985:
            return model.eval(), info["mean"], info["std"], f"course model {course}"
    model = build_model("cnn", channels=(16, 32), hidden=64)
    cache = mc.models_dir() / "drawing_test_cnn.pt"
    if cache.exists():
        try:
            model.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
            return model.eval(), mnist.mean, mnist.std, f"test CNN cached at {cache}"
        except (RuntimeError, OSError, ValueError):  # stale cache (the CNN class changed): retrain
            pass
    torch.manual_seed(0)
    model = build_model("cnn", channels=(16, 32), hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for X, y in mc.BatchIterator(mnist.normalize(mnist.X_train), mnist.y_train, batch_size=128,
                                 shuffle=True, seed=0):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), cache)
    return model.eval(), mnist.mean, mnist.std, "small CNN trained for 1 epoch in the test"


def test_redrawn_test_digits_are_recognised(mnist, course_cnn):
    """MNIST test digits redrawn on a 280x280 canvas at a random scale (4x-9x), offset and stroke
    thickness (eroded 1 px to dilated 2 px), then preprocessed: >= 97 % correct. Fast mode
    ($MNIST_COURSE_FAST=1, as in CI) checks 1,000 digits, full mode all 10,000."""
    model, mean, std, where = course_cnn
    n = 1000 if mc.fast_mode() else len(mnist.X_test)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(mnist.X_test))[:n]
    images = np.stack([dr.preprocess(dr.draw_digit_on_canvas(mnist.X_test[i].numpy(), rng)).image
                       for i in idx])
    with torch.no_grad():
        y_hat = model(dr.to_model_input(images, mean, std)).argmax(1)
        acc_redrawn = (y_hat == mnist.y_test[idx]).float().mean().item()
        acc_plain = (model(mnist.normalize(mnist.X_test[idx])).argmax(1) == mnist.y_test[idx]).float().mean().item()
    print(f"{where}: {n} digits, plain {acc_plain:.4f}, redrawn + preprocessed {acc_redrawn:.4f}")
    assert acc_redrawn >= 0.97, f"only {acc_redrawn:.2%} of redrawn digits recognised ({where}; plain {acc_plain:.2%})"


# ---------------------------------------------------------------------------- the drawing pad


@pytest.fixture()
def pad():
    clock = FakeClock()
    p = dr.DrawingPad({"CNN": Fixed(3), "MLP": Fixed(8)}, throttle=0.1, clock=clock)
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
    p = dr.DrawingPad({"broken": broken})
    broken.armed = True
    draw_one(p)                             # must not raise into ipycanvas (which would hide it)
    assert isinstance(p.last_error, RuntimeError)
    text = "".join(o["text"] for o in p.errors.outputs)
    assert "model exploded" in text and "Traceback" in text
    pad.on_mouse_down(float("nan"), 3.0)
    assert "not finite" in "".join(o["text"] for o in pad.errors.outputs)


def test_bar_chart_html():
    probs = np.array([0.05, 0.6, 0.05, 0.3, 0, 0, 0, 0, 0, 0])
    html = dr.bar_chart_html(probs)
    assert html.count("display:flex") == 10
    assert "width:60.0%" in html and "width:30.0%" in html and "60.0%</span>" in html
    assert "%</span>" not in dr.bar_chart_html(None)


def test_pad_rejects_no_models():
    with pytest.raises(ValueError, match="at least one model"):
        dr.DrawingPad({})


def test_pad_recognises_a_drawn_one(course_cnn):
    model, mean, std, _ = course_cnn
    p = dr.DrawingPad({"CNN": model}, mean=mean, std=std)
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


class Slow(Fixed):
    """Fixed, but every forward pass takes `delay` seconds (and notes the torch threads it ran with)."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay, self.threads = delay, set()

    def forward(self, X):
        time.sleep(self.delay)
        self.threads.add(torch.get_num_threads())
        return super().forward(X)


def test_latency_is_the_median_time_of_one_prediction():
    """Five canvases, each prediction 20 ms: one warm-up plus one prediction per image and repeat,
    and the median of one prediction (not the total, not preprocessing alone)."""
    model, delay = Slow(0.02), 0.02
    images = [bar_image(left=20 + 30 * i) for i in range(5)]
    seconds = dr.latency(model, images, repeats=2)
    assert model.calls == 1 + 2 * len(images)
    assert delay <= seconds < 3 * delay


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with dr.torch_threads(other) as used:
        assert used == other == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), dr.torch_threads(other):
        raise KeyError("an error inside the block")
    assert torch.get_num_threads() == before
    with dr.torch_threads(None) as used:
        assert used == before
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="num_threads"), dr.torch_threads(bad):
            pass
    assert torch.get_num_threads() == before


def test_benchmark_rows_time_each_model_with_the_asked_threads(mnist):
    """The rows name each model, report its median time (a 10 ms model cannot take less) and the
    threads it ran with; the caller's thread setting is restored."""
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    slow, fast = Slow(0.01), Slow(0.0)
    rows = dr.benchmark_rows({"slow": slow, "fast": fast}, n=3, threads=other)
    assert [r["model"] for r in rows] == ["slow", "fast"]
    assert rows[0]["ms"] >= 10 > rows[1]["ms"]
    assert all(r["threads"] == other for r in rows) and slow.threads == fast.threads == {other}
    assert torch.get_num_threads() == before
