"""The 'not sure' threshold of predict_image, measured on realistic pictures of validation digits
(never the test set): ``mnist-course bench calibrate`` prints what drawing.NOT_SURE_BELOW should be.

Notebook 12 teaches the method (:func:`mnist_course.drawing.calibrate_not_sure`); this is the command
that computed the constant, with the course CNN of the recorded run.
"""

from __future__ import annotations

import argparse

from ..drawing import NOT_SURE_BELOW, calibrate_not_sure, validation_pictures
from ..pretrained import load_course_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course bench calibrate",
                                     description="Calibrate the 'not sure' threshold of predict_image "
                                     "on realistic pictures of validation digits (never the test set).")
    parser.add_argument("--n", type=int, default=2000, help="validation digits (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n {args.n}: give a positive number of validation digits")
    try:
        cnn, info = load_course_model("cnn", device="cpu", train_if_missing=False)
    except FileNotFoundError as e:
        parser.exit(1, f"error: {e}\n")
    result = calibrate_not_sure(cnn, validation_pictures(args.n, args.seed), info["mean"], info["std"])
    print(f"course CNN ({info['path']}) on {args.n} validation pictures: " +
          ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    print(f"NOT_SURE_BELOW = {result['threshold']}  (in the code: {NOT_SURE_BELOW})")
    return 0
