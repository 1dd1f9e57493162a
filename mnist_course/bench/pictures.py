"""Three picture pipelines side by side on realistic pictures (:mod:`mnist_course.photos`).

    mnist-course bench pictures [--n-digits 2000] [--n-blank 500] [--seed 0]
    mnist-course bench pictures --conditions dev|held-out|both [--n 300]


(a) "naive": what a newcomer writes; (b) "previous": drawing.preprocess as it was at commit 5e3b6a9,
kept here for this comparison only; (c) "new": whatever mnist_course.drawing.predict_image does now.
(a) and (b) never say "not sure": every answer they give that is not "no digit" counts as a
confident digit. (c) is confident when its status is "digit".

These pictures come from the generator the preprocessing was tuned on. ``--conditions`` measures
today's predict_image instead on pictures as people take them (:mod:`.conditions`: tight crops,
thumbnails, margins, rotation, pen width, JPEG, low contrast, both polarities), split into a *dev*
part (MNIST test digits 0..4999, may be looked at while tuning) and a *held-out* part (digits
5000..9999, other seeds and parameters, reports only, never used to choose anything).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .. import drawing
from ..photos import conditions, picture_set
from ..utils import torch_threads

PIPELINES = ("naive", "previous", "new")
PIPELINE_NOTES = {
    "naive": "grayscale, inverted when the border is light, the whole picture resized to 28x28",
    "previous": "drawing.preprocess of commit 5e3b6a9 (stretch the border level to 0, crop, 20x20, centre)",
    "new": "mnist_course.drawing.predict_image now",
}
CONFIDENT = ('a confident answer is a digit: any answer of "naive" and "previous" other than '
             '"no digit" (they never say "not sure"), status "digit" for "new"')
TARGETS = {"digits_gradient": 0.97, "blank_no_digit": 0.99, "confident_wrong": 0.01}   # the goals the pipeline was built to


def _to_gray(image) -> np.ndarray:
    """uint8 (H, W) -> float32 in [0, 1] (floats are taken as already in [0, 1])."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a grayscale (H, W) picture, got shape {a.shape}")
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def naive_input(image) -> np.ndarray:
    """Pipeline (a): uint8 (H, W) picture -> (28, 28) float32 in [0, 1], white on black: inverted when
    the border's median is light, then the whole picture resized to 28x28 (area average). Never blank."""
    gray = _to_gray(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray = 1.0 - gray
    small = Image.fromarray(gray, mode="F").resize((28, 28), Image.Resampling.BOX)
    return np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)


# --- pipeline (b): drawing.preprocess of commit 5e3b6a9 (git show 5e3b6a9:mnist_course/drawing.py). Its
# --- first step, gone from drawing, is kept here; crop, fit and centre are drawing's, unchanged since
# --- (tests/test_pictures.py compares the whole pipeline with the one in git). Not for use elsewhere.

def _old_to_white_on_black(gray: np.ndarray) -> tuple[np.ndarray, bool]:
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


def old_preprocess(image, min_contrast: float = 0.15, min_ink: float = 0.0005,
                   threshold: float = 0.2) -> np.ndarray | None:
    """Pipeline (b), the preprocessing of commit 5e3b6a9: uint8 (H, W) picture -> (28, 28) float32 in
    [0, 1], or None for "no digit" (contrast below `min_contrast` or ink below `min_ink`)."""
    gray = _to_gray(image)
    contrast = float(gray.max() - gray.min())
    img, _ = _old_to_white_on_black(gray)
    ink = float((img > 0.5).mean())
    if contrast < min_contrast or ink < min_ink:
        return None
    return drawing.centre_in_field(drawing.fit_box(drawing.crop_to_ink(img, threshold)))


def status_of(pred) -> str:
    """A drawing.Prediction's status; one from before statuses existed (commit 5e3b6a9) is "digit" unless blank."""
    status = getattr(pred, "status", None)
    return status if status is not None else ("no digit" if pred.blank else "digit")


def run_pipeline(name: str, images, model, mean: float, std: float) -> tuple[list[tuple[str, int | None]], float]:
    """One pipeline over uint8 pictures, one picture at a time -> ([(status, digit or None)], seconds).

    status is "digit", "not sure" or "no digit"; the digit is the answer when status is "digit"."""
    import time

    import torch

    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; choose from {PIPELINES}")
    model.eval()
    answers: list[tuple[str, int | None]] = []
    start = time.perf_counter()
    for image in images:
        if name == "new":
            pred = drawing.predict_image(image, model, k=1, mean=mean, std=std)
            status = status_of(pred)
            answers.append((status, int(pred.topk[0][0]) if status == "digit" else None))
            continue
        x = naive_input(image) if name == "naive" else old_preprocess(image)
        if x is None:
            answers.append(("no digit", None))
            continue
        with torch.inference_mode():
            logits = model(drawing.to_model_input(x, mean, std, drawing.model_device(model)))
        answers.append(("digit", int(logits[0].argmax())))
    return answers, time.perf_counter() - start


def score(answers, labels, kinds) -> dict:
    """Answers [(status, digit | None)] against labels [int | None (no digit)] and kind strings ->
    the benchmark's rates (fractions; None when a group is empty):

    - ``digits``: correct digits over all digit pictures; ``digits_gradient``: the same over the digit
      pictures with noise sigma <= 0.1 and a lighting gradient; ``digits_not_sure`` / ``digits_no_digit``;
    - ``blank_declined``: no-digit pictures answered "no digit" or "not sure"; ``blank_no_digit``: "no digit" only;
    - ``confident_wrong``: (wrong digits on digit pictures + digits on no-digit pictures) / all pictures.
    """
    if not len(answers) == len(labels) == len(kinds):
        raise ValueError(f"answers, labels and kinds differ in length: {len(answers)}, {len(labels)}, {len(kinds)}")

    def rate(hits, group):
        return sum(hits) / len(group) if group else None

    digit = [i for i, lab in enumerate(labels) if lab is not None]
    blank = [i for i, lab in enumerate(labels) if lab is None]
    hard = [i for i in digit if (c := conditions(kinds[i]))["noise"] <= 0.1 and c["gradient"] > 0]
    correct = [answers[i] == ("digit", labels[i]) for i in range(len(labels))]
    wrong = [answers[i][0] == "digit" and answers[i][1] != labels[i] for i in range(len(labels))]
    return {
        "n_digits": len(digit), "n_blank": len(blank), "n_gradient": len(hard),
        "digits": rate([correct[i] for i in digit], digit),
        "digits_gradient": rate([correct[i] for i in hard], hard),
        "digits_not_sure": rate([answers[i][0] == "not sure" for i in digit], digit),
        "digits_no_digit": rate([answers[i][0] == "no digit" for i in digit], digit),
        "blank_declined": rate([answers[i][0] != "digit" for i in blank], blank),
        "blank_no_digit": rate([answers[i][0] == "no digit" for i in blank], blank),
        "confident_wrong": rate(wrong, labels),
    }


def targets_met(row: dict) -> dict[str, bool]:
    """Which of TARGETS a scored row meets (a group that is empty does not meet its target)."""
    return {"digits_gradient": row["digits_gradient"] is not None and row["digits_gradient"] >= TARGETS["digits_gradient"],
            "blank_no_digit": row["blank_no_digit"] is not None and row["blank_no_digit"] >= TARGETS["blank_no_digit"],
            "confident_wrong": row["confident_wrong"] is not None and row["confident_wrong"] <= TARGETS["confident_wrong"]}


def evaluate(pictures, model, mean: float, std: float, pipelines=PIPELINES) -> dict:
    """Labelled pictures [(uint8 image, label | None, kind)] -> {"rows": one scored dict per pipeline
    (with "pipeline", "ms" per picture, "met"), "answers": {pipeline: answers}}."""
    images = [p[0] for p in pictures]
    labels = [p[1] for p in pictures]
    kinds = [p[2] for p in pictures]
    rows, answers = [], {}
    for name in pipelines:
        answers[name], seconds = run_pipeline(name, images, model, mean, std)
        row = {"pipeline": name, **score(answers[name], labels, kinds),
               "ms": 1000 * seconds / max(len(images), 1)}
        row["met"] = targets_met(row)
        rows.append(row)
    return {"rows": rows, "answers": answers}


def _pct(x: float | None, met: bool | None = None, decimals: int = 1) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.{decimals}f}%" + ("" if met is None else (" ✓" if met else " ✗"))


def markdown_table(report: dict) -> str:
    """The side-by-side table of :func:`benchmark_section`'s report (or evaluate's plus n/seed keys)."""
    rows = report["rows"]
    r0 = rows[0]
    t = TARGETS
    lines = [f"| pipeline ({r0['n_digits']:,} digit pictures, {r0['n_blank']:,} without a digit) | digits correct | "
             f"digits correct, noise σ ≤ 0.1 + gradient ({r0['n_gradient']:,}; goal ≥ {100 * t['digits_gradient']:.0f}%) | "
             f"no-digit pictures: \"no digit\" (goal ≥ {100 * t['blank_no_digit']:.0f}%) | "
             "no-digit pictures: \"no digit\" or \"not sure\" | digits: \"not sure\" | "
             f"confident wrong, all pictures (goal ≤ {100 * t['confident_wrong']:.0f}%) | ms / picture |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["met"]
        lines.append(f"| {r['pipeline']}: {PIPELINE_NOTES[r['pipeline']]} | {_pct(r['digits'])} | "
                     f"{_pct(r['digits_gradient'], m['digits_gradient'])} | {_pct(r['blank_no_digit'], m['blank_no_digit'])} | "
                     f"{_pct(r['blank_declined'])} | {_pct(r['digits_not_sure'])} | "
                     f"{_pct(r['confident_wrong'], m['confident_wrong'], 2)} | {r['ms']:.1f} |")
    return "\n".join(lines)


def breakdown(pictures, answers: dict) -> str:
    """A Markdown table: correct digits per condition group, and "no digit" per no-digit kind, per pipeline."""
    groups: dict[str, list[int]] = {}
    for i, (_, label, kind) in enumerate(pictures):
        c = conditions(kind)
        if label is None:
            groups.setdefault(f"no digit: {c['kind']} (\"no digit\")", []).append(i)
            continue
        noise = "noise < 0.05" if c["noise"] < 0.05 else "noise 0.05-0.1"
        groups.setdefault(f"digits, {noise}, {'gradient' if c['gradient'] > 0 else 'even light'}", []).append(i)
        if c["jpeg"]:
            groups.setdefault("digits, JPEG", []).append(i)
        if c["blur"]:
            groups.setdefault("digits, blurred", []).append(i)
        if c["height"] < 0.4:
            groups.setdefault("digits, small (ink < 40% of the shorter side)", []).append(i)
    names = list(answers)
    lines = ["| group | pictures | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for group in sorted(groups):
        idx = groups[group]
        cells = []
        for name in names:
            a = answers[name]
            hits = [a[i][0] == "no digit" if pictures[i][1] is None else a[i] == ("digit", pictures[i][1]) for i in idx]
            cells.append(_pct(sum(hits) / len(idx)))
        lines.append(f"| {group} | {len(idx)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def benchmark_section(n_digits: int = 2000, n_blank: int = 500, seed: int = 0, model_name: str = "cnn",
                      model=None, info: dict | None = None, data=None) -> dict:
    """Generate the realistic set from the MNIST *test* split and score the three pipelines on it
    with the course model (`model_name`, never trained here: FileNotFoundError when missing).
    Returns {"n_digits", "n_blank", "seed", "model", "generate_s", "total_s", "rows", "pictures", "answers"}."""
    import time

    from .conditions import scoring_setup

    start = time.perf_counter()
    model, info, data, mean, std = scoring_setup(model, info, data, model_name)
    pictures = picture_set(data.X_test.numpy(), data.y_test.numpy(), n_digits, n_blank, seed)
    generate_s = time.perf_counter() - start
    with torch_threads(1):
        result = evaluate(pictures, model, mean, std)
    return {"n_digits": n_digits, "n_blank": n_blank, "seed": seed, "model": model_name,
            "model_test_acc": info.get("test_acc"), "generate_s": generate_s,
            "total_s": time.perf_counter() - start, "rows": result["rows"],
            "pictures": pictures, "answers": result["answers"]}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    p = argparse.ArgumentParser(prog="mnist-course bench pictures",
                                description="Three pipelines side by side on realistic pictures made from the "
                                            "MNIST test set.")
    p.add_argument("--n-digits", type=int, default=2000, help="digit pictures (default 2000, at most 10000)")
    p.add_argument("--n-blank", type=int, default=500, help="pictures without a digit (default 500)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp"], help="the course model (default cnn)")
    p.add_argument("--conditions", choices=["dev", "held-out", "both"], default=None,
                   help="instead: today's predict_image on pictures as people take them (tight crops, thumbnails, "
                        "margins, rotation, pen width, JPEG, contrast; both polarities): the dev part (may be tuned "
                        "on), the held-out part (reports only) or both")
    p.add_argument("--n", type=int, default=300, help="with --conditions: pictures per row (default 300, at most 5000)")
    p.add_argument("--save", type=str, default=None, metavar="FOLDER",
                   help="also write the first 30 digit and 10 no-digit pictures as PNGs into FOLDER (must not exist yet)")
    args = p.parse_args(argv)
    if not 0 <= args.n_digits <= 10_000 or args.n_blank < 0 or args.n_digits + args.n_blank == 0:
        p.error("--n-digits must be between 0 and 10000 and --n-blank >= 0, not both 0")
    if args.conditions is not None:
        return _conditions_main(p, args)
    if args.save and Path(args.save).exists():
        p.error(f"--save {args.save}: it exists already; give a new folder (nothing is overwritten)")
    try:
        report = benchmark_section(args.n_digits, args.n_blank, args.seed, args.model)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    acc = report["model_test_acc"]
    print(f"{args.model} course model" + (f" (MNIST test accuracy {100 * acc:.2f}%)" if acc else "")
          + f"; seed {args.seed}; {CONFIDENT}.\n")
    print(markdown_table(report))
    print()
    print(breakdown(report["pictures"], report["answers"]))
    print(f"\n{report['total_s']:.1f} s in all ({report['generate_s']:.1f} s loading and generating the pictures), "
          "one PyTorch thread.")
    if args.save:
        folder = Path(args.save)
        folder.mkdir(parents=True)
        pics = report["pictures"]
        chosen = [i for i in range(len(pics)) if pics[i][1] is not None][:30]
        chosen += [i for i in range(len(pics)) if pics[i][1] is None][:10]
        for i in chosen:
            image, label, kind = pics[i]
            name = f"{i:03d}_{'none' if label is None else label}_{conditions(kind)['kind'].replace(' ', '-')}.png"
            Image.fromarray(image).save(folder / name)
        print(f"wrote {len(chosen)} pictures to {folder}")
    return 0



def _conditions_main(p, args) -> int:
    import sys

    from . import conditions

    if not 1 <= args.n <= 5000:
        p.error("--n must be between 1 and 5000 (each part holds 5,000 MNIST test digits)")
    parts = ("dev", "held-out") if args.conditions == "both" else (args.conditions,)
    try:
        section = conditions.conditions_section(parts, args.n, model_name=args.model)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(conditions.describe(section) + "\n")
    print(conditions.markdown_table(section))
    return 0
