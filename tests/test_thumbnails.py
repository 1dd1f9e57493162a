"""Digits enlarged from tiny pictures (pictures as people really take them): a thumbnail a few
pixels high scaled up has no detail of its own, and the model was confidently wrong on it more often than
on any other kind of picture (the benchmark's held-out 6x6 thumbnails scaled up to 48 px: 2.0 % in both
polarities, the goal is at most 1 %). drawing.detail measures the detail a digit has at its own size (the
share of its 28x28 input lost when its box is shrunk to 8 pixels and enlarged back); drawing.judge asks
for LOW_DETAIL_NOT_SURE_BELOW when it is below LOW_DETAIL_BELOW, and the "not sure" says why.

Only the benchmark's *dev* part is used here (mnist_course.bench.conditions.DEV: MNIST test digits
0..4999, which tuning may look at), with the CNN of tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_course import drawing
from mnist_course.bench import conditions

N = 300          # pictures a thumbnail row, as the benchmark
N_OTHER = 100    # pictures a row of the other conditions
THUMB = conditions.Condition("thumb", 8)
# Rows whose digits have their ordinary detail (MNIST's 20-pixel digits at 28 px or larger): at most 0.3 %
# of them are below LOW_DETAIL_BELOW (measured on 300 a row and polarity, every dev row but the thumbnails,
# tight crops of 16 px (1 %: small pictures themselves) and thick pens). A sample of them, to keep it short:
ORDINARY = [conditions.Condition("tight", 28), conditions.Condition("tight", 200), conditions.Condition("margin", 25),
            conditions.Condition("rotate", 15), conditions.Condition("jpeg", 30)]


def _pictures(mnist, condition, polarity, n):
    X, y = mnist.X_test.numpy(), mnist.y_test.numpy()
    row = conditions.DEV.conditions.index(condition)
    return conditions.row_pictures(conditions.DEV, row, polarity, X, y, n)


@pytest.fixture(scope="module")
def thumbnails(mnist):
    """{polarity: (drawing.preprocess of each 8x8 thumbnail scaled up, labels)}: N pictures each."""
    out = {}
    for polarity in conditions.POLARITIES:
        images, labels = _pictures(mnist, THUMB, polarity, N)
        out[polarity] = [drawing.preprocess(image) for image in images], labels
    return out


def test_detail_tells_enlarged_thumbnails_from_ordinary_pictures(mnist, thumbnails):
    # No model: what the rule looks at. Measured: 8x8 thumbnails scaled up 93.9 / 97.6 % below
    # LOW_DETAIL_BELOW (dark / light), the ordinary rows at most 0.3 %. Seen rejecting a detail of the whole 28x28 field rather than
    # the digit's box (0.3 % of the dark thumbnails below) and shrinking to 12 pixels instead of 8 (37 %
    # of the dark tight crops of 28 px below).
    for polarity in conditions.POLARITIES:
        pres, _ = thumbnails[polarity]
        low = np.mean([drawing.detail(p.image) < drawing.LOW_DETAIL_BELOW for p in pres if not p.blank])
        assert low >= 0.85, f"only {low:.1%} of the {polarity} 8x8 thumbnails have little detail"
        for condition in ORDINARY:
            images, _ = _pictures(mnist, condition, polarity, N_OTHER)
            pres = [p for p in map(drawing.preprocess, images) if not p.blank]
            low = np.mean([drawing.detail(p.image) < drawing.LOW_DETAIL_BELOW for p in pres])
            assert low <= 0.02, f"{low:.1%} of the {polarity} pictures '{condition.name}' said to have little detail"


def test_enlarged_thumbnails_are_rarely_confidently_wrong(course_cnn, thumbnails):
    # Measured with conftest's small CNN (1 epoch), dark / light: confident wrong 0.3 / 0.3 % (1.3 / 0.3 %
    # without the rule: a judge that ignores the detail fails on the dark row), 62.0 / 60.0 % right;
    # the course CNN: 0.3 / 0.0 % (1.0 / 0.0 % without), 81.3 / 84.0 % right. As predict_image answers.
    # Also seen rejecting a "not sure" that does not say why, and the detail of the whole 28x28 field.
    model, mean, std, where = course_cnn
    for polarity in conditions.POLARITIES:
        pres, labels = thumbnails[polarity]
        answers, reasons = [], []
        for pre in pres:
            if pre.blank:
                answers.append(("no digit", None))
                continue
            probs = drawing.predict_probs(model, pre.image, mean, std)
            status, reason = drawing.judge(probs, image=pre.image)
            answers.append((status, int(np.argmax(probs)) if status == "digit" else None))
            if status == "not sure":
                reasons.append(reason)
        scored = conditions.score_row(answers, labels)
        assert scored["confident_wrong"] <= 0.01, (polarity, scored, where)
        told = np.mean(["little detail" in r for r in reasons])
        assert told >= 0.5, f"only {told:.0%} of the {polarity} thumbnails' 'not sure' say why ({where})"


def _enlarged(digit: np.ndarray, small: int) -> np.ndarray:
    """A uint8 MNIST digit cropped to its ink, shrunk to `small` pixels and enlarged 8 times (dark on light)."""
    return conditions.make_picture(digit, conditions.Condition("thumb", small), "dark", np.random.default_rng(0))


def test_judge_asks_more_of_a_digit_with_little_detail(mnist):
    digit = mnist.X_test[0].numpy()                      # a 7
    sharp = drawing.preprocess(digit).image
    smooth = drawing.preprocess(_enlarged(digit, 6)).image
    assert drawing.detail(sharp) > 0.1 > drawing.LOW_DETAIL_BELOW > drawing.detail(smooth)
    probs = np.array([0, 0, 0, 0, 0, 0, 0, 0.95, 0, 0.05])
    assert drawing.judge(probs, image=sharp) == ("digit", None)
    status, why = drawing.judge(probs, image=smooth)
    assert status == "not sure" and why.startswith("7 or 9?") and "little detail" in why and "larger" in why
    assert drawing.judge(np.eye(10)[7], image=smooth) == ("digit", None)          # sure enough
    assert drawing.judge(probs) == ("digit", None)                                # no image: no rule


def test_detail_of_simple_shapes():
    assert np.isnan(drawing.detail(np.zeros((28, 28))))                           # no ink: cannot tell
    small = np.zeros((28, 28))
    small[np.arange(10, 16), np.arange(12, 18)] = 1.0
    assert drawing.detail(small) == 0.0                                           # at most 8 pixels: all of it kept
    # A block or a ruler-straight bar keeps its edges when its box is shrunk (they lie on the box): detail
    # cannot tell (NaN), and judge asks no more of it. Seen failing without BOX_OUTLINE_INK (a plain bar,
    # as the tests' stand-in pictures draw, was "not sure" with a model 86 % sure).
    bar = drawing.preprocess(drawing.rasterize([[(140, 40), (140, 240)]], brush=20), ink="light").image
    assert np.isnan(drawing.detail(bar))
    assert drawing.judge(np.array([0.86] + [0.14 / 9] * 9), image=bar) == ("digit", None)
    # A sharp ring (1 pixel wide, 20 across) loses much of itself at 8 pixels (0.41); the same ring
    # enlarged from 5 pixels (Lanczos, as a picture viewer does) loses little (0.002).
    yy, xx = np.mgrid[0:28, 0:28]
    ring = np.clip(1.0 - np.abs(np.hypot(yy - 13.5, xx - 13.5) - 9.0), 0.0, 1.0).astype(np.float32)
    assert drawing.detail(ring) > 0.1
    box = np.asarray(Image.fromarray(ring[4:24, 4:24]).resize((5, 5), Image.Resampling.LANCZOS)
                     .resize((20, 20), Image.Resampling.LANCZOS))
    blurred = np.zeros((28, 28), np.float32)
    blurred[4:24, 4:24] = np.clip(box, 0.0, 1.0)
    assert drawing.detail(blurred) < drawing.LOW_DETAIL_BELOW


@pytest.mark.parametrize("n, m", [(20, 8), (8, 20), (17, 7), (5, 5)])
def test_lanczos_matrix_is_pillows_resize(n, m):
    rng = np.random.default_rng(n * 100 + m)
    a = rng.random((n, 3)).astype(np.float32)
    want = np.asarray(Image.fromarray(a, mode="F").resize((3, m), Image.Resampling.LANCZOS))
    np.testing.assert_allclose(drawing._lanczos_matrix(n, m) @ a, want, atol=1e-5)
