"""Single-image latency rows of the benchmark: a drawing through preprocess + predict, and one
normalised digit through PyTorch eager and ONNX Runtime. Each row is a dict {"task", "model", "ms",
"goal", "threads"}; every time is :func:`mnist_course.utils.latency_ms` (median after warm-up).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from .. import drawing
from ..data import load_mnist
from ..pretrained import load_course_model
from ..serving import export
from ..utils import latency_ms, torch_threads

CANVAS = "one 280x280 canvas"


def drawing_rows(models: dict[str, torch.nn.Module] | None = None, n: int = 50,
                   seed: int = 0, threads: int | None = 1, onnx: tuple[str, ...] | None = None) -> list[dict]:
    """Median latency (ms) on n MNIST test digits redrawn on a 280x280 canvas, with `threads` PyTorch
    threads (restored afterwards; None: leave as is): preprocess + predict per model (PyTorch), then
    preprocess alone, then preprocess + predict through ONNX Runtime (the model exported in memory, as
    a deployment runs it) for each model named in `onnx` (None: "cnn" when it is given).
    Rows {"task", "model", "ms", "goal", "threads"}; loads the course's models if none are given."""

    data = load_mnist("mnist")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.X_test), size=n, replace=False)
    images = [drawing.draw_digit_on_canvas(data.X_test[i].numpy(), rng) for i in idx]
    if models is None:
        models = {name: load_course_model(name, device="cpu")[0] for name in ("mlp", "cnn")}
    onnx = tuple(name for name in ("cnn",) if name in models) if onnx is None else onnx
    repeats = 3 * len(images)
    rows = []
    with torch_threads(threads) as used:
        for name, model in models.items():
            ms = 1000 * drawing.latency(model, images, repeats=3, mean=data.mean, std=data.std)
            rows.append({"task": f"drawing: preprocess + predict {CANVAS}", "model": name,
                         "ms": round(ms, 3), "goal": "<= 5 ms", "threads": used})
        order = itertools.cycle(images)
        ms = latency_ms(lambda: drawing.preprocess(next(order)), repeats=repeats, warmup=1)
        rows.append({"task": f"drawing: preprocess alone, {CANVAS}", "model": "(no model)", "ms": round(ms, 3),
                     "goal": "", "threads": used})
        for name in onnx:
            sess = export.session(export.to_onnx(models[name]).SerializeToString(), threads=threads or 1)
            order = itertools.cycle(images)
            ms = latency_ms(lambda sess=sess, order=order: predict_onnx(sess, next(order), data.mean, data.std),
                            repeats=repeats, warmup=1)
            rows.append({"task": f"drawing: preprocess + predict {CANVAS}, ONNX Runtime (as a deployment)",
                         "model": name, "ms": round(ms, 3), "goal": "<= 1 ms", "threads": used})
    return rows


def predict_onnx(sess, source, mean: float = drawing.MNIST_MEAN, std: float = drawing.MNIST_STD):
    """drawing.predict_image's path through an onnxruntime session (export.session): a picture ->
    (status, reason, probs (10,) or None), "no digit" decided by drawing.preprocess, the rest by drawing.judge."""
    pre = drawing.preprocess(source)
    if pre.blank:
        return "no digit", pre.reason, None
    x = drawing.to_model_input(pre.image, mean, std).numpy()
    logits = sess.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})[0][0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return (*drawing.judge(probs, image=pre.image), probs)


def onnx_rows(models: dict[str, nn.Module] | list[str] | None = None, repeats: int = 200,
                   warmup: int = 20, threads: int = 1) -> list[dict]:
    """Median single-image latency (ms), PyTorch eager vs ONNX Runtime, on the same normalised test digit,
    `threads` threads each, warm-up runs excluded. models: {name: module}, names of course models, or
    None for the course's cnn and mlp. Exports in memory (writes nothing). Two rows per model,
    {"task", "model", "ms", "goal", "threads"}, like drawing_rows."""

    if models is None:
        models = ["cnn", "mlp"]
    if not isinstance(models, dict):
        models = {name: export.resolve(name)[0] for name in models}
    data = load_mnist("mnist")
    X = data.normalize(data.X_test[:1]).contiguous()
    X_np = X.numpy()
    rows = []
    with torch_threads(threads) as used:
        for name, model in models.items():
            model = model.to("cpu").eval()
            sess = export.session(export.to_onnx(model).SerializeToString(), threads=threads)

            def eager(model=model):
                with torch.inference_mode():
                    model(X)

            def ort_run(sess=sess):
                sess.run([export.OUTPUT_NAME], {export.INPUT_NAME: X_np})

            ms_torch = latency_ms(eager, repeats, warmup)
            ms_ort = latency_ms(ort_run, repeats, warmup)
            rows.append({"task": "one image: PyTorch eager", "model": name, "ms": round(ms_torch, 4),
                         "goal": "", "threads": used})
            rows.append({"task": "one image: ONNX Runtime (exported file)", "model": name, "ms": round(ms_ort, 4),
                         "goal": "<= PyTorch eager", "threads": used})
    return rows
