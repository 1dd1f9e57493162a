"""The checks of notebook 12, draw a digit (notebooks/12_draw_a_digit.ipynb): a centre of mass (12.1),
cropping to the ink (12.2), centring by the centre of mass (12.3), fitting into a 20x20 box (12.4).

Named after the notebook's number, as the exercise ids are ("12.k"), so an id says which module
checks it; the reference solutions are in :mod:`.solutions`, the registry and the shared helpers in
:mod:`.core`.
"""

from __future__ import annotations

import math

import numpy as np

from . import solutions
from .core import Mistake, as_array, as_int, call, exercise, expect, seeded_rng, wrong_number


def _blob(shape, cy, cx, radius=2.5):
    rows, cols = np.indices(shape)
    img = np.clip(1 - np.hypot(rows - cy, cols - cx) / radius, 0, 1)
    return img.astype(np.float64)


@exercise("12.1", "centre_of_mass", "the centre of mass of an image", hint="""
    The centre of mass is the intensity-weighted average position: every pixel votes for its own
    (row, column) with a weight equal to its intensity, so dark ink counts more than faint ink and the
    background not at all. The usual mistakes: averaging the ink positions without weights, and
    returning (column, row) instead of (row, column).""",
          formula="""
    row = (sum over r, c of r img[r, c]) / (sum of img), column = (sum over r, c of c img[r, c]) /
    (sum of img). np.indices gives two arrays the shape of the image, holding each pixel's row index
    and column index.""")
def _check_com(fn):
    rng = seeded_rng(14)
    for case, img in {"a grey blob in a 20x28 image": _blob((20, 28), 6, 19) + 0.3 * _blob((20, 28), 12, 5),
                      "random grey ink, 28x28": rng.random((28, 28)) * (rng.random((28, 28)) < 0.2),
                      "a single pixel at (3, 9) of 5x12": np.eye(1, 60, 3 * 12 + 9).reshape(5, 12)}.items():
        want = np.array(solutions.centre_of_mass(img), dtype=np.float64)
        rows, cols = np.nonzero(img)
        out = call(fn, img, case=case)
        got = as_array(out, "your (row, column)", case).reshape(-1)
        expect(got, want, case, "your (row, column)", [
            (want[::-1], "you returned (column, row): rows first, (row, column), as in img[row, column]."),
            ([rows.mean(), cols.mean()], "you averaged the ink positions without weights: weight each pixel by its intensity.")])
    return "grey blobs in a non-square image, random ink and a single pixel"


@exercise("12.2", "crop_to_ink", "crop to the ink's bounding box", hint="""
    Cropping to the ink keeps the smallest rectangle that holds every ink pixel, so the digit can
    then be scaled wherever it was drawn. A pixel is ink when it is strictly above the threshold; find
    the first and the last rows, and columns, that hold any ink. The usual mistakes: a slice that cuts
    off the last row and column (a slice excludes its end), faint pixels at or below the threshold
    counted as ink, and an error on an image without ink.""",
          formula="""
    Steps: 1. The ink mask: each pixel compared with the threshold. 2. The rows with ink are those
    where the mask has any True along axis 1 (np.flatnonzero gives their indices); the columns likewise
    along axis 0. 3. No ink at all: an empty (0, 0) array, a zero-length slice of both axes. 4. Else the
    rows from the first to the last ink row INCLUDED (the slice stops at last + 1), the columns
    likewise.""")
def _check_crop(fn):
    img1 = np.zeros((10, 14))
    img1[2:7, 3:12] = 0.9
    img1[8, 1] = 0.1  # faint, below the threshold
    img2 = np.zeros((9, 6))
    img2[4:, 2:] = 1.0
    img3 = np.zeros((5, 7))
    img3[3, 2] = 0.5
    for case, img in {"a 5x9 block in 10x14, plus a faint speck": img1, "ink touching the bottom-right border": img2,
                      "a single pixel": img3, "an empty image": np.zeros((6, 8))}.items():
        want = solutions.crop_to_ink(img, 0.2)
        out = call(fn, img, 0.2, case=case, errors={(IndexError, ValueError): "An image without ink must give "
                                                      "an empty (0, 0) array, img[:0, :0], not an error."})
        mistakes = [(want[:-1, :-1], "the last row and column of ink are cut off: slices exclude their end, stop at last + 1."),
                    (solutions.crop_to_ink(img, 0.0), "pixels at or below the threshold are not ink: use img > threshold.")]
        expect(out, want, case, "your crop", [(v, m) for v, m in mistakes if v.size or want.size])
    return "a block with a faint speck, ink at the border, a single pixel and an empty image"


@exercise("12.3", "centre_by_mass", "centre a digit by its centre of mass", hint="""
    MNIST's digits sit with their centre of mass at the middle of the 28 x 28 image, and a model
    trained on them expects it there. Shift the drawn digit by whole pixels so that its centre of mass
    lands as close as possible to (14, 14); a shift moves ink, it never adds or removes any. The usual
    mistakes: a shift the wrong way (away from the centre), and rows and columns swapped.""",
          formula="""
    Compute the centre of mass (c_r, c_c) as in exercise 12.1. Shift by d_r = round(14 - c_r) rows and
    d_c = round(14 - c_c) columns (positive: down and right). np.roll with a pair of shifts and the axes
    (0, 1) moves both at once; it wraps around at the edges, which does no harm while the digit does not
    touch the border.""")
def _check_centre(fn):
    stroke = np.zeros((28, 28))
    stroke[5:12, 16] = 1.0
    stroke[11, 16:20] = 0.6
    for case, img in {"a blob at (10, 17)": _blob((28, 28), 10, 17), "a blob at (17, 12)": _blob((28, 28), 17, 12),
                      "an uneven stroke near the top right": stroke, "a blob already at (14, 14)": _blob((28, 28), 14, 14)}.items():
        got = as_array(call(fn, img, case=case), "your image", case)
        if got.shape != (28, 28):
            raise Mistake(f"{case}: your image has shape {got.shape}, expected (28, 28).")
        if not math.isclose(got.sum(), img.sum(), rel_tol=1e-6):
            raise Mistake(f"{case}: your image holds {got.sum():.3f} of ink, the input {img.sum():.3f}: shift, don't crop or scale.")
        (cy0, cx0), (cy, cx) = solutions.centre_of_mass(img), solutions.centre_of_mass(got)
        if max(abs(cy - 14), abs(cx - 14)) <= 0.5 + 1e-9:
            continue
        if max(abs(cy - (2 * cy0 - 14)), abs(cx - (2 * cx0 - 14))) <= 0.5 + 1e-9:
            raise Mistake(f"{case}: the centre moved to ({cy:.1f}, {cx:.1f}), away from (14, 14): the sign is flipped, "
                          "shift by centre - cy, not cy - centre.")
        if max(abs(cy - (cy0 + 14 - cx0)), abs(cx - (cx0 + 14 - cy0))) <= 0.5 + 1e-9:
            raise Mistake(f"{case}: the centre moved to ({cy:.1f}, {cx:.1f}): rows and columns are swapped; "
                          "the row shift comes from the row of the centre.")
        raise Mistake(f"{case}: after your shift the centre of mass is at ({cy:.2f}, {cx:.2f}); "
                      "it should be within half a pixel of (14, 14).")
    return "blobs and an uneven stroke end up centred at (14, 14), no ink lost"


@exercise("12.4", "fit_size", "fit a digit into a 20x20 box", hint="""
    MNIST scales each digit so that its LONGER side fits a 20-pixel box and keeps its
    proportions: a tall 1 stays thin, a wide digit stays wide. One scale factor for both sides, then
    each side rounded to whole pixels, never below one pixel. The usual mistakes: stretching to 20 x 20,
    cutting the fraction off instead of rounding, returning (width, height), and a very thin side that
    rounds to 0.""",
          formula="""
    s = box divided by the longer side, max(h, w); new_h = max(1, round(h s)) and new_w =
    max(1, round(w s)); return (new_h, new_w), height first.""")
def _check_fit(fn):
    from ..drawing import fit_box  # the library's version, the referee

    cases = [(100, 50), (19, 30), (20, 20), (5, 5), (300, 2), (45, 26)]
    for h, w in cases:
        case = f"a {h}x{w} crop"
        want = fit_box(np.zeros((h, w), np.float32)).shape
        out = call(fn, h, w, case=case)
        try:
            got = tuple(as_int(v, "each size", case) for v in out)
        except TypeError:
            raise Mistake(f"{case}: return (new_h, new_w), got {out!r}.") from None
        if got == want:
            continue
        scale = 20 / max(h, w)
        named = {(20, 20): "you stretched it to 20x20: keep the aspect ratio, only the longer side becomes 20.",
                 want[::-1]: "you returned (new_w, new_h): height first, (new_h, new_w).",
                 (int(h * scale), int(w * scale)): "int() cuts off the fraction: round to the nearest pixel, round(...).",
                 (round(h * scale), round(w * scale)): "a side rounded to 0 pixels: keep at least 1, max(1, ...)."}
        raise wrong_number(case, got, want, named)
    return "tall, wide, square, small and very thin crops; drawing.fit_box agrees"
