"""Digits cropped to their ink with no margin (a user's report: 9-36 % right, up to 91 % "no digit").

300 MNIST test digits of the benchmark's *dev* part (mnist_course.bench.conditions.DEV: digits
0..4999, which tuning may look at), each cropped to the bounding box of its ink and scaled so its
longer side is 16, 28 or 64 pixels, in both polarities (dark ink on light, light on dark), through
drawing.predict_image with the test CNN of tests/conftest.py. Before drawing's crop pass (a
background from the picture's border, a margin added) about 15-45 % were right; the bounds below
leave a margin under what was measured with the small CNN of conftest (see the numbers next to them).
"""

from __future__ import annotations

import numpy as np
import pytest

from mnist_course import drawing
from mnist_course.bench import conditions

N = 300
# (longer side in pixels) -> the least fraction right, the most fraction confident and wrong, per polarity.
# Measured with conftest's small CNN (1 epoch), dark / light: 16 px 91.3 / 93.3 % right, 0.7 / 2.0 %
# confident wrong; 28 px 92.7 / 94.0 %, 0.3 / 0.7 %; 64 px 93.3 / 95.7 %, 1.3 / 0.0 %. Without the crop
# pass (drawing._crop_pass returning None: the old preprocessing) 16 px was 14.3 / 15.3 % right.
BOUNDS = {16: (0.88, 0.035), 28: (0.89, 0.03), 64: (0.89, 0.03)}


def _answers(images, model, mean, std):
    out = []
    for image in images:
        pred = drawing.predict_image(image, model, k=1, mean=mean, std=std)
        out.append((pred.status, int(pred.topk[0][0]) if pred.status == "digit" else None))
    return out


@pytest.mark.parametrize("side", sorted(BOUNDS))
def test_tight_crops_are_read_in_both_polarities(mnist, course_cnn, side):
    model, mean, std, where = course_cnn
    X, y = mnist.X_test.numpy(), mnist.y_test.numpy()
    row = conditions.DEV.conditions.index(conditions.Condition("tight", side))
    least_right, most_wrong = BOUNDS[side]
    for polarity in conditions.POLARITIES:
        images, labels = conditions.row_pictures(conditions.DEV, row, polarity, X, y, N)
        assert all(lab is not None for lab in labels) and len(images) == N
        scored = conditions.score_row(_answers(images, model, mean, std), labels)
        assert scored["right"] >= least_right, (side, polarity, scored, where)
        assert scored["confident_wrong"] <= most_wrong, (side, polarity, scored, where)


def test_a_tight_crop_touches_every_side_and_keeps_its_polarity(mnist):
    X = mnist.X_test.numpy()
    rng = np.random.default_rng(0)
    light = conditions.make_picture(X[0], conditions.Condition("tight", 64), "light", rng)
    dark = conditions.make_picture(X[0], conditions.Condition("tight", 64), "dark", rng)
    assert max(light.shape) == 64 and np.array_equal(dark, 255 - light)
    for side in (light[0], light[-1], light[:, 0], light[:, -1]):
        assert side.max() > 0                       # no margin: the ink reaches every side
    pre = drawing.preprocess(dark)
    assert not pre.blank and pre.inverted and pre.stats.get("crop") == 1.0
