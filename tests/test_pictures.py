"""The realistic pictures: reproducible from a seed, labelled, dark digits on light paper inside the
picture, conditions recorded as applied."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mnist_course import pictures

CLEAN = {"noise": 0.0, "gradient": 0.0, "texture": 0.0, "blur": 0.0, "jpeg": 0}


def fake_digits(n=12):
    """uint8 (n, 28, 28) white-on-black 'digits' and labels: label 0 a tall bar, label 1 a wide bar."""
    X = np.zeros((n, 28, 28), np.uint8)
    y = np.arange(n) % 2
    for i in range(n):
        if y[i] == 0:
            X[i, 4:24, 12:16] = 255          # tall: 20 x 4
        else:
            X[i, 12:16, 4:24] = 255          # wide: 4 x 20
        X[i, 4 + i % 3, 4] = 128             # make each image a little different
    return X, y


def seven():
    """A hand-made uint8 (28, 28) '7' that has no symmetry."""
    d = np.zeros((28, 28), np.uint8)
    d[5:8, 6:22] = 255
    for r in range(8, 24):
        c = 21 - (r - 8) // 2
        d[r, c - 1: c + 2] = 255
    return d


def test_same_seed_same_bytes_different_seed_different_pictures():
    X, y = fake_digits()
    a = pictures.picture_set(X, y, 6, 5, seed=3)
    b = pictures.picture_set(X, y, 6, 5, seed=3)
    c = pictures.picture_set(X, y, 6, 5, seed=4)
    assert [(im.tobytes(), lab, k) for im, lab, k in a] == [(im.tobytes(), lab, k) for im, lab, k in b]
    assert all(im.dtype == np.uint8 and im.ndim == 2 for im, _, _ in a)
    differ = [ia.shape != ic.shape or not np.array_equal(ia, ic) for (ia, _, _), (ic, _, _) in zip(a, c)]
    assert all(differ)


def test_a_smaller_set_is_a_prefix_of_a_larger_one():
    X, y = fake_digits()
    small = pictures.picture_set(X, y, 3, 2, seed=0)
    big = pictures.picture_set(X, y, 5, 4, seed=0)
    same = [(im.tobytes(), lab, k) for im, lab, k in small]
    assert same[:3] == [(im.tobytes(), lab, k) for im, lab, k in big[:3]]
    assert same[3:] == [(im.tobytes(), lab, k) for im, lab, k in big[5:7]]


def _ink_box_shape(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the largest dark blob: smoothed, below half the paper's brightness."""
    s = ndimage.gaussian_filter(image.astype(np.float32) / 255, 2.0)
    mask = s < 0.5 * np.percentile(s, 90)
    labels, n = ndimage.label(mask)
    assert n >= 1, "no dark ink found"
    biggest = 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, n + 1))))
    rows, cols = np.nonzero(labels == biggest)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_labels_go_with_their_digits_and_blank_pictures_have_none():
    X, y = fake_digits(12)
    pics = pictures.picture_set(X, y, 12, 10, seed=1)
    digits, blanks = pics[:12], pics[12:]
    assert sorted(lab for _, lab, _ in digits) == sorted(y.tolist())       # every digit once
    for image, label, kind in digits:
        h, w = _ink_box_shape(image)
        assert (h > 2 * w) if label == 0 else (w > 2 * h), (label, kind, h, w)
        assert kind.startswith("digit: ")
    assert [lab for _, lab, _ in blanks] == [None] * 10
    assert [pictures.conditions(k)["kind"] for _, _, k in blanks] == list(pictures.BLANK_KINDS) * 2


def test_conditions_are_recorded_and_within_the_stated_ranges():
    X, y = fake_digits()
    pics = pictures.picture_set(X, y, 12, 10, seed=2)
    for image, _, kind in pics:
        c = pictures.conditions(kind)
        assert {"noise", "gradient", "texture", "blur", "jpeg", "size"} <= set(c), kind
        assert 0.0 <= c["noise"] <= pictures.MAX_NOISE and 0.0 <= c["gradient"] <= 0.4
        assert c["size"] == image.shape
        assert all(pictures.SIZE_RANGE[0] <= s <= pictures.SIZE_RANGE[1] for s in image.shape)
    gradients = [pictures.conditions(k)["gradient"] for _, lab, k in pics if lab is not None]
    assert 0 < sum(g > 0 for g in gradients) < len(gradients)     # some with a lighting gradient, some without


@pytest.mark.parametrize("noise", [0.02, 0.08])
def test_the_recorded_noise_is_the_noise_in_the_picture(noise):
    image, kind = pictures.no_digit_picture(np.random.default_rng(0), "empty page", **dict(CLEAN, noise=noise))
    assert pictures.conditions(kind)["noise"] == pytest.approx(noise, abs=5e-4)
    assert image.astype(float).std() / 255 == pytest.approx(noise, rel=0.1)


def test_a_gradient_darkens_one_side_by_the_recorded_fraction():
    image, kind = pictures.no_digit_picture(np.random.default_rng(0), "empty page",
                                            **dict(CLEAN, gradient=0.3, angle=0.0, light=1.0, paper=1.0))
    left, right = image[:, 0].mean(), image[:, -1].mean()
    assert right / left == pytest.approx(0.7, abs=0.01) and pictures.conditions(kind)["gradient"] == 0.3


def test_the_digit_is_dark_on_light_inside_the_picture_and_looks_like_the_digit():
    digit = seven()
    image, info = pictures.render_digit(digit, np.random.default_rng(5), rotate=0.0, height=0.5, size=(150, 200),
                                        ink=0.1, paper=0.9, light=1.0, **CLEAN)
    top, left, bottom, right = info["box"]
    assert 0 < top < bottom < 150 and 0 < left < right < 200
    paper = round(0.9 * 255)
    outside = np.ones(image.shape, bool)
    outside[top:bottom, left:right] = False
    assert np.all(image[outside] == paper)                        # light paper everywhere else
    inside = image[top:bottom, left:right]
    assert inside.min() == round(0.1 * 255) and (bottom - top) == pytest.approx(0.5 * 150, rel=0.1)
    # the ink, cropped and shrunk back to the digit's own box, is the digit (white on black)
    small = np.asarray(Image.fromarray(255 - inside).resize((16, 18), Image.Resampling.BOX), np.float32)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    original = np.asarray(Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
                          .resize((16, 18), Image.Resampling.BOX), np.float32)
    assert np.corrcoef(small.ravel(), original.ravel())[0, 1] > 0.9
    flipped = np.corrcoef(small[:, ::-1].ravel(), original.ravel())[0, 1]
    assert flipped < 0.7                                           # the check can tell a mirrored digit


def test_realistic_digit_is_render_digits_image():
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(pictures.realistic_digit(seven(), rng_a), pictures.render_digit(seven(), rng_b)[0])


def test_bad_input_gets_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="28, 28"):
        pictures.realistic_digit(np.zeros((32, 32), np.uint8), rng)
    with pytest.raises(ValueError, match="no ink"):
        pictures.realistic_digit(np.zeros((28, 28), np.uint8), rng)
    with pytest.raises(TypeError, match="default_rng"):
        pictures.realistic_digit(seven(), 0)
    with pytest.raises(TypeError, match="unknown picture option"):
        pictures.realistic_digit(seven(), rng, nosie=0.1)
    with pytest.raises(ValueError, match="BLANK_KINDS|choose one of"):
        pictures.no_digit_picture(rng, "cat")
    X, y = fake_digits(4)
    with pytest.raises(ValueError, match="between 0 and 4"):
        pictures.picture_set(X, y, 5, 0)
