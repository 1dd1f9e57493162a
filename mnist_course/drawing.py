"""From a drawing or a picture to the model's guess: MNIST-style preprocessing, `predict_image`
and a live digit pad for the notebook (notebook 08).

MNIST's recipe (yann.lecun.com/exdb/mnist): each digit was size-normalised to fit a 20x20 box
keeping its aspect ratio (anti-aliased, hence the grey levels), then centred in a 28x28 field by
its centre of mass. :func:`preprocess` does the same to any image, step by step:

1. grayscale in [0, 1] (RGB(A), grayscale, any size; transparent pixels over a contrasting colour);
2. white ink on black: a picture whose border is light (dark ink on paper) is inverted, and the
   background level is stretched to 0;
3. blank check: too little ink means "no digit" (``Preprocessed.blank``), never a guess;
4. crop to the ink's bounding box;
5. resize so the longer side is 20 pixels, keeping the aspect ratio (Lanczos, anti-aliased);
6. paste into 28x28 so that the centre of mass lands on pixel (14, 14), where MNIST's digits have it.

The model then gets ``(x - mean) / std`` with the training set's mean and std, shape (1, 1, 28, 28).

The live drawing pad built on these functions is :class:`mnist_course.pad.DrawingPad`.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

# The training set's mean and std of x / 255 (what MNISTData computes); used when none are given.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CLASSES = tuple(str(i) for i in range(10))

BOX = 20        # MNIST fits each digit into 20x20 ...
SIZE = 28       # ... and centres it in 28x28
CENTRE = 14.0   # mean centre of mass of MNIST's training digits (row, column), measured


# --------------------------------------------------------------------------------- reading images

def load_image(source) -> np.ndarray:
    """A file path, PIL image, NumPy array or tensor -> float32 (H, W) grayscale in [0, 1].

    Arrays may be (H, W), (H, W, 1|3|4) or (1, H, W); uint8 is read as 0..255, floats as 0..1
    (or 0..255 when their maximum is above 1). Raises ValueError on empty images and NaNs.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
            raise FileNotFoundError(f"no image file at {path}{where}: check the path.")
        try:
            with Image.open(path) as im:
                im.load()
                source = im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ValueError(f"{path} is not a readable image ({type(e).__name__}: {e}); "
                             "give a PNG or JPEG file.") from e
    if isinstance(source, Image.Image):
        return _pil_to_gray(source)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if not isinstance(source, np.ndarray):
        raise TypeError(f"expected a file path, PIL image, NumPy array or tensor, got {type(source).__name__}.")
    return _array_to_gray(source)


def _pil_to_gray(im: Image.Image) -> np.ndarray:
    if im.width == 0 or im.height == 0:
        raise ValueError(f"the image is empty ({im.width}x{im.height} pixels).")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        return _array_to_gray(np.asarray(im.convert("RGBA")))
    if im.mode in ("I", "I;16", "F"):
        a = np.asarray(im, dtype=np.float32)
        return _array_to_gray(a / (65535.0 if a.max() > 255 else 255.0) if a.max() > 1 else a)
    return _array_to_gray(np.asarray(im.convert("L")))


def _array_to_gray(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        raise ValueError(f"the image is empty (shape {a.shape}).")
    while a.ndim > 2 and a.shape[0] == 1:          # (1, H, W), (1, 1, H, W)
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot read an image of shape {a.shape}: give (H, W) grayscale or "
                         "(H, W, 3) RGB or (H, W, 4) RGBA.")
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (65535.0 if a.max() > 255 else 255.0)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"the image contains {int((~np.isfinite(a)).sum())} NaN or infinite values; "
                             "clean it first (e.g. np.nan_to_num).")
        if a.max() > 1.0:
            a = a / 255.0
    else:
        raise ValueError(f"cannot read an image of dtype {a.dtype}.")
    if a.min() < 0.0 or a.max() > 1.0:
        raise ValueError(f"pixel values must lie in [0, 1] or [0, 255], got [{a.min():.3g}, {a.max():.3g}].")
    if a.ndim == 2:
        return a
    gray = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114   # ITU-R 601, as PIL's "L"
    if a.shape[-1] == 4:
        alpha = a[..., 3]
        opaque = alpha > 0.5
        ink_is_dark = opaque.any() and gray[opaque].mean() < 0.5
        background = 1.0 if ink_is_dark else 0.0  # transparent pixels take the colour the ink is not
        gray = gray * alpha + background * (1.0 - alpha)
    return gray.astype(np.float32)


# ---------------------------------------------------------------------------------- preprocessing

@dataclass
class Preprocessed:
    """The result of :func:`preprocess`: the 28x28 image (None when blank) and every step on the way."""

    image: np.ndarray | None          # (28, 28) float32 in [0, 1], white ink on black
    inverted: bool                    # True if the picture was dark ink on a light background
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str | None = None         # why no digit: "no ink", "too little structure", "ink everywhere"
    notes: list[str] = field(default_factory=list)   # e.g. how an unusual value range was rescaled

    @property
    def blank(self) -> bool:
        return self.image is None


def to_white_on_black(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W) in [0, 1] -> (white ink on black, stretched so the background is 0; inverted?).

    The background level is the median of the image's border."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    inverted = bool(np.median(border) > 0.5)
    if inverted:
        gray = 1.0 - gray
        border = 1.0 - border
    background = float(np.median(border))
    top = float(gray.max())
    if top - background < 1e-6:
        return np.zeros_like(gray), inverted
    return np.clip((gray - background) / (top - background), 0.0, 1.0).astype(np.float32), inverted


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
    top = int(np.clip(round(centre - cy), 0, size - h))    # clipped: the digit is never cut off
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top: top + h, left: left + w] = img
    return out


def preprocess(source, min_contrast: float = 0.15, min_ink: float = 0.0005,
               threshold: float = 0.2) -> Preprocessed:
    """Any picture of a digit -> an MNIST-like (28, 28) float32 image in [0, 1] (see the module doc).

    It is blank (``.image is None``) when the ink differs from the background by less than
    `min_contrast`, or covers less than `min_ink` of the picture (a fraction).
    """
    gray = load_image(source)
    steps = {"input (grayscale)": gray}
    contrast = float(gray.max() - gray.min())
    img, inverted = to_white_on_black(gray)
    steps["white on black"] = img
    ink = float((img > 0.5).mean())
    if contrast < min_contrast or ink < min_ink:
        return Preprocessed(None, inverted, steps, reason="no ink")
    cropped = crop_to_ink(img, threshold)
    steps["cropped to the ink"] = cropped
    boxed = fit_box(cropped)
    steps[f"fitted into {BOX}x{BOX}"] = boxed
    image = centre_in_field(boxed)
    steps[f"centred in {SIZE}x{SIZE}"] = image
    return Preprocessed(image, inverted, steps)


def to_model_input(image: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD,
                   device=None) -> torch.Tensor:
    """(28, 28) or (N, 28, 28) float in [0, 1] -> normalised float32 tensor (N, 1, 28, 28)."""
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
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, image: np.ndarray, mean: float = MNIST_MEAN,
                  std: float = MNIST_STD) -> np.ndarray:
    """(28, 28) image in [0, 1] -> (10,) softmax probabilities of an eval-mode model."""
    model.eval()
    logits = model(to_model_input(image, mean, std, model_device(model)))
    return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()


# "not sure" below this top probability; see calibrate_not_sure (placeholder until calibrated)
NOT_SURE_BELOW = 0.5


def judge(probs: np.ndarray, classes: Sequence[str] = CLASSES,
          not_sure_below: float | None = None) -> tuple[str, str | None]:
    """(10,) probabilities -> ("digit", None), or ("not sure", "4 or 9?") when the top probability
    is below `not_sure_below` (None: the calibrated :data:`NOT_SURE_BELOW`)."""
    threshold = NOT_SURE_BELOW if not_sure_below is None else not_sure_below
    first, second = np.argsort(-np.asarray(probs))[:2]
    if probs[first] < threshold:
        return "not sure", f"{classes[first]} or {classes[second]}?"
    return "digit", None


def predict_image(source, model: torch.nn.Module, k: int = 3, mean: float = MNIST_MEAN,
                  std: float = MNIST_STD, classes: Sequence[str] = CLASSES) -> Prediction:
    """A picture (path to a PNG/JPEG, PIL image, array, tensor: any size, RGB(A) or grayscale) ->
    Prediction with status "digit", "not sure" or "no digit" (see :class:`Prediction`).

    The one code path of the pad, notebook 08 and the web service. "No digit" is decided by
    :func:`preprocess` before the model is asked; "not sure" by :func:`judge` from the model's
    probabilities. Raises FileNotFoundError or ValueError (unreadable file, empty image, NaNs)
    with a message saying what to fix.
    """
    if not 1 <= k <= len(classes):
        raise ValueError(f"k must be between 1 and {len(classes)}, got {k}")
    start = time.perf_counter()
    pre = preprocess(source)
    if pre.blank:
        return Prediction(None, [], None, time.perf_counter() - start, status="no digit", reason=pre.reason)
    model_start = time.perf_counter()
    probs = predict_probs(model, pre.image, mean, std)
    model_seconds = time.perf_counter() - model_start
    status, reason = judge(probs, classes)
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
    Used by the preprocessing tests and notebook 08."""
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


# ----------------------------------------------------------------------------------- benchmarking

@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run a block with `num_threads` PyTorch CPU threads and restore the previous number afterwards,
    even on error (None: leave it as is). Yields the number in use. Notebook 08 and the benchmark time
    single-image prediction with it, without changing the kernel's setting for everything else."""
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    before = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def latency(model: torch.nn.Module, images: Sequence[np.ndarray], repeats: int = 1,
            mean: float = MNIST_MEAN, std: float = MNIST_STD) -> float:
    """Median seconds of preprocess + predict, one canvas image at a time (what the pad does)."""
    times = []
    predict_image(images[0], model, mean=mean, std=std)   # warm-up
    for _ in range(repeats):
        for img in images:
            start = time.perf_counter()
            predict_image(img, model, mean=mean, std=std)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def benchmark_rows(models: dict[str, torch.nn.Module] | None = None, n: int = 50,
                   seed: int = 0, threads: int | None = 1) -> list[dict]:
    """Median preprocess + predict latency (ms) per model on n MNIST test digits redrawn on a
    280x280 canvas, with `threads` PyTorch threads (restored afterwards; None: leave as is).
    Rows {"task", "model", "ms", "goal", "threads"}; loads the course's models if none are given."""
    from .data import load_mnist

    data = load_mnist("mnist")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.X_test), size=n, replace=False)
    images = [draw_digit_on_canvas(data.X_test[i].numpy(), rng) for i in idx]
    if models is None:
        from .pretrained import load_course_model

        models = {name: load_course_model(name, device="cpu")[0] for name in ("mlp", "cnn")}
    rows = []
    with torch_threads(threads) as used:
        for name, model in models.items():
            ms = 1000 * latency(model, images, repeats=3, mean=data.mean, std=data.std)
            rows.append({"task": "drawing: preprocess + predict one 280x280 canvas", "model": name,
                         "ms": round(ms, 3), "goal": "<= 5 ms", "threads": used})
    return rows
