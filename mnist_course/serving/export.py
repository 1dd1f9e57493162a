"""Export a trained model to ONNX, check it against PyTorch, and time both.

    mnist-course export --model cnn                      # models/onnx/cnn.onnx (make export)
    mnist-course export --checkpoint runs/cnn-adamw      # a run of mnist-course train
    mnist-course export --model mlp --out mlp.onnx --force

The file is one self-contained ``.onnx`` (weights inside, no external data) written with PyTorch's
``torch.onnx.export(..., dynamo=True)`` (the default exporter since PyTorch 2.9; it needs
``onnxscript``) at opset :data:`OPSET`. BatchNorm is folded into the convolutions and linear layers,
so the graph has only Conv, MaxPool, Relu, Reshape and Gemm, which onnxruntime-web's wasm backend runs.

- input ``"input"``: float32 (N, 1, 28, 28), pixels/255 normalised with the metadata's mean and std;
  output ``"logits"``: float32 (N, 10); N (the batch) is dynamic.
- metadata_props (strings): model, dataset, mean, std, classes (JSON list), accuracy (recorded test
  accuracy in [0, 1]), exported_by (``mnist_course <version>``), torch (version), opset, checkpoint
  (the weights file's name) and checkpoint_sha256 (its SHA-256, so that whoever serves the file can
  tell which checkpoint it came from: :func:`verify_file`, which `mnist-course serve` runs at start-up).
  :func:`load_onnx` returns them parsed (mean/std/accuracy floats, classes a list).

Before anything is written, ONNX Runtime runs the serialized model on the whole test set (10,000
images) and its logits must match PyTorch's to :data:`TOLERANCE` with the same predicted class for
every image; otherwise nothing is written. An existing file is replaced only with ``--force``
(``overwrite=True``); those same bytes are then written to a temporary name and renamed
(files.atomic_write), under a lock on the file, so it is never half-written; the temporary files of
an export killed mid-write (SIGKILL) are removed by the next export of that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_write, locked, temporaries
from ..settings import models_dir

if TYPE_CHECKING:   # PyTorch loads when exporting or verifying; reading an exported file needs only onnxruntime
    import torch
    from torch import nn

INPUT_NAME, OUTPUT_NAME = "input", "logits"
OPSET = 20            # onnxruntime-web runs it; the dynamo exporter's own default in torch 2.9-2.14
TOLERANCE = 1e-4      # largest |logits_onnx - logits_torch| accepted on the test set
METADATA_KEYS = ("model", "dataset", "mean", "std", "classes", "accuracy", "exported_by", "torch", "opset",
                 "checkpoint", "checkpoint_sha256")
CHECK_BATCH = 16      # pictures in verify_file's fixed batch
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ExportError(RuntimeError):
    """The model could not be exported, or the exported file does not match PyTorch."""


def default_path(name: str) -> Path:
    """Where model `name` is exported: <models_dir()>/onnx/<name>.onnx (models/fast/onnx in fast mode)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model name {name!r} cannot be a file name: use letters, digits, '.', '_' or '-'.")
    return models_dir(create=False) / "onnx" / f"{name}.onnx"


# ---------------------------------------------------------------------------------- the source


def _course_source(name: str) -> tuple[nn.Module, dict]:
    from ..pretrained import load_course_model

    model, info = load_course_model(name, device="cpu")
    return model, {"model": name, "dataset": info["dataset"], "mean": info["mean"], "std": info["std"],
                   "classes": list(info["classes"]), "accuracy": info["test_acc"], "source": info["path"]}


def _checkpoint_source(path: Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, info) from a training run folder or a .safetensors file written by save_model."""
    from ..checkpoint import CheckpointError, load_model
    from ..data import load_mnist

    path = Path(path)
    if path.is_dir():
        weights = path / "best.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{path} holds no best.safetensors: give a run folder of "
                                    "`mnist-course train` (after its first epoch) or a .safetensors file.")
    elif path.is_file():
        weights = path
    else:
        raise FileNotFoundError(f"no checkpoint at {path}: give a run folder of `mnist-course train` "
                                "or a .safetensors file written by mnist_course.checkpoint.save_model.")
    if weights.suffix != ".safetensors":
        raise CheckpointError(f"{weights} is not a .safetensors model file; give the run folder or its "
                              "best.safetensors (state.pt holds a training state, not a model to export).")
    model, meta = load_model(weights, device="cpu")
    run = weights.parent
    metrics = _read_json(run / "metrics.json") if weights.name == "best.safetensors" else {}
    config = _read_json(run / "config.json") if weights.name == "best.safetensors" else {}
    dataset = metrics.get("config", {}).get("dataset") or config.get("dataset") or meta.get("dataset") or "mnist"
    info = {"dataset": dataset}
    for key in ("mean", "std", "classes"):
        info[key] = metrics.get(key, meta.get(key))
    if any(info[k] is None for k in ("mean", "std", "classes")):
        data = load_mnist(dataset)
        info.update({k: v for k, v in {"mean": data.mean, "std": data.std, "classes": list(data.classes)}.items()
                     if info[k] is None})
    info["classes"] = [str(c) for c in info["classes"]]
    info["accuracy"] = metrics.get("test_acc", meta.get("test_acc"))
    info["model"] = run.name if weights.name == "best.safetensors" else weights.stem
    info["source"] = str(weights)
    num_classes = getattr(model, "config", {}).get("num_classes")
    if num_classes != len(info["classes"]):
        raise CheckpointError(f"{weights}: the model has {num_classes} outputs but its data have "
                              f"{len(info['classes'])} classes; it is not a classifier for {dataset}.")
    return model, info


def _read_json(path: Path) -> dict:
    from ..checkpoint import CheckpointError

    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); repair or delete it.") from e


def resolve(model_name_or_checkpoint) -> tuple[nn.Module, dict]:
    """(model in eval mode on the CPU, info) for a course model name ('cnn', 'mlp') or a checkpoint path.

    info: model (the name), dataset, mean, std, classes, accuracy (recorded test accuracy or None), source.
    """
    from ..pretrained import COURSE_MODELS

    if isinstance(model_name_or_checkpoint, str) and model_name_or_checkpoint.strip().lower() in COURSE_MODELS:
        return _course_source(model_name_or_checkpoint.strip().lower())
    path = Path(model_name_or_checkpoint)
    if isinstance(model_name_or_checkpoint, str) and not path.exists() and "/" not in model_name_or_checkpoint \
            and not path.suffix:
        raise ValueError(f"unknown model {model_name_or_checkpoint!r}: choose one of {', '.join(COURSE_MODELS)}, "
                         "or give a checkpoint (a training run folder or a .safetensors file).")
    return _checkpoint_source(path)


# ------------------------------------------------------------------------------- ONNX in memory


def to_onnx(model: nn.Module, metadata: dict | None = None):
    """The onnx.ModelProto of `model` (eval mode, CPU): input "input" (N, 1, 28, 28) -> "logits" (N, 10),
    N dynamic, exported with the dynamo exporter at OPSET, with `metadata` as metadata_props (strings)."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it; a clear message beats torch's)
    except ImportError as e:
        raise ExportError("torch.onnx.export(dynamo=True) needs the onnxscript package: "
                          "`pip install onnxscript` (it is in the project's dependencies).") from e
    import torch

    model = model.to("cpu").eval()
    X = torch.zeros(2, 1, 28, 28)
    program = torch.onnx.export(model, (X,), None, dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                optimize=True, external_data=False, verbose=False)
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    return proto


def check_interface(proto, num_classes: int = 10) -> None:
    """Raise ExportError unless the ONNX graph takes "input" float32 (N, 1, 28, 28) and returns "logits"
    float32 (N, num_classes) with N a named, dynamic dimension, and keeps all its weights inside the file."""
    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    graph = proto.graph
    problems = []
    if [i.name for i in graph.input] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        problems.append(f"inputs {[i.name for i in graph.input]} and outputs {[o.name for o in graph.output]} "
                        f"instead of [{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")
    else:
        shape_in, shape_out = dims(graph.input[0]), dims(graph.output[0])
        if len(shape_in) != 4 or not isinstance(shape_in[0], str) or shape_in[1:] != [1, 28, 28]:
            problems.append(f"input shape {shape_in} instead of (N, 1, 28, 28) with a dynamic batch N")
        if len(shape_out) != 2 or not isinstance(shape_out[0], str) or shape_out[1] != num_classes:
            problems.append(f"output shape {shape_out} instead of (N, {num_classes}) with a dynamic batch N")
        if any(v.type.tensor_type.elem_type != 1 for v in (graph.input[0], graph.output[0])):
            problems.append("input or output not float32")
    if any(t.data_location == 1 for t in graph.initializer):  # onnx.TensorProto.EXTERNAL
        problems.append("weights stored in an external data file")
    if problems:
        raise ExportError("the exported graph does not have the agreed interface: " + "; ".join(problems))


def session(model_bytes_or_path, threads: int | None = 1):
    """An onnxruntime CPU InferenceSession on a file path or serialized model bytes, with `threads` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = str(model_bytes_or_path) if isinstance(model_bytes_or_path, (str, os.PathLike)) else model_bytes_or_path
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def load_onnx(path: str | os.PathLike | bytes, threads: int | None = 1):
    """(onnxruntime.InferenceSession, metadata dict) of an exported file (or its serialized bytes); metadata
    has model, dataset, mean, std, accuracy (floats; accuracy None if unknown), classes (list of str) and the
    other keys as strings. Run it with session.run(["logits"], {"input": X}) on X: float32 (N, 1, 28, 28)
    normalised -> (N, 10). ExportError when it is no ONNX model or lacks the metadata."""
    where = "the exported model" if isinstance(path, bytes) else Path(path)
    if not isinstance(path, bytes) and not where.is_file():
        raise FileNotFoundError(f"no ONNX file at {where}; export one with `mnist-course export`.")
    try:
        sess = session(path, threads)
    except Exception as e:  # onnxruntime raises its own exception types for unreadable files
        raise ExportError(f"{where} is not a readable ONNX model ({type(e).__name__}: {str(e)[:200]}); "
                          "export it again with `mnist-course export --force`.") from e
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    missing = [k for k in ("model", "mean", "std", "classes") if k not in meta]
    if missing:
        raise ExportError(f"{where} lacks the metadata {', '.join(missing)}; it was not written by "
                          "mnist-course export: export it again.")
    try:
        for key in ("mean", "std", "accuracy"):
            if key in meta:
                meta[key] = json.loads(meta[key])
        meta["classes"] = json.loads(meta["classes"])
    except json.JSONDecodeError as e:
        raise ExportError(f"{where} has unreadable metadata ({e}); export it again with "
                          "`mnist-course export --force`.") from e
    return sess, meta


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex (what checkpoint_sha256 in an exported file's metadata holds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_batch(n: int = CHECK_BATCH, seed: int = 0) -> torch.Tensor:
    """The fixed batch verify_file compares on, needing no data set: (n, 1, 28, 28) float32 pictures in
    [0, 1] (seeded noise, a blank one and a white one first), to normalise with the model's mean and std."""
    import torch

    X = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    X[0], X[1 % n] = 0.0, 1.0
    return X


def verify_file(path: str | os.PathLike, model: nn.Module, name: str, checkpoint: str | os.PathLike,
                mean: float, std: float, classes: list[str]) -> dict:
    """Check that the ONNX file at `path` is model `name` exported from the weights file `checkpoint`:
    its metadata names `name`, carries checkpoint's SHA-256 and the same mean, std and classes, and on
    check_batch() (normalised with mean and std) ONNX Runtime gives `model`'s logits to TOLERANCE
    (relative to their size) with the same predicted classes. Raises ExportError saying what differs
    (FileNotFoundError when there is no file); returns {"sha256", "max_abs_diff", "n"}."""
    import torch

    with torch.no_grad():
        return _verify_file(path, model, name, checkpoint, mean, std, classes)


def _verify_file(path, model, name, checkpoint, mean, std, classes) -> dict:
    sess, meta = load_onnx(path)
    sha = file_sha256(checkpoint)
    claimed = meta.get("checkpoint_sha256")
    if claimed is None:
        raise ExportError(f"{path} does not say which checkpoint it was exported from (no checkpoint_sha256 in "
                          f"its metadata: exported by {meta.get('exported_by', 'an older version')})")
    if claimed != sha:
        raise ExportError(f"{path} was exported from another checkpoint ({meta.get('checkpoint', '?')} with "
                          f"SHA-256 {claimed[:12]}...), not from {checkpoint} (SHA-256 {sha[:12]}...)")
    differs = [f"{key} {meta.get(key)!r} instead of {want!r}" for key, want in
               (("model", name), ("mean", float(mean)), ("std", float(std)), ("classes", list(classes)))
               if meta.get(key) != want]
    if differs:
        raise ExportError(f"{path} describes another model: {'; '.join(differs)}")
    X = ((check_batch() - mean) / std).contiguous()
    expected = model.eval()(X).numpy()
    try:
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: X.numpy()})[0]
    except Exception as e:  # onnxruntime's own exception types
        raise ExportError(f"ONNX Runtime cannot run {path} ({type(e).__name__}: {str(e)[:200]})") from e
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    limit = TOLERANCE * max(1.0, float(np.abs(expected).max()))
    if not (diff <= limit and (got.argmax(1) == expected.argmax(1)).all()):
        raise ExportError(f"{path} does not compute what {checkpoint} does: on a fixed batch of {len(X)} "
                          f"pictures its logits differ by up to {diff:.3g} (limit {limit:.3g}) or predict "
                          "other classes")
    return {"sha256": sha, "max_abs_diff": diff, "n": len(X)}


# -------------------------------------------------------------------------------- verification


def compare(model: nn.Module, sess, X: torch.Tensor, batch_size: int = 500) -> dict:
    """ONNX Runtime vs PyTorch on normalised images X (N, 1, 28, 28): {"n", "max_abs_diff", "agree"
    (fraction of images with the same predicted class), "logits_torch", "logits_onnx"} (both (N, 10))."""
    import torch

    with torch.no_grad():
        return _compare(model, sess, X, batch_size)


def _compare(model, sess, X, batch_size: int) -> dict:
    model.eval()
    torch_out, onnx_out = [], []
    for i in range(0, len(X), batch_size):
        batch = X[i:i + batch_size].contiguous()
        torch_out.append(model(batch).numpy())
        try:
            onnx_out.append(sess.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0])
        except Exception as e:  # onnxruntime's own exception types
            raise ExportError(f"ONNX Runtime cannot run the exported model on a batch of {len(batch)} images "
                              f"({type(e).__name__}: {str(e)[:200]}); is its batch axis dynamic?") from e
    a, b = np.concatenate(torch_out), np.concatenate(onnx_out)
    if a.shape != b.shape:
        raise ExportError(f"ONNX Runtime returned logits of shape {b.shape}, PyTorch {a.shape}")
    return {"n": len(a), "max_abs_diff": float(np.abs(a - b).max()),
            "agree": float((a.argmax(1) == b.argmax(1)).mean()), "logits_torch": a, "logits_onnx": b}


def verify_onnx(model: nn.Module, sess, X: torch.Tensor, y: torch.Tensor) -> dict:
    """Check the exported model on normalised images X (N, 1, 28, 28) with labels y (N,): raises ExportError
    unless max |logits difference| <= TOLERANCE and the predicted classes agree on every image, for
    batches of several sizes and for one image alone (the batch axis must be dynamic).
    Returns {"n", "max_abs_diff", "agree", "accuracy_onnx", "accuracy_torch", "seconds"}."""
    t0 = time.perf_counter()
    result = compare(model, sess, X, batch_size=384)  # 384 does not divide 10,000: two batch sizes
    single = compare(model, sess, X[:1])
    result["max_abs_diff"] = max(result["max_abs_diff"], single["max_abs_diff"])
    labels = np.asarray(y)
    report = {"n": result["n"], "max_abs_diff": result["max_abs_diff"], "agree": result["agree"],
              "accuracy_onnx": float((result["logits_onnx"].argmax(1) == labels).mean()),
              "accuracy_torch": float((result["logits_torch"].argmax(1) == labels).mean()),
              "seconds": time.perf_counter() - t0}
    if not (report["max_abs_diff"] <= TOLERANCE and report["agree"] == 1.0 and single["agree"] == 1.0):
        raise ExportError(f"the ONNX model does not match PyTorch on {report['n']:,} test images: max |logits "
                          f"difference| {report['max_abs_diff']:.3g} (limit {TOLERANCE:g}), predicted classes "
                          f"agree on {100 * report['agree']:.2f}% (must be 100%); nothing was written.")
    return report


# ------------------------------------------------------------------------------------- export


def export_onnx(model_name_or_checkpoint, path: str | os.PathLike | None = None, overwrite: bool = False,
                verify: bool = True) -> dict:
    """Export a course model ('cnn', 'mlp') or a checkpoint (training run folder / .safetensors) to ONNX.

    path: default default_path(name). overwrite=False refuses an existing file (FileExistsError).
    verify: compare with PyTorch on the whole test set first (ExportError, nothing written, on mismatch).
    Returns {"path", "model", "bytes", "exporter", "opset", "input", "output", "metadata", "verification"
    (see verify_onnx(); None when skipped), "seconds"}.
    """
    t0 = time.perf_counter()
    model, info = resolve(model_name_or_checkpoint)
    path = Path(path) if path is not None else default_path(info["model"])
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --force (overwrite=True) to replace it, "
                              "or choose another --out.")
    if path.exists() and not path.is_file():
        raise FileExistsError(f"{path} exists and is not a file; choose another --out.")
    import torch

    from ..settings import VERSION as __version__

    data = None
    if verify or info["accuracy"] is None:
        from ..data import load_mnist

        data = load_mnist(info["dataset"])
    if info["accuracy"] is None:  # e.g. a run stopped before metrics.json: measure what train.py records
        from ..data import BatchIterator
        from ..training import evaluate

        info["accuracy"] = evaluate(model, BatchIterator(data.normalize(data.X_test), data.y_test, 1000))["acc"]
    metadata = {"model": info["model"], "dataset": info["dataset"], "mean": float(info["mean"]),
                "std": float(info["std"]), "classes": info["classes"], "accuracy": float(info["accuracy"]),
                "exported_by": f"mnist_course {__version__}", "torch": torch.__version__, "opset": str(OPSET),
                "checkpoint": Path(info["source"]).name, "checkpoint_sha256": file_sha256(info["source"])}
    proto = to_onnx(model, metadata)
    check_interface(proto, len(info["classes"]))
    report = {"path": str(path), "model": info["model"], "source": info["source"], "exporter": "dynamo",
              "opset": OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME, "metadata": metadata,
              "verification": None}
    blob = proto.SerializeToString()
    sess, _ = load_onnx(blob)  # what is verified are the bytes that will be written, before any file exists
    if verify:
        with torch.inference_mode():
            X = data.normalize(data.X_test)
        report["verification"] = verify_onnx(model, sess, X, data.y_test)
    write(path, blob, overwrite)
    report["bytes"] = path.stat().st_size
    report["seconds"] = time.perf_counter() - t0
    return report


def write(path: Path, blob: bytes, overwrite: bool) -> Path:
    """Write an exported model's bytes to `path` atomically, holding the lock on `path` (<path>.lock): first
    removing what an export killed mid-write left there (files.temporaries), then refusing an existing
    file unless `overwrite` (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):  # no other export writes `path` now, so its temporary files are leftovers
        for leftover in temporaries(path):
            print(f"export: removing {leftover}, left by an export that was killed", file=sys.stderr)
            leftover.unlink(missing_ok=True)
        if path.exists() and not overwrite:  # appeared meanwhile
            raise FileExistsError(f"{path} was created while exporting; pass --force to replace it.")
        return atomic_write(path, blob, overwrite=overwrite)


# ----------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-course export",
        description="Export a course model or a training checkpoint to ONNX, verified against PyTorch on the "
                    "whole test set.",
        epilog="Examples: mnist-course export --model cnn | mnist-course export "
               "--checkpoint runs/cnn-adamw --out cnn-adamw.onnx")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", default=None,
                        help="a course model: cnn (notebook 06's best CNN) or mlp (notebook 04); default cnn")
    source.add_argument("--checkpoint", type=Path, default=None,
                        help="a run folder of `mnist-course train` (its best.safetensors) or a "
                             ".safetensors file written by mnist_course.checkpoint.save_model")
    p.add_argument("--out", type=Path, default=None,
                   help="the .onnx file to write (default: models/onnx/<name>.onnx; models/fast/onnx in fast mode)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the comparison with PyTorch on the test set (not recommended)")
    return p


def main(argv: list[str] | None = None) -> int:
    from ..checkpoint import CheckpointError, UnsafeCheckpointError
    from ..data import DataCorruptError, DataNotFoundError
    from ..pretrained import FastModelError

    parser = build_parser()
    args = parser.parse_args(argv)
    source = args.checkpoint if args.checkpoint is not None else (args.model or "cnn")
    if args.checkpoint is None:
        from ..pretrained import COURSE_MODELS

        if source.strip().lower() not in COURSE_MODELS:
            parser.error(f"--model {source}: unknown course model; choose one of {', '.join(COURSE_MODELS)}, "
                         "or export a training run with --checkpoint PATH")
    if args.out is not None and args.out.suffix != ".onnx":
        parser.error(f"--out {args.out}: the file name must end in .onnx")
    import torch

    torch.set_num_threads(1)
    try:
        report = export_onnx(source, args.out, overwrite=args.force, verify=not args.no_verify)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ExportError, CheckpointError, UnsafeCheckpointError, FileNotFoundError, FastModelError,
            DataNotFoundError, DataCorruptError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    v = report["verification"]
    if v is None:
        print("verification skipped (--no-verify): the file was NOT compared with PyTorch")
    else:
        print(f"ONNX Runtime vs PyTorch on {v['n']:,} test images: max |logits difference| "
              f"{v['max_abs_diff']:.2e} (limit {TOLERANCE:g}); predicted classes agree on "
              f"{100 * v['agree']:.2f}%; test accuracy {100 * v['accuracy_onnx']:.2f}% ({v['seconds']:.1f} s)")
    meta = report["metadata"]
    print(f"wrote {report['path']} ({report['bytes'] / 1e6:.2f} MB, {report['exporter']} exporter, opset "
          f"{report['opset']}): input {report['input']!r} float32 (N, 1, 28, 28) normalised with mean "
          f"{meta['mean']:.4f} and std {meta['std']:.4f}, output {report['output']!r} (N, {len(meta['classes'])}); "
          f"recorded test accuracy {100 * meta['accuracy']:.2f}%")
    return 0

