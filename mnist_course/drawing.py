"""From a drawing or a picture to the model's guess: MNIST-style preprocessing, `predict_image`
and a live digit pad for the notebook (notebook 12).

MNIST's recipe (yann.lecun.com/exdb/mnist): each digit was size-normalised to fit a 20x20 box
keeping its aspect ratio (anti-aliased, hence the grey levels), then centred in a 28x28 field by
its centre of mass. A photo is not a clean canvas (grey paper, uneven light, noise), so
:func:`preprocess` first finds the ink, step by step:

1. grayscale in [0, 1] (RGB(A), grayscale, any size and value range; pictures larger than
   :data:`MAX_SIDE` pixels a side are shrunk first);
2. background: a smooth model of the paper and its light (:func:`estimate_background`); the ink is
   what differs from it (dark ink as the fraction of light it takes away);
3. threshold above the noise, a minimum contrast and a fraction of the ink's level;
4. speckle removed: the digit's connected strokes kept, specks and far pieces dropped;
5. no digit ("no ink", "too little structure", "ink everywhere"): ``Preprocessed.reason``, never a guess;
6. crop to the ink, resize so the longer side is 20 pixels (Lanczos), paste into 28x28 with the
   centre of mass on pixel (14, 14), where MNIST's digits have it.

A picture cropped close to its digit (no margin: the ink touches the border, and the tiles'
background takes the digit for paper) gets a second look, the *crop pass*: the background is a plane
fitted to the border's most common level (:func:`border_background`), the ink's polarity is read
against it, a margin is added, and steps 3 to 6 run again; its answer is taken when the first found
no digit, or when the digit it finds touches two sides of the picture or more, and only when it looks
cut from a picture (the background left in two pieces or more, or strong ink with strokes thinner
than half the digit: a shadow's edge is neither). ``stats["crop"]`` is 1.0 when its answer was taken.

The model then gets ``(x - mean) / std`` with the training set's mean and std, shape (1, 1, 28, 28).
:func:`predict_image` adds "not sure" when the top probability is below :data:`NOT_SURE_BELOW`
(calibrated on validation pictures, :func:`calibrate_not_sure`), or below a stricter threshold for
inputs unlike MNIST's: very thick strokes, or a digit enlarged from a tiny picture (:func:`judge`).

The live drawing pad built on these functions is :class:`mnist_course.pad.DrawingPad`.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from scipy import ndimage

from .utils import latency_ms

if TYPE_CHECKING:   # PyTorch loads when a PyTorch model is asked (the web service runs without it)
    import torch

# The training set's mean and std of x / 255 (what MNISTData computes); used when none are given.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CLASSES = tuple(str(i) for i in range(10))

BOX = 20        # MNIST fits each digit into 20x20 ...
SIZE = 28       # ... and centres it in 28x28
CENTRE = 14.0   # mean centre of mass of MNIST's training digits (row, column), measured


# --------------------------------------------------------------------------------- reading images

MAX_SIDE = 256  # pictures are shrunk (box average, by a whole factor) to at most this many pixels a side


def load_image(source, max_side: int = MAX_SIDE) -> np.ndarray:
    """A file path, PIL image, NumPy array or tensor -> float32 (h, w) grayscale in [0, 1], h, w <= max_side.

    Arrays may be (H, W), (H, W, 1|3|4) or (1, H, W). Value ranges: bool; integers in 0..255 (read
    as 0..255); floats in [0, 1]; floats holding whole numbers in 0..255 (read as 0..255); anything
    else (a float image in [0, 1.5], int32 in 0..1000, 16-bit, a normalised tensor) is rescaled by
    its own min and max, with a warning. Larger pictures are shrunk by a whole factor first (PIL's
    reduce, JPEG draft decoding), before any float copy is made: the float work is bounded by
    max_side x max_side pixels whatever the input (a file must still be decoded once, at about 1
    to 4 bytes per pixel; PIL refuses files above twice ``Image.MAX_IMAGE_PIXELS``). Raises
    ValueError on empty images, NaNs and unreadable files.
    """
    gray, notes = _load(source, max_side)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return gray


def _load(source, max_side: int = MAX_SIDE) -> tuple[np.ndarray, list[str]]:
    """load_image without the warnings: (gray, notes)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
            raise FileNotFoundError(f"no image file at {path}{where}: check the path.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # shrunk right away
                im = Image.open(path)
            with im:
                if im.format == "JPEG" and max(im.size) > max_side:
                    im.draft(im.mode, (max_side, max_side))     # decode at 1/2, 1/4 or 1/8 size
                im.load()
                source = _shrink_pil(im, max_side)
        except Image.DecompressionBombError as e:
            raise ValueError(f"{path} is too large to read safely ({e}); shrink it first.") from e
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ValueError(f"{path} is not a readable image ({type(e).__name__}: {e}); "
                             "give a PNG or JPEG file.") from e
    if isinstance(source, Image.Image):
        return _pil_to_gray(_shrink_pil(source, max_side), max_side)
    torch = sys.modules.get("torch")    # a tensor can only come from a PyTorch already loaded
    if torch is not None and isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if not isinstance(source, np.ndarray):
        raise TypeError(f"expected a file path, PIL image, NumPy array or tensor, got {type(source).__name__}.")
    return _array_to_gray(source, max_side)


# EXIF orientation tag (0x0112) -> the transpose that turns the picture upright (as ImageOps.exif_transpose)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _shrink_pil(im: Image.Image, max_side: int) -> Image.Image:
    """A PIL image with its longer side above max_side -> reduced by a whole factor (box average),
    and turned upright when its EXIF says the camera was held sideways (phone photos)."""
    turn = _UPRIGHT.get(im.getexif().get(0x0112, 1))
    im = _reduce(im, max_side)
    if turn is None:
        return im
    im = im.transpose(turn)
    im.info.pop("exif", None)          # upright now: a second call must not turn it again
    return im


def _reduce(im: Image.Image, max_side: int) -> Image.Image:
    factor = -(-max(im.size) // max_side)
    if factor <= 1:
        return im
    if im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        im = im.convert("RGBA" if im.mode in ("PA", "P") and "transparency" in im.info or im.mode == "PA"
                        else "RGB" if im.mode in ("P", "CMYK", "YCbCr") else "I" if im.mode.startswith("I") else "L")
    return im.reduce(factor)


def _pil_to_gray(im: Image.Image, max_side: int = MAX_SIDE) -> tuple[np.ndarray, list[str]]:
    if im.width == 0 or im.height == 0:
        raise ValueError(f"the image is empty ({im.width}x{im.height} pixels).")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return _array_to_gray(np.asarray(im.convert("RGBA")), max_side)
    if im.mode.startswith("I") or im.mode == "F":       # 16/32-bit and float pictures: their own range
        return _array_to_gray(np.asarray(im), max_side)
    return _array_to_gray(np.asarray(im.convert("L")), max_side)


def _value_range(a: np.ndarray) -> tuple[float, float, str | None]:
    """(offset, scale, note): the pixel values are read as (a - offset) / scale."""
    if a.dtype == bool:
        return 0.0, 1.0, None
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"cannot read an image of dtype {a.dtype}: give integers or floats.")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"the image contains {int((~np.isfinite(a)).sum())} NaN or infinite values; "
                         "clean it first (e.g. np.nan_to_num).")
    low, high = float(a.min()), float(a.max())
    if np.issubdtype(a.dtype, np.integer):
        if low >= 0 and high <= 255:
            return 0.0, 255.0, None
    elif low >= 0 and high <= 1:
        return 0.0, 1.0, None
    elif low >= 0 and high <= 255 and np.array_equal(a, np.round(a)):
        return 0.0, 255.0, (f"the {a.dtype} image holds whole numbers in {low:g}..{high:g}: read as 0..255 "
                            "(give floats in [0, 1] or uint8 to avoid this note).")
    if high == low:
        return low, 1.0, (f"the {a.dtype} image is constant ({low:g}), outside 0..1 and 0..255: read as 0.")
    return low, high - low, (f"the {a.dtype} image's values {low:g}..{high:g} are outside [0, 1] (floats) and "
                             f"0..255 (integers): rescaled by their min and max to 0..1 (give uint8 0..255 "
                             "or floats in [0, 1] to avoid this note).")


def _array_to_gray(a: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, list[str]]:
    if a.size == 0:
        raise ValueError(f"the image is empty (shape {a.shape}).")
    while a.ndim > 2 and a.shape[0] == 1:          # (1, H, W), (1, 1, H, W)
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot read an image of shape {a.shape}: give (H, W) grayscale or "
                         "(H, W, 3) RGB or (H, W, 4) RGBA.")
    offset, scale, note = _value_range(a)
    factor = -(-max(a.shape[:2]) // max_side)
    if factor > 1 and a.dtype == np.uint8:        # box average over factor x factor blocks
        a = np.asarray(Image.fromarray(np.ascontiguousarray(a)).reduce(factor))
    elif factor > 1:
        h, w = a.shape[0] // factor * factor, a.shape[1] // factor * factor
        if h == 0 or w == 0:
            raise ValueError(f"cannot read an image of shape {a.shape}: too thin to shrink to {max_side} pixels.")
        a = a[:h, :w].reshape(h // factor, factor, w // factor, factor, *a.shape[2:]).mean(axis=(1, 3), dtype=np.float32)
    a = (a.astype(np.float32) - offset) / scale
    notes = [note] if note else []
    if a.ndim == 2:
        return a, notes
    gray = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114   # ITU-R 601, as PIL's "L"
    if a.shape[-1] == 4:
        alpha = a[..., 3]
        opaque = alpha > 0.5
        ink_is_dark = opaque.any() and gray[opaque].mean() < 0.5
        background = 1.0 if ink_is_dark else 0.0  # transparent pixels take the colour the ink is not
        gray = gray * alpha + background * (1.0 - alpha)
    return gray.astype(np.float32), notes


# ---------------------------------------------------------------------------------- preprocessing

NO_INK, TOO_LITTLE, EVERYWHERE = "no ink", "too little structure", "ink everywhere"


@dataclass
class Preprocessed:
    """The result of :func:`preprocess`: the 28x28 image (None for no digit) and every step on the way.

    ``steps`` maps each step's name to its (h, w) image in [0, 1] (in order); ``reason`` says why
    there is no digit ("no ink", "too little structure", "ink everywhere"); ``notes`` how an unusual
    input was read; ``stats`` the numbers the steps used (background level, noise sigma, threshold,
    components found and kept, stroke width, ...)."""

    image: np.ndarray | None          # (28, 28) float32 in [0, 1], white ink on black
    inverted: bool                    # True if the picture was dark ink on a light background
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str | None = None         # why no digit: "no ink", "too little structure", "ink everywhere"
    notes: list[str] = field(default_factory=list)   # e.g. how an unusual value range was rescaled
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return self.image is None


def _sample(a: np.ndarray, n: int = 20_000) -> np.ndarray:
    """Every k-th row and column of a large (h, w) array, about n pixels: for fast order statistics."""
    k = max(1, int(np.sqrt(a.size / n)))
    return a[::k, ::k]


# Order statistics, exactly as np.median and np.percentile (linear) give them, but fast on a canvas:
# when more than half of the values are one value c (the background), the median is c and only the
# values below and above c are partitioned for a percentile.

def _majority(flat: np.ndarray):
    """The value that more than half of the 1-D array `flat` holds exactly (then its median), else None."""
    if flat.size == 0:
        return None
    probe = np.sort(flat[:: max(1, flat.size // 63)])
    c = probe[len(probe) // 2]
    return c if 2 * np.count_nonzero(flat == c) > flat.size else None


def _median(a: np.ndarray) -> float:
    """float(np.median(a)) of an array."""
    c = _majority(a.ravel())
    return float(np.median(a)) if c is None else float(c)


def _percentile(a: np.ndarray, q):
    """np.percentile(a, q) of an array, q a float or a list of floats, with the same value and dtype."""
    flat = a.ravel()
    c = _majority(flat)
    if c is None:
        return np.percentile(a, q)
    n = flat.size
    below, above = flat[flat < c], flat[flat > c]
    first_above = n - len(above)

    def kth(k: int):                        # the k-th smallest value
        if k < len(below):
            return np.partition(below, k)[k]
        if k >= first_above:
            return np.partition(above, k - first_above)[k - first_above]
        return c

    def one(quantile, weak: bool):          # numpy's linear interpolation, step by step
        virtual = (n - 1) * quantile
        if virtual >= n - 1:
            low = high = n - 1
        elif virtual < 0:
            low = high = 0
        else:
            low = int(np.floor(virtual))
            high = low + 1
        t = float(virtual - low) if weak else np.float64(virtual - low)
        a, b = kth(low), kth(high)
        return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t

    quantiles = np.true_divide(q, 100)
    if type(q) in (int, float):
        return one(quantiles, True)
    return np.array([one(x, False) for x in quantiles.ravel()]).reshape(quantiles.shape)


def _mad_sigma(a: np.ndarray) -> tuple[float, float]:
    """(median, robust standard deviation 1.4826 x the median absolute deviation) of an array
    (estimated on a regular sample of about 20,000 pixels)."""
    a = _sample(a)
    c = _majority(a.ravel())
    if c is not None:                       # more than half the values are the median: no deviation
        return float(c), 0.0
    med = float(np.median(a))
    return med, 1.4826 * float(np.median(np.abs(a - med)))


def estimate_background(gray: np.ndarray, tiles: int = 16, window: int = 5, passes: int = 3) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W) float32: the smooth background under the ink (paper, shading, light).

    Flat when at least half of the pixels lie within 2/255 of the median (a canvas, an MNIST digit,
    clean paper), or when 90 % of the border's pixels and a quarter of all lie within 2/255 of the
    border's median (thick ink covering most of a plain page: the tiles would take it for paper).
    Otherwise the picture, shrunk to 4 `tiles` x 4 `tiles` pixels, is cut into
    tiles x tiles tiles; the background is the median of each `window` x `window` block of tile
    medians (a third of the picture), enlarged again (bilinear). A median ignores the ink where it
    covers less than half of a block and keeps the edge of a shadow; `passes` - 1 times, pixels far
    from the estimate (the ink) are replaced by it and the medians taken again, so that thick strokes
    are not taken for background."""
    return _background(gray, tiles, window, passes)[0]


def _background(gray: np.ndarray, tiles: int = 16, window: int = 5, passes: int = 3) -> tuple[np.ndarray, float | None]:
    """(estimate_background(gray), its level when it is flat, else None)."""
    sample = _sample(gray)
    median = _median(sample)
    if np.count_nonzero(np.abs(sample - median) <= 2 / 255) >= 0.5 * sample.size:
        flat = np.full(gray.shape, median, np.float32)
        return flat, float(flat.flat[0])
    border = _border(gray)
    level = float(np.median(border))
    if (np.count_nonzero(np.abs(border - level) <= 2 / 255) >= 0.9 * border.size
            and np.count_nonzero(np.abs(sample - level) <= 2 / 255) >= 0.25 * sample.size):
        flat = np.full(gray.shape, level, np.float32)     # thick ink on a plain page
        return flat, float(flat.flat[0])
    n = 4 * tiles
    small = np.asarray(Image.fromarray(gray, mode="F").resize((n, n), Image.Resampling.BOX))
    for i in range(passes):
        cells = np.median(small.reshape(tiles, 4, tiles, 4).transpose(0, 2, 1, 3).reshape(tiles, tiles, 16), axis=-1)
        bg = ndimage.median_filter(cells, size=window, mode="nearest").astype(np.float32)
        if i == passes - 1:
            break
        estimate = np.asarray(Image.fromarray(bg, mode="F").resize((n, n), Image.Resampling.BILINEAR))
        r = small - estimate
        _, sigma = _mad_sigma(r)
        small = np.where(np.abs(r) > max(0.05, 3 * sigma), estimate, small)
    h, w = gray.shape
    return np.asarray(Image.fromarray(bg, mode="F").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32), None


def crop_to_ink(img: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """The smallest rectangle holding every pixel above `threshold` ((0, 0) array if none)."""
    ink = img > threshold
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if len(rows) == 0:
        return img[:0, :0]
    return img[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def fit_box(img: np.ndarray, box: int = BOX) -> np.ndarray:
    """Resize (h, w) so its longer side is `box` pixels, keeping the aspect ratio (Lanczos)."""
    h, w = img.shape
    scale = box / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = Image.fromarray(img.astype(np.float32), mode="F").resize((new_w, new_h), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre of an (h, w) image."""
    total = img.sum()
    rows, cols = np.indices(img.shape)
    return float((rows * img).sum() / total), float((cols * img).sum() / total)


def centre_in_field(img: np.ndarray, size: int = SIZE, centre: float = CENTRE) -> np.ndarray:
    """Paste (h, w) <= (size, size) into a size x size field so its centre of mass is at `centre`."""
    h, w = img.shape
    cy, cx = centre_of_mass(img)
    top = min(max(round(centre - cy), 0), size - h)    # clipped: the digit is never cut off
    left = min(max(round(centre - cx), 0), size - w)
    out = np.zeros((size, size), dtype=np.float32)
    out[top: top + h, left: left + w] = img
    return out


def _span(any_: np.ndarray) -> tuple[int, int]:
    """(first, last + 1) index of the True values of a 1-D boolean array (at least one)."""
    where = np.flatnonzero(any_)
    return int(where[0]), int(where[-1]) + 1


def _structure(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """A boolean (h, w) mask of the kept ink, its pixel (0, 0) at `offset` of the picture -> its extent,
    stroke width and elongation."""
    (r0, r1), (c0, c1) = _span(mask.any(axis=1)), _span(mask.any(axis=0))
    inner = mask[r0:r1, c0:c1]
    h, w = inner.shape
    box = np.zeros((h + 2, w + 2), bool)
    box[1:-1, 1:-1] = inner
    stroke = 2.0 * float(ndimage.distance_transform_edt(box).max())
    rows, cols = np.nonzero(inner)
    if len(rows) > 1:                          # np.cov(np.stack([rows, cols]) in picture coordinates)
        X = np.stack([rows + (offset[0] + r0), cols + (offset[1] + c0)]).astype(np.float64)
        X -= X.mean(axis=1)[:, None]
        cov = np.dot(X, X.T.conj())
        cov *= np.true_divide(1, X.shape[1] - 1)
    else:
        cov = np.zeros((2, 2))
    evals, evecs = np.linalg.eigh(cov + 1e-9 * np.eye(2))
    major = evecs[:, 1]                              # (row, column) direction of the longer axis
    return {"height": h, "width": w, "stroke": stroke,
            "elongation": float(np.sqrt(evals[1] / max(evals[0], 1e-9))),
            "thickness": float(np.sqrt(12 * max(evals[0], 0.0))),   # across the longer axis
            "tilt": float(np.degrees(np.arctan2(abs(major[0]), abs(major[1]))))}   # 0: horizontal, 90: vertical


def _dark_ink(residual: np.ndarray, ink: str, tail: float) -> bool:
    """Whether the ink is darker than its background: ink="dark"/"light" say so; "auto" compares the
    residual's (picture minus background, (h, w)) two tails, the `tail` and 100 - `tail` percentiles:
    the ink lies in the longer one. The first pass uses 0.1 (the ink is a small part of the picture);
    the crop pass 1 (a tight crop is mostly ink, and its extremes are the ink's own shading)."""
    if ink != "auto":
        return ink == "dark"
    low, high = _percentile(_sample(residual), [tail, 100.0 - tail])
    return bool(-low > high)


def preprocess(source, ink: str = "auto", min_contrast: float = 0.1, noise_k: float = 6.0,
               relative: float = 0.35, min_area: float = 0.0005, min_extent: float = 1.6,
               max_elongation: float = 2.5, max_tilt: float = 30.0, max_cover: float = 0.5, min_pixels: int = 10,
               max_side: int = MAX_SIDE) -> Preprocessed:
    """Any picture of a digit -> an MNIST-like (28, 28) float32 image in [0, 1] (see the module doc).

    source: what :func:`load_image` reads (shrunk to at most `max_side` pixels a side first).
    ink: "auto" (dark ink on light paper or light ink on dark, whichever stands out), "light" (a
    canvas: white ink on black) or "dark". The steps, each kept in ``.steps``:

    1. background: :func:`estimate_background`; the ink is what differs from it, in the ink's direction;
    2. noise: sigma from the median absolute deviation; noisy pictures (sigma > 0.02) are smoothed
       (Gaussian, 1 pixel) before thresholding;
    3. threshold: the largest of `min_contrast`, median + `noise_k` x sigma (smoothed) and `relative`
       x the ink's level (its 99.9th percentile);
    4. speckle removed: connected pieces smaller than `min_area` of the picture, or than a tenth of
       the largest piece, or far from it, are dropped;
    5. crop, fit into 20x20 and centre by mass, as MNIST;
    6. the crop pass (see the module doc) for a picture cropped close to its digit.

    No digit (``.image`` None, ``.reason``): "no ink" when nothing differs from the background by
    the threshold, or only specks with less ink than `min_area` in all; "too little structure"
    when only specks are left, or the ink is a blob (its
    extent below `min_extent` stroke widths: a tap; or below `min_pixels` pixels: a speck) or a
    dash (elongation above `max_elongation` within `max_tilt` degrees of horizontal, and about one
    stroke thick); "ink everywhere" when the ink covers more than
    `max_cover` of the picture, or ink="light"/"dark" and the background itself is ink-coloured (a
    filled canvas). Plain noise, however strong, is "no ink": nothing stands out of it.
    """
    if ink not in ("auto", "light", "dark"):
        raise ValueError(f"ink must be 'auto', 'light' (white ink on black) or 'dark', got {ink!r}")
    gray, notes = _load(source, max_side)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    steps = {"input (grayscale)": gray}
    background, flat = _background(gray)
    steps["background"] = background
    residual = gray - background
    inverted = _dark_ink(residual, ink, tail=0.1)
    # dark ink: the fraction of light it takes from the paper (1 - gray / background), the same
    # under bright and dim light; light ink on a dark canvas: what it adds to the background
    diff = -residual / np.maximum(background, 0.1) if inverted else residual
    level = float(np.median(background)) if flat is None else flat     # a flat one's median: its value
    stats = {"background": level}

    def no_digit(reason):
        return Preprocessed(None, inverted, steps, reason, notes, stats)

    if ink != "auto" and (level < 0.5 if inverted else level > 0.5):
        return no_digit(EVERYWHERE)                 # the "background" is ink-coloured: a filled canvas
    first = _find_digit(diff, inverted, steps, notes, stats, min_contrast, noise_k, relative, min_area,
                        min_extent, max_elongation, max_tilt, max_cover, min_pixels)
    if first.reason == EVERYWHERE:
        return first
    crop = _crop_pass(gray, ink, notes, min_contrast, noise_k, relative, min_area, min_extent,
                      max_elongation, max_tilt, min_pixels, found=not first.blank)
    if crop is None or not (first.blank or crop.stats["touches"] >= 2):
        return first
    return crop


def _find_digit(diff, inverted, steps, notes, stats, min_contrast, noise_k, relative, min_area,
                min_extent, max_elongation, max_tilt, max_cover, min_pixels, noise=None,
                region=None) -> Preprocessed:
    """Steps 2 to 6 of :func:`preprocess` on the ink `diff` (h, w). noise: (median, sigma) of the
    background's ink when known (else from the whole of diff); region: the (rows, columns) slices of
    diff that hold the picture (the rest is a margin added around it): cover, peak and the minimum
    area are measured there, and the steps are cut to it."""

    def no_digit(reason):
        return Preprocessed(None, inverted, steps, reason, notes, stats)

    def cut(a):
        return a if region is None else a[region]

    if noise is None:
        med, sigma = _mad_sigma(diff)
    else:
        med, sigma = noise
    stats["noise"] = sigma
    if sigma > 0.02:
        diff = ndimage.gaussian_filter(diff, 1.0)
        if noise is None:
            med, sigma = _mad_sigma(diff)
        else:
            sigma = sigma / 2        # smoothing by 1 pixel takes white noise's sigma down 3.5x: cautious
    peak = float(_percentile(_sample(cut(diff)), 99.9))
    threshold = max(min_contrast, med + noise_k * sigma, relative * peak)
    stats["threshold"] = threshold
    steps["ink (background removed)"] = cut(np.clip(diff / max(peak, min_contrast), 0.0, 1.0))
    mask = diff > threshold
    steps["ink mask (threshold)"] = cut(mask.astype(np.float32))
    if not mask.any():
        return no_digit(NO_INK)
    if cut(mask).mean() > max_cover:
        return no_digit(EVERYWHERE)
    area = cut(mask).size
    (r0, r1), (c0, c1) = _span(mask.any(axis=1)), _span(mask.any(axis=0))
    window = (slice(r0, r1), slice(c0, c1))        # the mask's bounding box: the pieces are found there
    labels, n = ndimage.label(mask[window], structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel())[1:]
    stats["pieces"] = n
    big = int(areas.argmax())
    slices = ndimage.find_objects(labels)
    rs, cs = slices[big]
    extent = max(rs.stop - rs.start, cs.stop - cs.start)
    keep = np.zeros(n + 1, bool)
    for i, (r, c) in enumerate(slices):       # big enough, and less than half the extent away
        gap = max(r.start - rs.stop, rs.start - r.stop, c.start - cs.stop, cs.start - c.stop, 0)
        keep[i + 1] = areas[i] >= max(min_area * area, 0.1 * areas[big], 2) and gap <= extent / 2
    kept = np.zeros(mask.shape, bool)
    kept[window] = keep[labels]
    stats["kept"] = int(keep.sum())
    steps["digit strokes (speckle removed)"] = cut(kept.astype(np.float32))
    if not keep.any():                              # only specks: a few, or many (salt)
        return no_digit(NO_INK if mask.sum() < min_area * area else TOO_LITTLE)
    shape = _structure(kept[window], (r0, c0))
    stats.update(shape)
    if max(shape["height"], shape["width"]) < max(min_extent * shape["stroke"], min_pixels):
        return no_digit(TOO_LITTLE)                 # a tap, a blob or a speck
    if (shape["elongation"] > max_elongation and shape["tilt"] < max_tilt
            and shape["thickness"] < 1.8 * shape["stroke"]):
        return no_digit(TOO_LITTLE)                 # a dash or a line (one stroke thick), not a 1
    strength = float(_percentile(diff[window][kept[window]], 90))
    (top, bottom), (left, right) = _span(kept.any(axis=1)), _span(kept.any(axis=0))
    box = (slice(max(top - 2, 0), bottom + 2), slice(max(left - 2, 0), right + 2))   # the kept ink, 2 pixels around
    img = np.zeros(diff.shape, np.float32)
    low = med + 3 * sigma                           # the noise floor maps to 0, the ink to 1
    img[box] = np.where(_dilate2(kept[box]),
                        np.clip((diff[box] - low) / max(strength - low, 1e-6), 0.0, 1.0), 0.0)
    steps["white on black"] = cut(img)
    cropped = crop_to_ink(img[box], 0.2)
    steps["cropped to the ink"] = cropped
    boxed = fit_box(cropped)
    steps[f"fitted into {BOX}x{BOX}"] = boxed
    image = centre_in_field(boxed)
    steps[f"centred in {SIZE}x{SIZE}"] = image
    return Preprocessed(image, inverted, steps, None, notes, stats)


def _dilate2(mask: np.ndarray) -> np.ndarray:
    """ndimage.binary_dilation(mask, iterations=2) of a bool (h, w) mask: every pixel within 2 steps
    (4-neighbours) of a True pixel, nothing outside the array."""
    h, w = mask.shape
    padded = np.zeros((h + 4, w + 4), bool)
    padded[2:-2, 2:-2] = mask
    out = mask.copy()
    for dr, dc in ((-2, 0), (-1, -1), (-1, 0), (-1, 1), (0, -2), (0, -1), (0, 1), (0, 2), (1, -1), (1, 0), (1, 1), (2, 0)):
        out |= padded[2 + dr: 2 + dr + h, 2 + dc: 2 + dc + w]
    return out


def _border(gray: np.ndarray) -> np.ndarray:
    """The border pixels of an (H, W) picture, 1-D: top row, bottom row, left column, right column
    (the corners twice, as preprocess.js reads them)."""
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def _edge_mask(h: int, w: int) -> np.ndarray:
    """A bool (h, w) mask of the border pixels (each once)."""
    edge = np.zeros((h, w), bool)
    edge[0] = edge[-1] = True
    edge[:, 0] = edge[:, -1] = True
    return edge


def border_background(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W) in [0, 1] -> (plane (H, W) float32, good, residuals): a plane fitted to the picture's
    border pixels, robustly, for a picture cropped close to its digit (ink on the border). It starts
    from the border's most common level (the densest of 25 bins, with its neighbours), not its median
    (a tight crop's border can be mostly ink), keeps the border pixels within 0.06 of it, then fits
    a plane to the pixels within 3 robust sigmas (at least 0.03) of the last fit, three times.
    good: which border pixels (in the order top, bottom, left, right columns of the edge mask) were
    kept; residuals: every border pixel's distance from the plane."""
    h, w = gray.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float32)
    rr, cc = rr / max(h - 1, 1), cc / max(w - 1, 1)
    edge = _edge_mask(h, w)
    v = gray[edge].astype(np.float64)
    design = np.stack([np.ones_like(v), rr[edge], cc[edge]], 1)
    counts, edges = np.histogram(v, bins=25, range=(0.0, 1.0))
    centres = 0.5 * (edges[:-1] + edges[1:])
    good = np.abs(v - centres[int(np.convolve(counts, [1, 1, 1], mode="same").argmax())]) <= 0.06
    if not good.any():
        good = np.abs(v - centres[int(counts.argmax())]) <= 0.06
    level = float(np.median(v[good]))
    good = np.abs(v - level) <= 0.06
    coef = np.array([level, 0.0, 0.0])
    for _ in range(3):
        if good.sum() < 8:
            break
        coef = np.linalg.lstsq(design[good], v[good], rcond=None)[0]
        res = v - design @ coef
        good = np.abs(res) <= max(3 * 1.4826 * float(np.median(np.abs(res[good]))), 0.03)
    plane = (coef[0] + coef[1] * rr + coef[2] * cc).astype(np.float32)
    return plane, good, v - design @ coef


def _crop_pass(gray, ink, notes, min_contrast, noise_k, relative, min_area, min_extent,
               max_elongation, max_tilt, min_pixels, found: bool = False) -> Preprocessed | None:
    """A picture cropped close to its digit (the ink touches the border, the tiles' background takes
    the digit for paper): the background from the border (:func:`border_background`), a margin of a
    quarter of the longer side around the picture, then the usual steps. None unless it finds a digit
    that looks cut from a picture: the background left split into two pieces or more (a shadow's
    edge leaves one), or strong ink (threshold >= 0.3) with strokes under 0.45 of the extent.
    stats["touches"]: on how many sides the digit touches the picture's border. found: the first pass
    found a digit; then None at once when no border pixel differs from the plane by more than
    `min_contrast` and 4.5 noise sigmas, relative to its level (no ink on the border)."""
    h, w = gray.shape
    border = _border(gray)
    if found and float(border.max() - border.min()) <= 1e-3:
        return None                                 # a flat border (a canvas): no ink on it
    plane, good, res = border_background(gray)
    residual = gray - plane
    inverted = _dark_ink(residual, ink, tail=1.0)
    scale = np.maximum(plane, 0.1)
    diff = -residual / scale if inverted else residual
    background_ink = res[good] / (float(np.median(scale)) if inverted else 1.0)
    sigma = 1.4826 * float(np.median(np.abs(background_ink - np.median(background_ink)))) if good.sum() >= 8 else 0.0
    edge = _edge_mask(h, w)
    if found and not (np.abs(res) / np.maximum(plane[edge], 0.1) > max(min_contrast, 4.5 * sigma)).any():
        return None                                 # no ink on the border: not a crop
    m = max(4, int(round(0.25 * max(h, w))))
    region = (slice(m, m + h), slice(m, m + w))
    steps = {"input (grayscale)": gray, "background": plane}
    stats = {"background": float(np.median(plane)), "crop": 1.0}
    pre = _find_digit(np.pad(diff, m).astype(np.float32), inverted, steps, notes, stats, min_contrast,
                      noise_k, relative, min_area, min_extent, max_elongation, max_tilt, 0.8, min_pixels,
                      noise=(0.0, sigma), region=region)
    if pre.blank:
        return None
    kept = steps["digit strokes (speckle removed)"] > 0.5
    sizes = np.bincount(ndimage.label(~kept)[0].ravel())[1:]
    stats["background pieces"] = int((sizes >= max(2, 0.005 * kept.size)).sum())
    stats["touches"] = int(kept[0].any()) + int(kept[-1].any()) + int(kept[:, 0].any()) + int(kept[:, -1].any())
    extent = max(stats["height"], stats["width"])
    if stats["background pieces"] >= 2 or (stats["threshold"] >= 0.3 and stats["stroke"] <= 0.45 * extent):
        return pre
    return None


def to_model_input(image: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                   device=None) -> torch.Tensor:
    """(28, 28) or (N, 28, 28) float in [0, 1] -> normalised float32 tensor (N, 1, 28, 28)."""
    import torch

    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    x = ((x - mean) / std).reshape(-1, 1, SIZE, SIZE)
    return x.to(device) if device is not None else x


# ------------------------------------------------------------------------------------- predicting

STATUSES = ("digit", "not sure", "no digit")


@dataclass
class Prediction:
    """What the model thinks of one picture, and whether to believe it.

    - ``status``: "digit" (a confident answer), "not sure" (the model hesitates; ``reason`` says
      between what, e.g. "4 or 9?") or "no digit" (no model call; ``reason`` says why: "no ink",
      "too little structure" or "ink everywhere");
    - ``probs`` (10,) softmax probabilities (None for "no digit"); ``topk`` the k best (class,
      probability) pairs, best first (empty for "no digit"); ``image`` the (28, 28) model input in
      [0, 1] (None for "no digit");
    - ``seconds``: preprocess + predict wall time; ``model_seconds``: the model call alone (None
      when the model was not called).
    """

    probs: np.ndarray | None          # (10,) softmax probabilities; None when no digit
    topk: list[tuple[str, float]]     # best first; empty when no digit
    image: np.ndarray | None          # the (28, 28) model input in [0, 1]
    seconds: float                    # preprocess + predict wall time
    status: str | None = None         # "digit" / "not sure" / "no digit"; None: from probs
    reason: str | None = None         # why "no digit" or "not sure"; None for "digit"
    model_seconds: float | None = None

    def __post_init__(self):
        if self.status is None:
            self.status = "no digit" if self.probs is None else "digit"
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if (self.status == "no digit") != (self.probs is None):
            raise ValueError(f"status {self.status!r} does not fit probs "
                             f"{'None' if self.probs is None else 'given'}: only 'no digit' has no probs")

    @property
    def blank(self) -> bool:
        """True for "no digit"."""
        return self.status == "no digit"

    @property
    def label(self) -> str | None:
        """The most likely class when the status is "digit", else None."""
        return self.topk[0][0] if self.status == "digit" and self.topk else None

    def __str__(self) -> str:
        if self.status == "no digit":
            return f"no digit ({self.reason})" if self.reason else "no digit"
        if self.status == "not sure":
            return f"not sure: {self.reason}" if self.reason else "not sure"
        return ", ".join(f"{c} ({100 * p:.1f}%)" for c, p in self.topk)

    def to_dict(self) -> dict:
        """JSON-ready: {"digit": "7" | None, "status", "reason", "topk": [{"label", "probability"}],
        "probabilities": [10 floats] | None, "seconds", "model_seconds"}."""
        return {"digit": self.label, "status": self.status, "reason": self.reason,
                "topk": [{"label": str(c), "probability": float(p)} for c, p in self.topk],
                "probabilities": None if self.probs is None else [float(p) for p in self.probs],
                "seconds": float(self.seconds),
                "model_seconds": None if self.model_seconds is None else float(self.model_seconds)}


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's parameters live on (CPU for a model without parameters)."""
    import torch

    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def predict_probs(model: torch.nn.Module, image: np.ndarray, mean: float = MNIST_MEAN,
                  std: float = MNIST_STD) -> np.ndarray:
    """(28, 28) image in [0, 1] -> (10,) softmax probabilities of an eval-mode model (a model with any
    module in training mode is put in eval mode first, and left there).

    `model` may also be any object with a ``numpy_logits(X)`` method, X: normalised float32 NumPy
    (N, 1, 28, 28) -> (N, 10) logits, such as the web service's ONNX Runtime engine
    (mnist_course.serving.service.OnnxModel): then PyTorch is not needed, nor loaded."""
    if hasattr(model, "numpy_logits"):
        x = ((np.asarray(image, dtype=np.float32) - np.float32(mean)) / np.float32(std)).reshape(-1, 1, SIZE, SIZE)
        logits = np.asarray(model.numpy_logits(x), dtype=np.float32)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[0]
    import torch

    with torch.inference_mode():
        if any(m.training for m in model.modules()):     # eval() itself costs more than this check
            model.eval()
        logits = model(to_model_input(image, mean, std, model_device(model)))
        return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()


# "Not sure" below this top probability: the course CNN's threshold, computed by calibrate_not_sure on
# realistic pictures of 2,000 validation digits (recipes.BEST_CNN's split, seed 0; never the test set):
#   mnist-course bench calibrate --n 2000
NOT_SURE_BELOW = 0.81
# Strokes thicker than this (pixels of the 28x28 input, :func:`stroke_width`; MNIST's are 2-4.6, 99 %
# of them under 4.6) are far from what the model learned, and it is confidently wrong on them: a thick
# digit needs THICK_NOT_SURE_BELOW. Chosen on the dev part of mnist_course.bench.conditions (pen x2
# and x3: confident wrong 3-24 % -> <= 1 %) with the validation pictures and canvases unchanged.
THICK_ABOVE = 5.5
THICK_NOT_SURE_BELOW = 0.99
# A digit enlarged from a tiny picture (a thumbnail, a digit a few pixels high) has no detail of its
# own: its 28x28 input is what a digit of DETAIL_SIDE pixels enlarged would be, :func:`detail` is low, and
# the model can be confidently wrong on it. Below LOW_DETAIL_BELOW a digit needs LOW_DETAIL_NOT_SURE_BELOW.
# Chosen on the dev part of mnist_course.bench.conditions with the course CNN (8x8 thumbnails scaled up
# to 64 px: 92-95 % of them below 0.035, confident wrong 1.0 / 0.0 % -> 0.3 / 0.0 %): 0.035 is the largest
# value (steps of 0.005) at which no answer changes on any other dev row, on 2,000 validation pictures or
# on 1,000 redrawn canvases (MNIST digits: 0.1-0.3; at 0.04 two pen x2 digits turn "not sure"); 0.99 as
# for thick strokes (0.98 is the least that brings each thumbnail row to <= 0.5 %; the rule also covers
# pictures smaller than any dev row).
DETAIL_SIDE = 8
LOW_DETAIL_BELOW = 0.035
LOW_DETAIL_NOT_SURE_BELOW = 0.99
# Shrinking keeps the edges that lie on the digit's box: when the box's outline is this much ink on
# average (a block, a ruler-straight bar: 0.83-1.0), detail cannot tell. No picture of the dev part
# comes near it (its thumbnails at most 0.57, every other row at most 0.73).
BOX_OUTLINE_INK = 0.75


def stroke_width(image: np.ndarray) -> float:
    """(28, 28) image in [0, 1] -> its typical stroke width in pixels: twice the area of the pixels
    above 0.5 over the length of their outline (those with a 4-neighbour outside); 0 when none."""
    ink = np.asarray(image) > 0.5
    outline = np.count_nonzero(ink & ~ndimage.binary_erosion(ink))
    return 2.0 * np.count_nonzero(ink) / outline if outline else 0.0


@lru_cache(maxsize=512)     # 28x28 inputs need fewer: n, m <= 28 and one of them <= 8
def _lanczos_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) float64 matrix that resizes n samples to m as Pillow's Lanczos filter does (its
    precompute_coeffs: sinc(x) sinc(x / 3) on +-3 input pixels, stretched by n / m when shrinking,
    each row normalised); a 2-D resize is rows @ image @ columns.T."""
    scale = n / m
    stretch = max(scale, 1.0)
    out = np.zeros((m, n))
    for i in range(m):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - 3.0 * stretch + 0.5), 0), min(int(centre + 3.0 * stretch + 0.5), n)
        x = (np.arange(lo, hi) - centre + 0.5) / stretch
        weights = np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)
        out[i, lo:hi] = weights / weights.sum()
    return out


def detail(image: np.ndarray, side: int = DETAIL_SIDE) -> float:
    """(28, 28) image in [0, 1] -> how much detail the digit has at its own size: the share of its
    energy (sum of squares) lost when its box (the pixels above 0) is shrunk to `side` pixels on
    its longer side and enlarged back (Lanczos, as Pillow). MNIST digits and drawings: 0.1-0.3 (under
    0.035 for fewer than 1 % of them); a digit enlarged from a picture of `side` pixels or fewer: mostly
    under 0.035. 0.0 when the box is at most `side` pixels; NaN when it cannot tell: no ink, or the
    box's outline at least :data:`BOX_OUTLINE_INK` ink on average (a block, a straight bar)."""
    a = np.asarray(image, dtype=np.float64)
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if len(rows) == 0:
        return float("nan")
    box = a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    h, w = box.shape
    if box[_edge_mask(h, w)].mean() >= BOX_OUTLINE_INK:
        return float("nan")
    if max(h, w) <= side:
        return 0.0
    f = side / max(h, w)
    sh, sw = max(1, round(h * f)), max(1, round(w * f))
    small = _lanczos_matrix(h, sh) @ box @ _lanczos_matrix(w, sw).T
    back = _lanczos_matrix(sh, h) @ small @ _lanczos_matrix(sw, w).T
    return float(np.square(box - back).sum() / np.square(box).sum())


def judge(probs: np.ndarray, classes: Sequence[str] = CLASSES, not_sure_below: float | None = None,
          image: np.ndarray | None = None) -> tuple[str, str | None]:
    """(10,) probabilities -> ("digit", None), or ("not sure", "4 or 9?") when the top probability
    is below `not_sure_below` (None: the calibrated :data:`NOT_SURE_BELOW`). image: the (28, 28)
    model input; when its strokes are thicker than :data:`THICK_ABOVE`, the threshold is at least
    :data:`THICK_NOT_SURE_BELOW`, and when its :func:`detail` is below :data:`LOW_DETAIL_BELOW` (a
    small picture enlarged), at least :data:`LOW_DETAIL_NOT_SURE_BELOW`; a "not sure" says which."""
    threshold = NOT_SURE_BELOW if not_sure_below is None else not_sure_below
    thick = image is not None and stroke_width(image) > THICK_ABOVE
    if thick:
        threshold = max(threshold, THICK_NOT_SURE_BELOW)
    smooth = image is not None and detail(image) < LOW_DETAIL_BELOW
    if smooth:
        threshold = max(threshold, LOW_DETAIL_NOT_SURE_BELOW)
    first, second = np.argsort(-np.asarray(probs))[:2]
    if probs[first] < threshold:
        why = (" (very thick strokes: use a thinner pen or write larger)" if thick else
               " (little detail, as in a small picture enlarged: send a larger, sharper picture)" if smooth else "")
        return "not sure", f"{classes[first]} or {classes[second]}?{why}"
    return "digit", None


def not_sure_threshold(top: np.ndarray, correct: np.ndarray, max_confident_wrong: float = 0.005,
                       grid: Sequence[float] = tuple(np.round(np.arange(0.30, 1.0, 0.01), 2))) -> float:
    """The smallest threshold of `grid` at which at most `max_confident_wrong` of all answers are
    confident and wrong: top (N,) top probabilities, correct (N,) booleans -> a float of `grid`.
    Answers with top probability below the threshold are "not sure"; raises ValueError when no grid
    value is strict enough."""
    top, correct = np.asarray(top, dtype=np.float64), np.asarray(correct, dtype=bool)
    if top.shape != correct.shape or top.ndim != 1 or len(top) == 0:
        raise ValueError(f"top and correct must be two (N,) arrays with N > 0, got {top.shape} and {correct.shape}")
    for t in sorted(grid):
        if np.count_nonzero((top >= t) & ~correct) <= max_confident_wrong * len(top):
            return float(t)
    raise ValueError(f"even at {max(grid)} more than {max_confident_wrong:.2%} of the answers are confident "
                     "and wrong: the model is not good enough on these pictures.")


def validation_pictures(n: int = 2000, seed: int = 0, val_size: int | None = None) -> list:
    """Realistic pictures (:func:`mnist_course.photos.picture_set`) of n digits from the
    validation split (recipes.BEST_CNN's val_size, split seed 0: never the test set):
    a list of (uint8 (H, W) picture, label int, kind str)."""
    from .data import load_mnist
    from .photos import picture_set
    from .recipes import BEST_CNN

    data = load_mnist("mnist")
    _, _, X_val, y_val = data.split(BEST_CNN["val_size"] if val_size is None else val_size, seed=0)
    return picture_set(X_val.numpy(), y_val.numpy(), n, 0, seed=seed)


def calibrate_not_sure(model: torch.nn.Module, pictures: Sequence, mean: float = MNIST_MEAN,
                       std: float = MNIST_STD, max_confident_wrong: float = 0.005) -> dict:
    """Preprocess and predict each (picture, label, kind) of `pictures` (from :func:`validation_pictures`)
    -> {"threshold": the not_sure_threshold, "n", "no_digit": pictures said to have no digit,
    "accuracy": correct answers at any confidence, "not_sure": answers below the threshold,
    "confident_wrong": wrong answers at or above it} (fractions of n)."""
    top, correct, blank = [], [], 0
    for picture, label, _ in pictures:
        pre = preprocess(picture)
        if pre.blank:
            blank += 1
            continue
        probs = predict_probs(model, pre.image, mean, std)
        top.append(float(probs.max()))
        correct.append(int(probs.argmax()) == label)
    top, correct, n = np.array(top), np.array(correct, bool), len(pictures)
    threshold = not_sure_threshold(top, correct, max_confident_wrong * n / max(len(top), 1))
    return {"threshold": threshold, "n": n, "no_digit": blank / n, "accuracy": correct.sum() / n,
            "not_sure": float((top < threshold).sum() / n),
            "confident_wrong": float(((top >= threshold) & ~correct).sum() / n)}


def predict_image(source, model: torch.nn.Module, k: int = 3, mean: float = MNIST_MEAN,
                  std: float = MNIST_STD, classes: Sequence[str] = CLASSES, ink: str = "auto",
                  not_sure_below: float | None = None) -> Prediction:
    """A picture (path to a PNG/JPEG, PIL image, array, tensor: any size, RGB(A) or grayscale) ->
    Prediction with status "digit", "not sure" or "no digit" (see :class:`Prediction`).

    The one code path of the pad, notebook 12 and the web service. "No digit" is decided by
    :func:`preprocess` before the model is asked; "not sure" by :func:`judge` from the model's
    probabilities. ink: "auto", or "light" for a canvas of white ink on black (the pad: a filled
    canvas is then "ink everywhere"), "dark" for dark ink on paper. not_sure_below: the "not sure"
    threshold (None: :data:`NOT_SURE_BELOW`; notebook 11 computes one, ``calibration.load_not_sure``).
    Raises FileNotFoundError or ValueError (unreadable file, empty image, NaNs, a threshold outside
    [0, 1]) with a message saying what to fix.
    """
    if not 1 <= k <= len(classes):
        raise ValueError(f"k must be between 1 and {len(classes)}, got {k}")
    if not_sure_below is not None and not 0 <= not_sure_below <= 1:
        raise ValueError(f"not_sure_below is a probability, between 0 and 1, got {not_sure_below}")
    start = time.perf_counter()
    pre = preprocess(source, ink=ink)
    if pre.blank:
        return Prediction(None, [], None, time.perf_counter() - start, status="no digit", reason=pre.reason)
    model_start = time.perf_counter()
    probs = predict_probs(model, pre.image, mean, std)
    model_seconds = time.perf_counter() - model_start
    status, reason = judge(probs, classes, not_sure_below, image=pre.image)
    order = np.argsort(-probs)[:k]
    return Prediction(probs, [(classes[i], float(probs[i])) for i in order], pre.image,
                      time.perf_counter() - start, status=status, reason=reason, model_seconds=model_seconds)


# ------------------------------------------------------------------------------------ rasterising

Stroke = list[tuple[float, float]]


def rasterize(strokes: Sequence[Stroke], width: int = 280, height: int = 280,
              brush: float = 20.0) -> np.ndarray:
    """Strokes (lists of (x, y) canvas points) -> uint8 (height, width) image, white ink on black,
    drawn with a round brush of diameter `brush` (round caps and joins)."""
    im = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(im)
    r = brush / 2
    for stroke in strokes:
        points = [(float(x), float(y)) for x, y in stroke]
        if len(points) > 1:
            draw.line(points, fill=255, width=max(1, round(brush)), joint="curve")
        for x, y in points:            # round caps, and round joins at sharp turns
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(im)


def draw_digit_on_canvas(digit: np.ndarray, rng: np.random.Generator, size: int = 280,
                         scale: tuple[float, float] = (4.0, 9.0),
                         thickness: Sequence[int] = (-1, 0, 1, 2)) -> np.ndarray:
    """Redraw a uint8 (28, 28) MNIST digit on a size x size canvas at a random scale, offset and
    stroke thickness (dilated or eroded by that many canvas pixels); returns uint8 (size, size).
    Used by the preprocessing tests and notebook 12."""
    from PIL import ImageFilter

    s = rng.uniform(*scale)
    n = int(round(SIZE * s))
    n = min(n, size)
    big = Image.fromarray(np.asarray(digit, dtype=np.uint8)).resize((n, n), Image.Resampling.BICUBIC)
    t = int(rng.choice(np.asarray(thickness)))
    if t > 0:
        big = big.filter(ImageFilter.MaxFilter(2 * t + 1))
    elif t < 0:
        big = big.filter(ImageFilter.MinFilter(-2 * t + 1))
    canvas = Image.new("L", (size, size), 0)
    left, top = (int(rng.integers(0, size - n + 1)) for _ in range(2))
    canvas.paste(big, (left, top))
    return np.asarray(canvas)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """(h, w) float image in [0, 1] (or uint8) -> PNG bytes, enlarged `scale` times with sharp pixels."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    im = Image.fromarray(a)
    if scale != 1:
        im = im.resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def latency(model: torch.nn.Module, images: Sequence[np.ndarray], repeats: int = 1,
            mean: float = MNIST_MEAN, std: float = MNIST_STD) -> float:
    """Median seconds of preprocess + predict, one canvas image at a time (what the pad does); the
    first image once more beforehand as a warm-up (:func:`mnist_course.utils.latency_ms`)."""
    order = itertools.cycle(images)
    ms = latency_ms(lambda: predict_image(next(order), model, mean=mean, std=std),
                    repeats=repeats * len(images), warmup=1)
    return ms / 1000
