"""mnist-course export: ONNX files that match PyTorch on the 10,000 test digits, their interface
and metadata, no overwrite without --force, atomic writes, clear errors, and the latency rows."""

import json
import re
import shutil
import time

import numpy as np
import pytest
import torch

import mnist_course as mc
from mnist_course.bench import latency
from mnist_course.checkpoint import CheckpointError, save_model
from mnist_course.models import build_model
from mnist_course.serving import export
from mnist_course.serving.export import ExportError, default_path, export_onnx, load_onnx, main

BROWSER_OPS = {"Conv", "Gemm", "Relu", "MaxPool", "Reshape", "Flatten"}  # BatchNorm folded away


@pytest.fixture(scope="module")
def fast_course_models(tmp_path_factory, mnist):
    """A models folder whose fast/ subfolder holds quick course models 'cnn' and 'mlp' (seconds to train)."""
    from mnist_course.pretrained import save_course_model, train_quick_model

    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MNIST_COURSE_MODELS", str(root))
        m.setenv("MNIST_COURSE_FAST", "1")
        m.setenv("MNIST_COURSE_PROGRESS", "0")
        for name in ("cnn", "mlp"):
            model, info = train_quick_model(name, fast=True, verbose=False)
            save_course_model(model, name, info)
    return root


@pytest.fixture()
def models_home(fast_course_models, tmp_path, monkeypatch):
    """This test's own copy of the fast course models, in fast mode: (models folder, its fast/ subfolder)."""
    home = tmp_path / "models"
    shutil.copytree(fast_course_models, home)
    monkeypatch.setenv("MNIST_COURSE_MODELS", str(home))
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    return home, home / "fast"


def course(name):
    from mnist_course.pretrained import load_course_model

    return load_course_model(name, device="cpu")


def run_onnx(sess, X):
    return sess.run(["logits"], {"input": np.ascontiguousarray(X, dtype=np.float32)})[0]


def test_course_cnn_exports_to_fast_models_with_its_interface_metadata_and_the_same_logits(models_home, mnist):
    home, fast = models_home
    report = export_onnx("cnn")
    path = fast / "onnx" / "cnn.onnx"
    assert report["path"] == str(path) == str(default_path("cnn"))
    # one file (and the lock exports of it take), no external data or temp file
    assert sorted(p.name for p in path.parent.iterdir()) == ["cnn.onnx", "cnn.onnx.lock"]
    v = report["verification"]
    assert v["n"] == 10_000 and v["max_abs_diff"] <= 1e-4 and v["agree"] == 1.0

    model, info = course("cnn")
    sess, meta = load_onnx(path)
    assert set(export.METADATA_KEYS) <= set(meta)
    assert (meta["model"], meta["dataset"], meta["classes"]) == ("cnn", "mnist", [str(i) for i in range(10)])
    assert (meta["mean"], meta["std"]) == (mnist.mean, mnist.std) == (info["mean"], info["std"])
    assert meta["accuracy"] == info["test_acc"]
    assert meta["torch"] == torch.__version__ and meta["exported_by"] == f"mnist_course {mc.__version__}"
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, out.name) == ("input", "tensor(float)", "logits")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [1, 28, 28]
    assert isinstance(out.shape[0], str) and out.shape[1:] == [10]

    # a reader who knows only the metadata: raw pixels / 255, normalised with its mean and std
    raw = mnist.X_test[:2000].numpy().astype(np.float32)[:, None] / 255.0
    X = (raw - meta["mean"]) / meta["std"]
    for n in (1, 3, 2000):  # the batch axis is dynamic
        with torch.no_grad():
            expected = model(torch.from_numpy(X[:n])).numpy()
        got = run_onnx(sess, X[:n])
        assert got.shape == (n, 10) and np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == mnist.y_test[:2000].numpy()).mean() == pytest.approx(
        (expected.argmax(1) == mnist.y_test[:2000].numpy()).mean())

    import onnx

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {n.op_type for n in proto.graph.node} <= BROWSER_OPS
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", export.OPSET)]


def test_cli_exports_the_mlp_and_prints_both_agreement_figures(models_home, capsys):
    home, fast = models_home
    assert main(["--model", "mlp"]) == 0
    text = capsys.readouterr().out
    found = re.search(r"on 10,000 test images: max \|logits difference\| (\S+) \(limit 0.0001\); predicted classes "
                      r"agree on (\S+)%", text)
    assert found, text
    assert float(found[1]) <= 1e-4 and found[2] == "100.00"
    sess, meta = load_onnx(fast / "onnx" / "mlp.onnx")
    assert meta["model"] == "mlp" and meta["accuracy"] == course("mlp")[1]["test_acc"]


def test_an_existing_file_is_replaced_only_with_force(models_home, tmp_path, capsys):
    out = tmp_path / "shipped" / "model.onnx"
    assert main(["--model", "cnn", "--out", str(out), "--no-verify"]) == 0
    before = out.read_bytes()
    assert main(["--model", "mlp", "--out", str(out), "--no-verify"]) == 1
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == before
    with pytest.raises(FileExistsError, match="--force"):
        export_onnx("mlp", out, verify=False)
    assert out.read_bytes() == before
    assert main(["--model", "mlp", "--out", str(out), "--no-verify", "--force"]) == 0
    assert load_onnx(out)[1]["model"] == "mlp"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.lock"]  # no temporary file left


def test_a_file_that_does_not_match_pytorch_is_never_written(models_home, tmp_path, monkeypatch, capsys):
    real_to_onnx = export.to_onnx

    def perturbed(model, metadata=None):  # an exporter that gets the last bias slightly wrong
        import copy

        wrong = copy.deepcopy(model)
        with torch.no_grad():
            list(wrong.parameters())[-1].add_(1e-3)
        return real_to_onnx(wrong, metadata)

    monkeypatch.setattr(export, "to_onnx", perturbed)
    out = tmp_path / "out" / "cnn.onnx"
    with pytest.raises(ExportError, match=r"does not match PyTorch .* nothing was written"):
        export_onnx("cnn", out)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # neither the file nor a temporary one
    assert main(["--model", "mlp", "--out", str(out)]) == 1  # the command says so and fails
    assert "limit 0.0001" in capsys.readouterr().err and not out.exists()


def test_an_export_without_a_dynamic_batch_axis_is_refused(models_home, tmp_path, monkeypatch):
    real_export = torch.onnx.export

    def static_export(*args, dynamic_shapes=None, **kwargs):
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", static_export)
    out = tmp_path / "cnn.onnx"
    with pytest.raises(ExportError, match="dynamic batch"):
        export_onnx("cnn", out, verify=False)
    assert not out.exists()


def test_a_training_run_exports_with_its_recorded_accuracy_and_normalisation(isolated_outputs, mnist, monkeypatch):
    from mnist_course.tooling.train import main as train

    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    run = isolated_outputs / "runs" / "tiny-cnn"
    assert train(["--model", "cnn_small", "--fast", "--quiet", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    report = export_onnx(str(run))
    assert report["path"] == str(default_path("tiny-cnn"))
    assert report["verification"]["max_abs_diff"] <= 1e-4 and report["verification"]["agree"] == 1.0
    _, meta = load_onnx(report["path"])
    assert (meta["model"], meta["accuracy"], meta["mean"], meta["std"]) == (
        "tiny-cnn", metrics["test_acc"], metrics["mean"], metrics["std"])


def _foreign_checkpoint(path):
    """A .safetensors file whose metadata describes a small CNN but whose tensors are an MLP's."""
    from safetensors.torch import save_file

    cnn, mlp = build_model("cnn_small"), build_model("mlp_small")
    meta = {"type": "CNN", "config": cnn.config}
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(path),
              metadata={"mnist_course": json.dumps(meta)})
    return path


def test_bad_sources_get_clear_errors(isolated_outputs, tmp_path, capsys):
    out = ["--out", str(tmp_path / "x.onnx")]
    with pytest.raises(ValueError, match="unknown model 'resnet'.*cnn, mlp"):
        export_onnx("resnet")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "resnet", *out])
    assert exit_info.value.code == 2 and "unknown course model" in capsys.readouterr().err

    assert main(["--checkpoint", str(tmp_path / "no-such-run"), *out]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    (tmp_path / "empty-run").mkdir()
    assert main(["--checkpoint", str(tmp_path / "empty-run"), *out]) == 1
    assert "holds no best.safetensors" in capsys.readouterr().err

    with pytest.raises(CheckpointError, match="do not have the shapes of the CNN"):
        export_onnx(_foreign_checkpoint(tmp_path / "foreign.safetensors"), tmp_path / "x.onnx")
    assert main(["--checkpoint", str(tmp_path / "foreign.safetensors"), *out]) == 1
    assert "do not have the shapes" in capsys.readouterr().err

    five = build_model("cnn_small", num_classes=5)  # another head: 5 outputs, but MNIST has 10 classes
    save_model(five, tmp_path / "five.safetensors", {"dataset": "mnist"})
    with pytest.raises(CheckpointError, match="5 outputs but its data have 10 classes"):
        export_onnx(tmp_path / "five.safetensors", tmp_path / "x.onnx")

    torch.save({"model": {}}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="not a .safetensors model file"):
        export_onnx(tmp_path / "state.pt", tmp_path / "x.onnx")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "cnn", "--out", str(tmp_path / "x.pt")])
    assert exit_info.value.code == 2 and "must end in .onnx" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_load_onnx_refuses_files_it_cannot_describe(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist-course export"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="not a readable ONNX model"):
        load_onnx(tmp_path / "junk.onnx")
    (tmp_path / "bare.onnx").write_bytes(export.to_onnx(build_model("mlp_small").eval()).SerializeToString())
    with pytest.raises(ExportError, match="lacks the metadata model, mean, std, classes"):
        load_onnx(tmp_path / "bare.onnx")


def test_latency_is_a_median_after_the_warm_up():
    calls = []

    def slow_start():
        calls.append(1)
        time.sleep(0.05 if len(calls) <= 5 else 0.0)  # five slow first calls: the warm-up

    from mnist_course.utils import latency_ms  # what bench.latency.onnx_rows times with

    assert latency_ms(slow_start, repeats=9, warmup=5) < 10  # counted, they would be the median
    assert len(calls) == 14


def test_onnx_rows_time_both_engines_per_model_on_one_thread(mnist, monkeypatch):
    sessions = []

    def spy(model_bytes, threads):
        sessions.append(threads)
        return real_session(model_bytes, threads)

    real_session = export.session
    monkeypatch.setattr(export, "session", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        models = {"tiny-mlp": build_model("mlp_small").eval(), "tiny-cnn": build_model("cnn_small").eval()}
        rows = latency.onnx_rows(models=models, repeats=5, warmup=1)
        assert torch.get_num_threads() == 2  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert [(r["model"], r["task"]) for r in rows] == [
        (name, task) for name in models
        for task in ("one image: PyTorch eager", "one image: ONNX Runtime (exported file)")]
    assert all(r["threads"] == 1 and set(r) == {"task", "model", "ms", "goal", "threads"} for r in rows)
    assert sessions == [1, 1]  # one ONNX Runtime session per model, one thread each


ORT_WEB = mc.settings.repo_root() / "build" / "web-deps" / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs"
NODE_SCRIPT = """
import * as ort from %(ort)s;
import fs from "fs";
ort.env.wasm.numThreads = 1;
const buf = fs.readFileSync(%(x)s);
const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
const session = await ort.InferenceSession.create(fs.readFileSync(%(model)s), {executionProviders: ["wasm"]});
const out = await session.run({input: new ort.Tensor("float32", x, [%(n)d, 1, 28, 28])});
fs.writeFileSync(%(y)s, Buffer.from(out.logits.data.buffer, out.logits.data.byteOffset, out.logits.data.byteLength));
"""


def test_onnxruntime_web_runs_the_file_like_onnxruntime(models_home, tmp_path, mnist):
    """The drawing page's engine (onnxruntime-web's wasm backend, from `make web-deps`), run by Node."""
    import subprocess

    node = shutil.which("node")
    if node is None or not ORT_WEB.is_file():
        pytest.skip(f"needs node and {ORT_WEB} (make web-deps)")
    out = tmp_path / "cnn.onnx"
    export_onnx("cnn", out, verify=False)
    X = mnist.normalize(mnist.X_test[:16]).numpy()
    X.astype("<f4").tofile(tmp_path / "x.f32")
    script = tmp_path / "run.mjs"
    script.write_text(NODE_SCRIPT % {"ort": json.dumps(str(ORT_WEB)), "x": json.dumps(str(tmp_path / "x.f32")),
                                     "model": json.dumps(str(out)), "y": json.dumps(str(tmp_path / "y.f32")),
                                     "n": len(X)})
    result = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    web = np.fromfile(tmp_path / "y.f32", dtype="<f4").reshape(len(X), 10)
    sess, _ = load_onnx(out)
    expected = run_onnx(sess, X)
    assert np.abs(web - expected).max() <= 1e-4 and (web.argmax(1) == expected.argmax(1)).all()
