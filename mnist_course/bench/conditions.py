"""Pictures as people take them, and a benchmark split that measures on what was not tuned on.

    mnist-course bench pictures --conditions dev|held-out|both [--n 300]

Each *condition* turns one MNIST test digit (uint8 28x28, white on black) into a picture the way
people photograph, scan or crop digits: a tight crop (no margin) scaled so its longer side is N
pixels; a tiny thumbnail scaled up again; a margin of some fraction of the digit's size; a rotation;
a thinner or thicker pen (grey erosion / dilation at 4x before scaling); JPEG at a low quality; a
low contrast. Each comes in both polarities: ``dark`` (dark ink on light, as on paper) and
``light`` (light ink on dark, as MNIST and the pad). Every picture depends only on (part, row, seed,
index): the same call gives the same bytes.

The split:

- **dev** (:data:`DEV`): MNIST test digits 0..4999, seeds from 0. Anyone tuning the preprocessing
  may look at these rows as often as they like.
- **held-out** (:data:`HELD_OUT`): MNIST test digits 5000..9999, other seeds (from 10_000) and
  *other condition parameters* (sizes 20/40/120 px, margins 5/35 %, rotation +-12 deg, pen x0.7 /
  x2.5, JPEG 40, contrast 25 %). It only reports: it must never be used to choose a parameter, a
  threshold or a design. A change judged on it is no longer measured by it.

No-digit rows (:func:`mnist_course.photos.no_digit_picture`: an empty page, plain noise, a textured
page, each in both polarities) give the "no digit" rates.

A row reports, out of its ``n`` pictures: ``right`` (status "digit" and the right digit), ``not
sure``, ``no digit`` and ``confident wrong`` (status "digit" and a wrong digit; on a no-digit row,
any "digit").
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

POLARITIES = ("dark", "light")      # dark ink on light paper; light ink on a dark background
GOALS = {"tight_right": 0.97, "confident_wrong": 0.01, "no_digit": 0.99}


@dataclass(frozen=True)
class Condition:
    """One row's recipe: ``kind`` is one of "tight", "thumb", "margin", "rotate", "pen", "jpeg",
    "contrast", "blank"; ``value`` its parameter (see :func:`make_picture`)."""

    kind: str
    value: float | str

    @property
    def name(self) -> str:
        v = self.value
        return {"tight": f"tight crop, longer side {v} px",
                "thumb": f"{v}x{v} thumbnail scaled up to {8 * v} px",
                "margin": f"margin {v} % of the digit's size",
                "rotate": f"rotated +-{v} deg",
                "pen": f"pen width x{v}",
                "jpeg": f"JPEG quality {v}",
                "contrast": f"contrast {v} %",
                "blank": f"no digit: {v}"}[self.kind]


def _conditions(sizes, thumb, margins, rotate, pens, jpeg, contrast) -> tuple[Condition, ...]:
    rows = [Condition("tight", s) for s in sizes] + [Condition("thumb", thumb)]
    rows += [Condition("margin", m) for m in margins] + [Condition("rotate", rotate)]
    rows += [Condition("pen", p) for p in pens] + [Condition("jpeg", jpeg), Condition("contrast", contrast)]
    return tuple(rows) + tuple(Condition("blank", k) for k in ("empty page", "noise", "texture"))


@dataclass(frozen=True)
class Part:
    """A part of the split: which MNIST test digits, which seeds, which conditions."""

    name: str
    digits: range            # indices into the MNIST test set
    seed: int                # the first seed; row r uses seed + r
    conditions: tuple[Condition, ...]
    note: str


DEV = Part("dev", range(0, 5000), 0,
           _conditions((16, 28, 64, 200), 8, (0, 10, 25, 50), 15, (0.5, 1, 2, 3), 30, 20),
           "MNIST test digits 0..4999, seeds 0..: may be looked at while tuning")
HELD_OUT = Part("held-out", range(5000, 10_000), 10_000,
                _conditions((20, 40, 120), 6, (5, 35), 12, (0.7, 2.5), 40, 25),
                "MNIST test digits 5000..9999, seeds 10000.., other parameters: reports only, never tuned on")
PARTS = {"dev": DEV, "held-out": HELD_OUT}


# --------------------------------------------------------------------------------------- pictures

def _ink_box(a: np.ndarray, level: float = 0.0) -> np.ndarray:
    rows, cols = np.flatnonzero(a.max(axis=1) > level), np.flatnonzero(a.max(axis=0) > level)
    return a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _scale(a: np.ndarray, longer: int) -> np.ndarray:
    """float (h, w) -> its longer side `longer` pixels, aspect kept (Lanczos; bilinear below 4 px)."""
    h, w = a.shape
    f = longer / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.clip(np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize(
        size, Image.Resampling.LANCZOS), dtype=np.float32), 0.0, 1.0)


def _pad(a: np.ndarray, margin: float) -> np.ndarray:
    """A margin of `margin` x the longer side on every side."""
    m = int(round(margin * max(a.shape)))
    return np.pad(a, m)


def _pen(d: np.ndarray, factor: float) -> np.ndarray:
    """Thinner (factor < 1) or thicker (> 1) strokes: grey erosion / dilation with a disk at 4x,
    by (factor - 1) x half the stroke width (MNIST's is about 2.5 px at 28x28, 10 px at 4x)."""
    big = np.clip(np.asarray(Image.fromarray(d, mode="F").resize((112, 112), Image.Resampling.BICUBIC)), 0, 1)
    r = abs(factor - 1.0) * 5.0
    if r < 0.5:
        return big
    n = int(np.ceil(r))
    yy, xx = np.mgrid[-n: n + 1, -n: n + 1]
    disk = xx ** 2 + yy ** 2 <= r ** 2
    if factor > 1:
        return ndimage.grey_dilation(big, footprint=disk)
    return ndimage.grey_erosion(big, footprint=disk)


def _jpeg(u8: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def make_picture(digit: np.ndarray, condition: Condition, polarity: str,
                 rng: np.random.Generator) -> np.ndarray:
    """A uint8 (28, 28) MNIST digit (white on black) -> a uint8 picture under `condition`, in
    `polarity` ("dark": dark ink on light; "light": light ink on dark).

    - tight N: cropped to the ink (every pixel > 0), no margin, longer side N pixels;
    - thumb T: cropped to the ink, longer side T pixels, then scaled up to 8 T pixels;
    - margin M: cropped to the ink, longer side 64 px, M % of it added on every side;
    - rotate A: rotated by +A or -A degrees (random sign), cropped, 10 % margin, 64 px;
    - pen F: strokes F times as wide (eroded or dilated at 4x), cropped, 10 % margin, 64 px;
    - jpeg Q: cropped, 10 % margin, 64 px, JPEG quality Q;
    - contrast C: cropped, 10 % margin, 64 px, ink and background C % of the range apart around a
      random mid-grey (0.35..0.65).
    Random choices come from `rng` only.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"polarity must be one of {POLARITIES}, got {polarity!r}")
    d = np.asarray(digit, dtype=np.float32) / 255.0
    kind, v = condition.kind, condition.value
    lo, hi = 0.0, 1.0
    if kind == "tight":
        a = _scale(_ink_box(d), int(v))
    elif kind == "thumb":
        a = _scale(_scale(_ink_box(d), int(v)), 8 * int(v))
    elif kind == "margin":
        a = _pad(_scale(_ink_box(d), 64), v / 100)
    elif kind == "rotate":
        angle = float(v) * (1 if rng.random() < 0.5 else -1)
        big = Image.fromarray(d, mode="F").resize((112, 112), Image.Resampling.BICUBIC)
        r = np.clip(np.asarray(big.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)), 0, 1)
        a = _pad(_scale(_ink_box(r, 0.02), 64), 0.1)
    elif kind == "pen":
        a = _pad(_scale(_ink_box(_pen(d, float(v)), 0.02), 64), 0.1)
    elif kind in ("jpeg", "contrast"):
        a = _pad(_scale(_ink_box(d), 64), 0.1)
        if kind == "contrast":
            mid = float(rng.uniform(0.35, 0.65))
            lo, hi = mid - v / 200, mid + v / 200
    else:
        raise ValueError(f"make_picture makes digit pictures; {kind!r} is not a digit condition")
    img = lo + (hi - lo) * (a if polarity == "light" else 1.0 - a)
    u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return _jpeg(u8, int(v)) if kind == "jpeg" else u8


def blank_picture(kind: str, polarity: str, rng: np.random.Generator) -> np.ndarray:
    """A picture with no digit: "empty page", "noise" or "texture" (a page with strong paper blotches
    and a lighting gradient), from :func:`mnist_course.photos.no_digit_picture`; "light" inverts it
    (a dark page)."""
    from ..photos import no_digit_picture

    if kind == "texture":
        image, _ = no_digit_picture(rng, "empty page", texture=0.04, gradient=0.3)
    else:
        image, _ = no_digit_picture(rng, kind)
    return 255 - image if polarity == "light" else image


def row_pictures(part: Part, row: int, polarity: str, X, y, n: int) -> tuple[list[np.ndarray], list[int | None]]:
    """n pictures of `part`'s row `row` (an index into part.conditions) in `polarity`, and their labels
    (None for no-digit rows). Digits are drawn without replacement from part.digits of the MNIST test
    set (X uint8 (10000, 28, 28), y (10000,)); picture i depends only on (part, row, polarity, i)."""
    c = part.conditions[row]
    seq = np.random.SeedSequence([part.seed + row, POLARITIES.index(polarity)])
    order_seq, pic_seq = seq.spawn(2)
    idx = np.asarray(part.digits)[np.random.default_rng(order_seq).permutation(len(part.digits))[:n]]
    images, labels = [], []
    for i, child in zip(idx, pic_seq.spawn(n)):
        rng = np.random.default_rng(child)
        if c.kind == "blank":
            images.append(blank_picture(str(c.value), polarity, rng))
            labels.append(None)
        else:
            images.append(make_picture(X[i], c, polarity, rng))
            labels.append(int(y[i]))
    return images, labels


# -------------------------------------------------------------------------------------- scoring

def score_row(answers, labels) -> dict:
    """[(status, digit | None)] against labels (int, or None for no digit) -> {"n", "right", "not_sure",
    "no_digit", "confident_wrong"} (fractions of n)."""
    n = len(labels)
    right = sum(a == ("digit", lab) for a, lab in zip(answers, labels) if lab is not None)
    wrong = sum(a[0] == "digit" and a[1] != lab for a, lab in zip(answers, labels))
    return {"n": n, "right": right / n, "not_sure": sum(a[0] == "not sure" for a in answers) / n,
            "no_digit": sum(a[0] == "no digit" for a in answers) / n, "confident_wrong": wrong / n}


def row_goals(condition: Condition, row: dict) -> dict[str, bool]:
    """The goals a scored row is held to: confident wrong <= 1 % everywhere; right >= 97 % on tight crops
    of 16 px and more; "no digit" >= 99 % on no-digit rows."""
    met = {"confident_wrong": row["confident_wrong"] <= GOALS["confident_wrong"]}
    if condition.kind == "tight" and int(condition.value) >= 16:
        met["right"] = row["right"] >= GOALS["tight_right"]
    if condition.kind == "blank":
        met["no_digit"] = row["no_digit"] >= GOALS["no_digit"]
    return met


def evaluate_part(part: Part, model, mean: float, std: float, X, y, n: int = 300) -> list[dict]:
    """Every row of `part` in both polarities through drawing.predict_image -> scored rows (with
    "part", "condition", "polarity", "met")."""
    from .. import drawing

    rows = []
    for r, c in enumerate(part.conditions):
        for polarity in POLARITIES:
            images, labels = row_pictures(part, r, polarity, X, y, n)
            answers = []
            for image in images:
                pred = drawing.predict_image(image, model, k=1, mean=mean, std=std)
                answers.append((pred.status, int(pred.topk[0][0]) if pred.status == "digit" else None))
            row = {"part": part.name, "condition": c.name, "kind": c.kind, "value": c.value,
                   "polarity": polarity, **score_row(answers, labels)}
            row["met"] = row_goals(c, row)
            rows.append(row)
    return rows


def scoring_setup(model=None, info: dict | None = None, data=None, model_name: str = "cnn"):
    """What a scoring run needs -> (model, info, data, mean, std): the given model, or the course
    model `model_name` (never trained here: FileNotFoundError when missing); the given MNISTData or
    MNIST; the normalisation of `info`, else of the data."""
    from ..data import load_mnist

    if model is None:
        from ..pretrained import load_course_model

        model, info = load_course_model(model_name, device="cpu", train_if_missing=False)
    info = info or {}
    data = load_mnist("mnist") if data is None else data
    return model, info, data, info.get("mean", data.mean), info.get("std", data.std)


def conditions_section(parts=("dev", "held-out"), n: int = 300, model=None, info: dict | None = None,
                       data=None, model_name: str = "cnn") -> dict:
    """Score the course model (`model_name`, never trained here) on the chosen parts -> {"parts":
    {name: note}, "n", "model", "model_path", "model_test_acc", "rows", "seconds"}."""
    import time

    from ..utils import torch_threads

    start = time.perf_counter()
    model, info, data, mean, std = scoring_setup(model, info, data, model_name)
    X, y = data.X_test.numpy(), data.y_test.numpy()
    rows = []
    with torch_threads(1):
        for name in parts:
            rows += evaluate_part(PARTS[name], model, mean, std, X, y, n)
    return {"parts": {name: PARTS[name].note for name in parts}, "n": n, "model": model_name,
            "model_path": info.get("path"), "model_test_acc": info.get("test_acc"), "rows": rows,
            "seconds": time.perf_counter() - start}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown_table(section: dict) -> str:
    """One line per (part, condition, polarity): pictures, right, not sure, no digit, confident wrong,
    with a mark where a goal applies (✓ met, ✗ not)."""
    lines = ["| part | condition | ink | pictures | right | not sure | no digit | confident wrong |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in section["rows"]:
        m = r["met"]

        def mark(key, m=m):
            return "" if key not in m else (" ✓" if m[key] else " ✗")

        lines.append(f"| {r['part']} | {r['condition']} | {r['polarity']} | {r['n']} | {_pct(r['right'])}{mark('right')} | "
                     f"{_pct(r['not_sure'])} | {_pct(r['no_digit'])}{mark('no_digit')} | "
                     f"{_pct(r['confident_wrong'])}{mark('confident_wrong')} |")
    return "\n".join(lines)


def describe(section: dict) -> str:
    """A sentence: which parts, which model, the goals."""
    acc = section.get("model_test_acc")
    parts = "; ".join(f"**{k}**: {v}" for k, v in section["parts"].items())
    return (f"Pictures as people take them ({parts}); course {section['model']}"
            + (f" at {section['model_path']}" if section.get("model_path") else "")
            + (f" ({100 * acc:.2f}% on the MNIST test set)" if acc else "")
            + f"; up to {section['n']} pictures a row, {section.get('seconds', 0):.0f} s. Goals: right >= 97 % on "
            "tight crops of 16 px and more, confident wrong <= 1 % on every row, \"no digit\" >= 99 % on "
            "no-digit rows. The held-out part reports only: nothing is chosen on it.")


SCOPE_RIGHT = 0.95   # a digit row under this share right is out of scope: the README names it


def summary(section: dict, part: str = "held-out") -> str:
    """A few sentences for the README from a scored section (:func:`conditions_section`) -> markdown:
    `part`'s tight-crop rows (right, confident wrong), the rows out of scope (under SCOPE_RIGHT right,
    with their figures), every row over the confident-wrong goal, and the no-digit rows."""
    rows = [r for r in section["rows"] if r["part"] == part]
    if not rows:
        return f"No {part} rows in the last benchmark run: run `make benchmark`."

    def figures(group, key):
        return " / ".join(f"{_pct(r[key])} ({r['polarity']})" for r in group)

    tight = [r for r in rows if r["kind"] == "tight"]
    digits = [r for r in rows if r["kind"] != "blank"]
    blank = [r for r in rows if r["kind"] == "blank"]
    out = list(dict.fromkeys(r["condition"] for r in digits if r["right"] < SCOPE_RIGHT))
    lines = [f"Measured on the {part} part of the benchmark ({section['n']} pictures a row, dark ink on "
             f"light and light on dark; course {section['model']}):"]
    if tight:
        lines.append(f"- tight crops ({', '.join(dict.fromkeys(str(r['value']) for r in tight))} px): "
                     f"{_pct(min(r['right'] for r in tight))} to {_pct(max(r['right'] for r in tight))} right, "
                     f"at most {_pct(max(r['confident_wrong'] for r in tight))} confidently wrong;")
    inside = [r for r in digits if r["condition"] not in out]
    if inside:
        lines.append(f"- every digit row in scope: at least {_pct(min(r['right'] for r in inside))} right;")
    for name in out:
        group = [r for r in digits if r["condition"] == name]
        lines.append(f"- **out of scope**: {name}: {figures(group, 'right')} right, "
                     f"{figures(group, 'confident_wrong')} confidently wrong, the rest \"not sure\" or \"no digit\";")
    over = [r for r in rows if r["confident_wrong"] > GOALS["confident_wrong"]]
    lines.append("- confidently wrong: at most 1 % on every row." if not over else
                 "- confidently wrong above the 1 % goal: " + "; ".join(
                     f"{r['condition']} ({r['polarity']}): {_pct(r['confident_wrong'])}" for r in over) + ".")
    if blank:
        lines.append(f"- pictures without a digit (empty page, noise, texture): at least "
                     f"{_pct(min(r['no_digit'] for r in blank))} \"no digit\".")
    return "\n".join(lines)
