"""Realistic labelled pictures: MNIST digits photographed on paper, and pictures with no digit at all.

Pictures for testing :func:`mnist_course.drawing.predict_image` on inputs that are not clean
canvases (notebook 12 shows one; the benchmark scores thousands): each picture is built from a seed,
so the same seed gives the same bytes.

- :func:`realistic_digit`: a 28x28 MNIST digit written dark on light paper at a random size, position
  and slight rotation, under uneven light (a lighting gradient), with paper texture, slight blur,
  sensor noise (sigma up to 0.1) and JPEG compression;
- :func:`no_digit_picture`: the same photo effects on an empty page, plain grey noise, a shadow,
  a stray dot or a stray line (a dash, or a ruled line across the page);
- :func:`picture_set`: a labelled list of both, from any (X, y) (the benchmark uses the MNIST *test*
  split, never seen in training; tuning and calibration use the validation split).

Each picture's conditions are written into its ``kind`` string, e.g.
``"digit: noise=0.043 gradient=0.31 texture=0.021 blur=0.55 jpeg=78 rotate=-6.2 height=0.52 size=150x213"``;
:func:`conditions` reads one back into a dict.

``mnist-course bench pictures`` (:mod:`mnist_course.bench.pictures`) compares three pipelines on
such a set.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

BLANK_KINDS = ("empty page", "noise", "shadow", "dot", "line")
SIZE_RANGE = (100, 300)     # picture height and width, pixels
MAX_NOISE = 0.1             # sensor noise sigma, on the [0, 1] intensity scale


# ------------------------------------------------------------------------------------ photo effects

def _uniform(rng: np.random.Generator, low: float, high: float, p: float = 1.0) -> float:
    """A uniform draw in [low, high] with probability p, else 0.0 (always two draws: fixed stream)."""
    on, value = rng.random(), rng.uniform(low, high)
    return float(value) if on < p else 0.0


def _pick(options: dict, key: str, default):
    """options[key] when given (not None), else the random default already drawn."""
    value = options.get(key)
    return default if value is None else value


def _draw_effects(rng: np.random.Generator, options: dict) -> dict:
    """Draw every photo condition from rng (always in the same order), then apply the caller's overrides."""
    h, w = (int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1)) for _ in range(2))
    drawn = {
        "size": (h, w),
        "paper": float(rng.uniform(0.75, 1.0)),       # paper reflectance
        "light": float(rng.uniform(0.8, 1.0)),        # brightest light level
        "gradient": _uniform(rng, 0.1, 0.4, p=0.6),   # fraction of light lost across the picture
        "angle": float(rng.uniform(0, 2 * np.pi)),    # direction of the gradient
        "texture": _uniform(rng, 0.005, 0.04, p=0.7),  # std of the paper's blotches
        "blur": _uniform(rng, 0.3, 1.0, p=0.6),       # Gaussian blur sigma, pixels
        "noise": float(rng.uniform(0.0, MAX_NOISE)),  # sensor noise sigma
        "jpeg": int(rng.integers(50, 96)) if rng.random() < 0.7 else 0,  # JPEG quality, 0 = none
        "seed": int(rng.integers(2**31)),             # for the noise fields
    }
    unknown = set(options) - set(drawn) - {"height", "rotate", "ink", "kind"}
    if unknown:
        raise TypeError(f"unknown picture option(s) {sorted(unknown)}; known: "
                        f"{sorted(set(drawn) | {'height', 'rotate', 'ink'})}")
    for key in drawn:
        drawn[key] = _pick(options, key, drawn[key])
    h, w = drawn["size"]
    if not (16 <= h <= 4000 and 16 <= w <= 4000):
        raise ValueError(f"size must be (height, width) between 16 and 4000 pixels, got {drawn['size']}")
    if not 0.0 <= drawn["noise"] <= 0.5:
        raise ValueError(f"noise is a sigma on the [0, 1] scale between 0 and 0.5, got {drawn['noise']}")
    if not (drawn["jpeg"] == 0 or 1 <= drawn["jpeg"] <= 95):
        raise ValueError(f"jpeg is a quality between 1 and 95 (0 for no JPEG), got {drawn['jpeg']}")
    return drawn


def _lighting(c: dict) -> np.ndarray:
    """(H, W) light level: `light` at the bright side, losing `gradient` of it across the picture."""
    h, w = c["size"]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(c["angle"]) * cols / max(w - 1, 1) + np.sin(c["angle"]) * rows / max(h - 1, 1)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)          # 0 at the bright side, 1 at the dark
    return (c["light"] * (1.0 - c["gradient"] * t)).astype(np.float32)


def _paper(c: dict, rng: np.random.Generator) -> np.ndarray:
    """(H, W) paper reflectance: the paper level plus smooth blotches of std `texture`."""
    h, w = c["size"]
    paper = np.full((h, w), c["paper"], np.float32)
    if c["texture"] > 0:
        blotches = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma=4.0)
        blotches += 0.3 * ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), sigma=1.0)
        paper += c["texture"] * blotches / max(float(blotches.std()), 1e-6)
    return paper


def _photograph(reflectance: np.ndarray, c: dict, rng: np.random.Generator,
                light: np.ndarray | None = None) -> np.ndarray:
    """Reflectance (H, W) -> uint8 photo: times the light, blurred, sensor noise, JPEG round trip."""
    img = reflectance * (_lighting(c) if light is None else light)
    if c["blur"] > 0:
        img = ndimage.gaussian_filter(img, sigma=c["blur"])
    if c["noise"] > 0:
        img = img + c["noise"] * rng.standard_normal(img.shape).astype(np.float32)
    out = (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
    if c["jpeg"]:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(c["jpeg"]))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))
    return out


def _kind(name: str, c: dict, **extra) -> str:
    """'name: key=value ...' with the conditions a report splits by."""
    h, w = c["size"]
    parts = [f"noise={c['noise']:.3f}", f"gradient={c['gradient']:.2f}", f"texture={c['texture']:.3f}",
             f"blur={c['blur']:.2f}", f"jpeg={int(c['jpeg'])}"]
    parts += [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()]
    return f"{name}: " + " ".join(parts + [f"size={h}x{w}"])


def conditions(kind: str) -> dict:
    """A picture's kind string -> {"kind": name, "noise": float, "gradient": float, ..., "size": (h, w)}."""
    name, _, rest = kind.partition(": ")
    out: dict = {"kind": name}
    for part in rest.split():
        key, _, value = part.partition("=")
        if key == "size":
            h, _, w = value.partition("x")
            out[key] = (int(h), int(w))
        else:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


# ----------------------------------------------------------------------------------------- digits

def _digit_layer(digit: np.ndarray, c: dict, height: float, rotate: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Ink coverage (H, W) in [0, 1] with the digit's ink `height` x the picture's shorter side, rotated,
    at a random place; and the ink's box (top, left, bottom, right), bottom/right exclusive."""
    h, w = c["size"]
    d = np.asarray(digit, dtype=np.float32) / 255.0
    rows = np.flatnonzero(d.max(axis=1) > 0.1)
    if len(rows) == 0:
        raise ValueError("the digit image has no ink (all pixels <= 25 of 255): give an MNIST digit.")
    ink_h = rows[-1] - rows[0] + 1
    scale = height * min(h, w) / ink_h
    n = max(2, int(round(28 * scale)))
    big = Image.fromarray(d, mode="F").resize((n, n), Image.Resampling.BICUBIC)
    big = big.rotate(rotate, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0.0)
    a = np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)
    rs, cs = np.flatnonzero(a.max(axis=1) > 0.05), np.flatnonzero(a.max(axis=0) > 0.05)
    a = a[rs[0]: rs[-1] + 1, cs[0]: cs[-1] + 1]
    margin = max(2, int(0.04 * min(h, w)))
    fit = min(1.0, (h - 2 * margin) / a.shape[0], (w - 2 * margin) / a.shape[1])
    if fit < 1.0:                                   # rotated too wide or too tall: shrink to fit
        a = np.clip(np.asarray(Image.fromarray(a, mode="F").resize(
            (max(1, int(a.shape[1] * fit)), max(1, int(a.shape[0] * fit))), Image.Resampling.BICUBIC)), 0.0, 1.0)
    top = int(rng.integers(margin, h - margin - a.shape[0] + 1))
    left = int(rng.integers(margin, w - margin - a.shape[1] + 1))
    layer = np.zeros((h, w), np.float32)
    layer[top: top + a.shape[0], left: left + a.shape[1]] = a
    return layer, (top, left, top + a.shape[0], left + a.shape[1])


def render_digit(digit, rng: np.random.Generator, **options) -> tuple[np.ndarray, dict]:
    """Like :func:`realistic_digit`, but also returns the picture's conditions as a dict (with the
    digit's ink box ``"box": (top, left, bottom, right)`` and the ``"kind"`` string)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    digit = np.asarray(digit)
    if digit.shape != (28, 28):
        raise ValueError(f"digit must be one (28, 28) uint8 MNIST image, got shape {digit.shape}")
    c = _draw_effects(rng, options)
    height = float(_pick(options, "height", rng.uniform(0.3, 0.75)))
    rotate = float(_pick(options, "rotate", rng.uniform(-10.0, 10.0)))
    ink = float(_pick(options, "ink", rng.uniform(0.0, 0.3)))
    if not 0.05 <= height <= 1.0:
        raise ValueError(f"height is the digit's ink height over the picture's shorter side, in [0.05, 1], got {height}")
    field_rng = np.random.default_rng(c["seed"])
    layer, box = _digit_layer(digit, c, height, rotate, field_rng)
    reflectance = _paper(c, field_rng) * (1.0 - layer) + ink * layer
    image = _photograph(reflectance, c, field_rng)
    info = dict(c, height=height, rotate=rotate, ink=ink, box=box)
    info["kind"] = _kind("digit", c, rotate=round(rotate, 1), height=round(height, 2))
    return image, info


def realistic_digit(digit, rng: np.random.Generator, **options) -> np.ndarray:
    """A uint8 (28, 28) MNIST digit (white on black) -> a uint8 (H, W) photo-like picture of it, dark on light.

    Every condition is drawn from `rng` unless given as an option: ``size=(H, W)`` (100..300 each),
    ``height`` (the ink's height over the shorter side, 0.3..0.75), ``rotate`` (degrees, -10..10),
    ``ink`` (ink reflectance, 0..0.3), ``paper`` (0.75..1), ``light`` (0.8..1), ``gradient`` (light
    lost across the picture, 0.1..0.4 in 60 % of pictures, else 0), ``angle`` (its direction,
    radians), ``texture`` (paper blotches' std, 0..0.04), ``blur`` (sigma, 0 or 0.3..1 px),
    ``noise`` (sensor noise sigma, 0..0.1), ``jpeg`` (quality 50..95 in 70 % of pictures, 0 = none).
    The same generator state gives the same bytes.
    """
    return render_digit(digit, rng, **options)[0]


# --------------------------------------------------------------------------------------- no digit

def no_digit_picture(rng: np.random.Generator, kind: str | None = None, **options) -> tuple[np.ndarray, str]:
    """A uint8 (H, W) picture with no digit, and its kind string (``"<kind>: noise=... ..."``).

    kind (random when None) is one of ``BLANK_KINDS``: "empty page"; "noise" (plain grey noise,
    sigma 0.03..0.1, on any grey level); "shadow" (a soft-edged shadow across the page); "dot" (a
    stray dot, 1..3 % of the shorter side across); "line" (a dash within 25 degrees of horizontal, or
    a thin ruled line across the page). Every picture gets the photo effects of :func:`realistic_digit`
    (same options).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if kind is None:
        kind = BLANK_KINDS[int(rng.integers(len(BLANK_KINDS)))]
    if kind not in BLANK_KINDS:
        raise ValueError(f"unknown no-digit kind {kind!r}; choose one of {BLANK_KINDS}")
    c = _draw_effects(rng, options)
    field_rng = np.random.default_rng(c["seed"])
    h, w = c["size"]
    paper = _paper(c, field_rng)
    light = _lighting(c)
    extra: dict = {}
    if kind == "noise":
        level = float(field_rng.uniform(0.2, 0.9))
        paper = paper * 0 + level
        c["noise"] = _pick(options, "noise", float(field_rng.uniform(0.03, MAX_NOISE)))
        c["gradient"], c["texture"], light = 0.0, 0.0, np.ones((h, w), np.float32)
        extra["level"] = round(level, 2)
    elif kind == "shadow":
        depth, softness = float(field_rng.uniform(0.2, 0.5)), float(field_rng.uniform(0.02, 0.2))
        theta, offset = float(field_rng.uniform(0, 2 * np.pi)), float(field_rng.uniform(-0.3, 0.3))
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
        d = (np.cos(theta) * (cols / w - 0.5) + np.sin(theta) * (rows / h - 0.5) - offset) / softness
        light = light * (1.0 - depth / (1.0 + np.exp(-d)))            # a soft edge: light -> light * (1 - depth)
        extra["depth"] = round(depth, 2)
    elif kind in ("dot", "line"):
        ink = float(field_rng.uniform(0.0, 0.3))
        im = Image.new("F", (w, h), 0.0)
        from PIL import ImageDraw

        draw = ImageDraw.Draw(im)
        s = min(h, w)
        if kind == "dot":
            r = float(field_rng.uniform(0.005, 0.015)) * s + 0.5
            x, y = field_rng.uniform(0.1 * w, 0.9 * w), field_rng.uniform(0.1 * h, 0.9 * h)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=1.0)
            extra["radius"] = round(r, 1)
        elif field_rng.random() < 0.5:          # a dash
            length = float(field_rng.uniform(0.08, 0.3)) * w
            a = np.deg2rad(field_rng.uniform(-25, 25))
            x, y = field_rng.uniform(0.2 * w, 0.8 * w), field_rng.uniform(0.15 * h, 0.85 * h)
            dx, dy = 0.5 * length * np.cos(a), 0.5 * length * np.sin(a)
            draw.line((x - dx, y - dy, x + dx, y + dy), fill=1.0, width=max(1, round(field_rng.uniform(0.01, 0.03) * s)))
            extra["line"] = "dash"
        else:                                   # a ruled line across the whole page
            y = field_rng.uniform(0.1 * h, 0.9 * h)
            tilt = field_rng.uniform(-0.05, 0.05) * h
            draw.line((0, y - tilt, w, y + tilt), fill=1.0, width=max(1, round(field_rng.uniform(0.003, 0.01) * s)))
            ink = float(field_rng.uniform(0.3, 0.6))   # ruled lines are faint
            extra["line"] = "ruled"
        layer = np.asarray(im, dtype=np.float32)
        paper = paper * (1.0 - layer) + ink * layer
    image = _photograph(paper, c, field_rng, light)
    return image, _kind(kind, c, **extra)


# ---------------------------------------------------------------------------------------- the set

def picture_set(X, y, n_digits: int, n_blank: int, seed: int = 0) -> list[tuple[np.ndarray, int | None, str]]:
    """(X uint8 (N, 28, 28), y (N,) labels) -> n_digits digit pictures then n_blank no-digit pictures,
    each ``(uint8 (H, W) image, label int or None, kind str)``.

    Digits are drawn from X without replacement (n_digits <= N); the no-digit kinds take turns
    (``BLANK_KINDS``). Picture i depends only on (seed, i): a smaller set is a prefix of a larger one.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 3 or X.shape[1:] != (28, 28) or len(X) != len(y):
        raise ValueError(f"X must be (N, 28, 28) digits and y (N,) labels, got {X.shape} and {y.shape}")
    if not 0 <= n_digits <= len(X) or n_blank < 0:
        raise ValueError(f"n_digits must be between 0 and {len(X)} (the digits given) and n_blank >= 0, "
                         f"got {n_digits} and {n_blank}")
    order_seq, digit_seq, blank_seq = np.random.SeedSequence(seed).spawn(3)
    order = np.random.default_rng(order_seq).permutation(len(X))
    out: list[tuple[np.ndarray, int | None, str]] = []
    for i, child in zip(order[:n_digits], digit_seq.spawn(n_digits)):
        image, info = render_digit(X[i], np.random.default_rng(child))
        out.append((image, int(y[i]), info["kind"]))
    for j, child in enumerate(blank_seq.spawn(n_blank)):
        image, kind = no_digit_picture(np.random.default_rng(child), BLANK_KINDS[j % len(BLANK_KINDS)])
        out.append((image, None, kind))
    return out
