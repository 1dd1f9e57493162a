"""Single-image latency rows of the benchmark: a drawing through preprocess + predict, and one
normalised digit through PyTorch eager and ONNX Runtime. Each row is a dict {"task", "model", "ms",
"goal", "threads"}; every time is :func:`mnist_course.utils.latency_ms` (median after warm-up).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import drawing
from ..data import load_mnist
from ..pretrained import load_course_model
from ..serving import export
from ..utils import latency_ms, torch_threads


def drawing_rows(models: dict[str, torch.nn.Module] | None = None, n: int = 50,
                   seed: int = 0, threads: int | None = 1) -> list[dict]:
    """Median preprocess + predict latency (ms) per model on n MNIST test digits redrawn on a
    280x280 canvas, with `threads` PyTorch threads (restored afterwards; None: leave as is).
    Rows {"task", "model", "ms", "goal", "threads"}; loads the course's models if none are given."""

    data = load_mnist("mnist")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.X_test), size=n, replace=False)
    images = [drawing.draw_digit_on_canvas(data.X_test[i].numpy(), rng) for i in idx]
    if models is None:
        models = {name: load_course_model(name, device="cpu")[0] for name in ("mlp", "cnn")}
    rows = []
    with torch_threads(threads) as used:
        for name, model in models.items():
            ms = 1000 * drawing.latency(model, images, repeats=3, mean=data.mean, std=data.std)
            rows.append({"task": "drawing: preprocess + predict one 280x280 canvas", "model": name,
                         "ms": round(ms, 3), "goal": "<= 5 ms", "threads": used})
    return rows


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
