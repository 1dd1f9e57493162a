"""The drawing page's in-browser answer follows the server's: mnist_course/serving/web/preprocess.js (the
JavaScript port of drawing.preprocess and drawing.judge) against the library, on 600 random stroke sets.

Each stroke set (a seeded generator: digit-like strokes, scribbles, dots, strokes along and past the
edges, tiny and huge ones, several strokes, dashes, thin and thick brushes, the empty canvas) is drawn
once, as white ink on the page's black 280x280 canvas (drawing.rasterize; half of them anti-aliased as a
browser canvas draws them: drawn 4 times larger and box-averaged). The same pixels go to both sides:

- the server's way: the canvas as an RGBA picture into drawing.preprocess, then drawing.judge on the
  probabilities of one model (the course CNN, or the tests' small CNN: conftest.course_cnn);
- the page's way, in Node: canvasToGray and preprocess from preprocess.js, then the page's judge on the
  same model's probabilities for the page's 28x28 input (the browser runs the same weights in ONNX;
  tests/test_web_page.py checks that the logits agree).

They must agree (status "digit" / "not sure" / "no digit", the reason, the top class and the 28x28
input within 1e-3) on at least 99.5 % of the stroke sets; every disagreement is listed. Needs Node
(any version with ES modules); skipped, saying so, when there is none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_course import drawing

WEB = Path(drawing.__file__).resolve().parent / "serving" / "web"
N_SETS = 600
SIZE = 280
IMAGE_TOL = 1e-3          # largest difference allowed between the two 28x28 inputs
AGREE = 0.995             # the share of stroke sets on which both sides must agree

# The page's side in Node: preprocess.js copied as an ES module (.mjs), fed the canvases as raw bytes.
RUNNER = r"""
import { readFileSync, writeFileSync } from "node:fs";
import * as p from "./preprocess.mjs";

const [what, input, output] = process.argv.slice(2);
if (what === "preprocess") {
  const bytes = readFileSync(input), size = 280, n = bytes.length / (size * size);
  const images = new Float32Array(n * 784), answers = [];
  for (let c = 0; c < n; c++) {
    const rgba = new Uint8ClampedArray(4 * size * size);
    for (let i = 0; i < size * size; i++) {
      const v = bytes[c * size * size + i];
      rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = v;
      rgba[4 * i + 3] = 255;                    // the page's canvas is opaque (filled black first)
    }
    const g = p.canvasToGray(rgba, size, size);
    const r = p.preprocess(g.gray, g.width, g.height);
    if (r.image) images.set(r.image, 784 * c);
    answers.push({ blank: !r.image, reason: r.reason });
  }
  writeFileSync(output + ".bin", Buffer.from(images.buffer));
  writeFileSync(output + ".json", JSON.stringify(answers));
} else {
  const { probs, classes, images } = JSON.parse(readFileSync(input, "utf8"));
  writeFileSync(output, JSON.stringify(probs.map((q, i) => {
    const r = p.judge(q, classes, p.NOT_SURE_BELOW, Float32Array.from(images[i]));
    return [r.status, r.reason];
  })));
}
"""


# ------------------------------------------------------------------------------- the stroke sets

def _walk(rng, n, start, step, lo=-20.0, hi=SIZE + 20.0):
    """A random walk of n points from `start`, steps of about `step` pixels (a hand's wobble)."""
    points = [np.asarray(start, float)]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(n - 1):
        heading += rng.normal(0, 0.8)
        points.append(np.clip(points[-1] + step * np.array([np.cos(heading), np.sin(heading)]), lo, hi))
    return [tuple(map(float, q)) for q in points]


def stroke_set(rng: np.random.Generator, kind: str) -> tuple[list, float]:
    """(strokes in canvas pixels, brush diameter) of one `kind`."""
    thin, thick = rng.uniform(3, 8), rng.uniform(20, 40)
    brush = float(rng.choice([thin, rng.uniform(8, 32), thick]))    # the page's slider: 8..32
    if kind == "empty":
        return [], brush
    if kind == "digit":            # one to three strokes in the middle, as a digit is drawn
        return [_walk(rng, int(rng.integers(2, 14)), rng.uniform(70, 210, 2), rng.uniform(10, 40), 30, 250)
                for _ in range(int(rng.integers(1, 4)))], float(rng.uniform(8, 32))
    if kind == "scribble":         # a long scrawl, often over much of the canvas
        return [_walk(rng, int(rng.integers(20, 120)), rng.uniform(40, 240, 2), rng.uniform(20, 80))
                for _ in range(int(rng.integers(1, 4)))], float(rng.choice([rng.uniform(8, 32), thick]))
    if kind == "half":             # scribbled over until about half the canvas is ink (the scribble)
        brush, target = float(rng.uniform(20, 45)), rng.uniform(0.42, 0.56)
        walk = _walk(rng, 400, rng.uniform(40, 240, 2), rng.uniform(15, 50))
        for end in range(10, len(walk) + 1, 5):
            if (drawing.rasterize([walk[:end]], SIZE, SIZE, brush) > 127).mean() >= target:
                break
        return [walk[:end]], brush
    if kind == "dots":             # taps anywhere
        return [[tuple(map(float, rng.uniform(0, SIZE, 2)))] for _ in range(int(rng.integers(1, 12)))], brush
    if kind == "edge":             # along an edge, or leaving the canvas (pointer capture keeps drawing)
        side = int(rng.integers(4))
        a, b = rng.uniform(-30, 310, 2)
        off = float(rng.uniform(-15, 15)) + (SIZE if side >= 2 else 0)
        line = [(a, off), (b, off)] if side % 2 == 0 else [(off, a), (off, b)]
        return [line] + ([_walk(rng, 8, rng.uniform(0, SIZE, 2), 40)] if rng.random() < 0.3 else []), brush
    if kind == "tiny":             # a few pixels big
        centre = rng.uniform(20, 260, 2)
        return [_walk(rng, int(rng.integers(1, 6)), centre, rng.uniform(1, 6), 0, SIZE)
                for _ in range(int(rng.integers(1, 3)))], float(rng.uniform(2, 10))
    if kind == "huge":             # corner to corner with a fat brush, up to a filled canvas
        return [_walk(rng, int(rng.integers(2, 10)), rng.uniform(0, SIZE, 2), rng.uniform(100, 300))
                for _ in range(int(rng.integers(1, 4)))], float(rng.uniform(30, 140))
    if kind == "multi":            # several strokes here and there
        return [_walk(rng, int(rng.integers(1, 10)), rng.uniform(0, SIZE, 2), rng.uniform(5, 40))
                for _ in range(int(rng.integers(2, 8)))], brush
    if kind == "dash":             # straight lines at any angle and length
        centre, angle, length = rng.uniform(40, 240, 2), rng.uniform(0, np.pi), rng.uniform(10, 260)
        d = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
        return [[tuple(map(float, centre - d)), tuple(map(float, centre + d))]], brush
    raise ValueError(kind)


KINDS = ("digit", "scribble", "half", "dots", "edge", "tiny", "huge", "multi", "dash", "empty")
WEIGHTS = np.array([6, 4, 2, 2, 2, 2, 2, 3, 2, 0.2])


def canvases(n: int = N_SETS, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(kind of each stroke set, uint8 (n, 280, 280) canvases, white ink on black)."""
    rng = np.random.default_rng(seed)
    kinds = list(rng.choice(KINDS, size=n, p=WEIGHTS / WEIGHTS.sum()))
    kinds[:3] = ["empty", "scribble", "half"]
    out = np.zeros((n, SIZE, SIZE), np.uint8)
    for i, kind in enumerate(kinds):
        strokes, brush = stroke_set(rng, kind)
        if i % 2:                  # anti-aliased, as a browser canvas: 4 times larger, box-averaged
            big = drawing.rasterize([[(4 * x, 4 * y) for x, y in s] for s in strokes], 4 * SIZE, 4 * SIZE, 4 * brush)
            out[i] = np.asarray(Image.fromarray(big).reduce(4))
        else:
            out[i] = drawing.rasterize(strokes, SIZE, SIZE, brush)
        kinds[i] = f"{kind}{' (anti-aliased)' if i % 2 else ''}, brush {brush:.0f}"
    return kinds, out


# ---------------------------------------------------------------------------------- both sides

def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no `node` on PATH: the JavaScript side (preprocess.js) needs Node.js (any version with "
                    "ES modules, e.g. Debian's nodejs package)")
    return node


def run_node(node: str, folder: Path, *args: str) -> None:
    r = subprocess.run([node, str(folder / "runner.mjs"), *args], cwd=folder, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"node runner.mjs {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}"


@torch.inference_mode()
def probabilities(model, images: np.ndarray, mean: float, std: float) -> np.ndarray:
    x = drawing.to_model_input(images, mean, std)
    return torch.softmax(model(x).float(), dim=1).numpy()


def test_page_and_server_agree_on_random_strokes(course_cnn, tmp_path):
    node = node_or_skip()
    model, mean, std, where = course_cnn
    model.eval()
    shutil.copy(WEB / "preprocess.js", tmp_path / "preprocess.mjs")
    (tmp_path / "runner.mjs").write_text(RUNNER)
    kinds, cans = canvases()
    (tmp_path / "canvases.bin").write_bytes(cans.tobytes())
    run_node(node, tmp_path, "preprocess", "canvases.bin", "page")
    page_images = np.fromfile(tmp_path / "page.bin", np.float32).reshape(len(cans), 28, 28)
    page = json.loads((tmp_path / "page.json").read_text())

    # The server's side: the canvas's PNG as the service decodes it (RGBA), drawing.preprocess + judge.
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    server = [drawing.preprocess(Image.fromarray(np.dstack([c, c, c, alpha]), "RGBA")) for c in cans]
    served = [i for i, pre in enumerate(server) if not pre.blank]
    server_probs = np.zeros((len(cans), 10), np.float32)
    if served:
        server_probs[served] = probabilities(model, np.stack([server[i].image for i in served]), mean, std)
    judged = [i for i, a in enumerate(page) if not a["blank"]]
    page_probs = np.zeros((len(cans), 10), np.float32)
    if judged:
        page_probs[judged] = probabilities(model, page_images[judged], mean, std)
    (tmp_path / "probs.json").write_text(json.dumps({"probs": page_probs[judged].tolist(),
                                                     "classes": list(drawing.CLASSES),
                                                     "images": page_images[judged].reshape(len(judged), -1).tolist()}))
    run_node(node, tmp_path, "judge", "probs.json", "judged.json")
    page_judged = dict(zip(judged, json.loads((tmp_path / "judged.json").read_text())))

    def answer(blank, reason, probs, judge):
        if blank:
            return "no digit", reason, None
        status, why = judge
        return status, why, int(np.argmax(probs))

    mismatches, counts, gaps = [], {}, [0.0]
    for i, pre in enumerate(server):
        srv = answer(pre.blank, pre.reason, server_probs[i], None if pre.blank else drawing.judge(server_probs[i], image=pre.image))
        web = answer(page[i]["blank"], page[i]["reason"], page_probs[i], page_judged.get(i))
        counts[srv[0]] = counts.get(srv[0], 0) + 1
        gap = 0.0 if pre.blank or page[i]["blank"] else float(np.abs(pre.image - page_images[i]).max())
        gaps.append(gap)
        if srv != web or gap > IMAGE_TOL:
            mismatches.append(f"#{i} {kinds[i]}: server {srv}, page {web}"
                              + (f", 28x28 inputs differ by up to {gap:.3g}" if gap > IMAGE_TOL else ""))
    share = 1 - len(mismatches) / len(cans)
    print(f"{len(cans)} stroke sets ({where}): server answers {counts}; page and server agree on {share:.1%}; "
          f"largest difference between the two 28x28 inputs {max(gaps):.3g}")
    for m in mismatches:
        print("  ", m)
    assert share >= AGREE, (f"the page (preprocess.js) and the server (drawing.py) disagree on {len(mismatches)} "
                            f"of {len(cans)} stroke sets ({1 - share:.1%}; at most {1 - AGREE:.1%} allowed), "
                            "(status, reason, top class):\n" + "\n".join(mismatches))
    thick = sum(not pre.blank and drawing.stroke_width(pre.image) > drawing.THICK_ABOVE for pre in server)
    assert thick >= 5, f"only {thick} stroke sets have strokes thicker than THICK_ABOVE: its rule goes unchecked"
    smooth = sum(not pre.blank and drawing.stroke_width(pre.image) <= drawing.THICK_ABOVE
                 and drawing.detail(pre.image) < drawing.LOW_DETAIL_BELOW for pre in server)
    assert smooth >= 5, (f"only {smooth} stroke sets with thin strokes have little detail (drawing.detail below "
                         "LOW_DETAIL_BELOW): its rule goes unchecked")
    assert counts.get("digit", 0) and counts.get("not sure", 0) and counts.get("no digit", 0), \
        f"the stroke sets do not give every answer ({counts}): the test would miss a kind of disagreement"
