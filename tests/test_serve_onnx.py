"""The web service without PyTorch: `mnist-course serve --engine onnx` (ONNX Runtime on the exported
file, drawing's preprocessing, FastAPI), what `pip install mnist-course[serve]` and the service image
run. The service is imported and run in a child process in which PyTorch cannot be imported."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_course import drawing

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TIMING = ("seconds", "model_seconds", "inference_ms")

# Run in a child: PyTorch made unimportable (as in an environment without it), then the service.
NO_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")

    sys.meta_path.insert(0, NoTorch())
""")


def pictures() -> dict[str, bytes]:
    """Pictures of several kinds as uploaded files: strokes on a canvas (PNG), a dark digit on grey
    paper (JPEG, larger than drawing.MAX_SIDE: decoded reduced), light ink on black (RGBA PNG), a
    blank page (no digit) and a 16-bit PNG."""
    def png(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    seven = Image.fromarray(drawing.rasterize([[(60, 60), (220, 60), (120, 240)]], brush=22))
    one = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(one).line([(150, 40), (160, 260)], fill=20, width=24)
    paper = Image.new("RGB", (1600, 1200), (196, 190, 180))
    ImageDraw.Draw(paper).ellipse((600, 300, 1000, 900), outline=(40, 40, 60), width=60)
    jpeg = io.BytesIO()
    paper.save(jpeg, "JPEG", quality=85)
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 255))
    ImageDraw.Draw(rgba).line([(60, 50), (140, 50), (140, 150), (60, 150)], fill=(255, 255, 255, 255), width=16)
    deep = Image.fromarray((np.asarray(seven, np.uint16) * 257).astype(np.uint16))
    return {"seven.png": png(seven), "one.png": png(one), "zero.jpg": jpeg.getvalue(), "rgba.png": png(rgba),
            "blank.png": png(Image.new("L", (120, 120), 255)), "deep.png": png(deep)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist):
    """(models folder, the cnn.onnx in it): a quick course CNN exported by mnist-course export."""
    from mnist_course.pretrained import train_quick_model
    from mnist_course.serving.export import export_onnx

    root = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("MNIST_COURSE_MODELS", str(root))
        m.setenv("MNIST_COURSE_FAST", "1")
        m.setenv("MNIST_COURSE_PROGRESS", "0")
        from mnist_course.pretrained import save_course_model

        model, info = train_quick_model("cnn", fast=True, verbose=False)
        save_course_model(model, "cnn", info)
        path = root / "fast" / "onnx" / "cnn.onnx"
        export_onnx("cnn", path=path)
    return root, path


def run_without_torch(script: str, env_models: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run `script` (after NO_TORCH) in a child Python with MNIST_COURSE_MODELS=env_models (fast mode)."""
    import os

    code = tmp_path / "child.py"
    code.write_text(NO_TORCH + textwrap.dedent(script))
    env = {**os.environ, "MNIST_COURSE_MODELS": str(env_models), "MNIST_COURSE_FAST": "1"}
    return subprocess.run([sys.executable, str(code)], capture_output=True, text=True, env=env, timeout=300)


def test_the_service_imports_and_answers_without_torch(exported, tmp_path):
    root, _ = exported
    files = tmp_path / "pictures.json"
    files.write_text(json.dumps({name: data.hex() for name, data in pictures().items()}))
    result = run_without_torch(f"""
        import json, sys
        from fastapi.testclient import TestClient
        from mnist_course.serving import service

        assert not service.torch_installed()
        app = service.create_app(names=["cnn"], engine="onnx")
        out = {{}}
        with TestClient(app, base_url="http://127.0.0.1") as client:
            out["health"] = client.get("/health").json()
            out["models"] = client.get("/models").json()
            for name, data in json.loads(open({str(files)!r}).read()).items():
                r = client.post("/predict?k=3", files={{"file": (name, bytes.fromhex(data), "image/png")}})
                out[name] = [r.status_code, r.json()]
        out["torch loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
        print(json.dumps(out))
    """, root, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch loaded"] == []
    assert out["health"]["engine"] == "onnx" and out["health"]["models"] == ["cnn"]
    assert out["health"]["torch_threads"] is None
    assert out["models"]["models"][0]["onnx"] == "/models/cnn.onnx"
    for name in pictures():
        status, body = out[name]
        assert status == 200, (name, body)
        assert body["engine"] == "onnx" and body["model"] == "cnn"
    assert out["blank.png"][1]["status"] == "no digit"
    assert out["seven.png"][1]["status"] != "no digit" and len(out["seven.png"][1]["probabilities"]) == 10


def test_onnx_engine_answers_as_the_pytorch_engine(exported, monkeypatch):
    """The same course CNN through both engines: the same digit, status and reason for every picture,
    probabilities within 1e-5 (ONNX Runtime's float32 arithmetic is not PyTorch's, bit for bit)."""
    from fastapi.testclient import TestClient

    from mnist_course.serving import service

    root, path = exported
    monkeypatch.setenv("MNIST_COURSE_MODELS", str(root))
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    answers = {}
    for engine in ("pytorch", "onnx"):
        app = service.create_app(names=["cnn"], engine=engine, onnx_path=lambda name: path.parent / f"{name}.onnx")
        with TestClient(app, base_url="http://127.0.0.1") as client:
            answers[engine] = {name: client.post("/predict?k=3", files={"file": (name, data, "image/png")}).json()
                               for name, data in pictures().items()}
    for name in pictures():
        torch_answer, onnx_answer = answers["pytorch"][name], answers["onnx"][name]
        assert (torch_answer["engine"], onnx_answer["engine"]) == ("pytorch", "onnx")
        for key in ("digit", "status", "reason", "input_png"):
            assert torch_answer[key] == onnx_answer[key], (name, key)
        assert [t["label"] for t in torch_answer["topk"]] == [t["label"] for t in onnx_answer["topk"]], name
        if torch_answer["probabilities"] is not None:
            np.testing.assert_allclose(onnx_answer["probabilities"], torch_answer["probabilities"], atol=1e-5)


def test_onnx_engine_refuses_to_start_without_its_file_in_one_line(tmp_path):
    result = run_without_torch("""
        from mnist_course.serving import service
        raise SystemExit(service.main(["--engine", "onnx", "--models", "cnn", "--port", "8"]))
    """, tmp_path / "empty", tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "no ONNX file" in line]
    assert lines, result.stderr[-2000:]
    assert "mnist-course export --model cnn" in lines[0] and "Traceback" not in result.stderr


def test_onnx_engine_refuses_a_file_that_is_no_export(tmp_path):
    from mnist_course.serving import service

    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "cnn.onnx").write_bytes(b"not a model")
    with pytest.raises(service.StartupError, match="cannot serve .*cnn.onnx.*export it again"):
        service.load_onnx_models(["cnn"], "cnn", lambda name: tmp_path / "onnx" / f"{name}.onnx")


def test_the_serve_extra_installs_no_torch():
    """pip install mnist-course[serve] gets the base dependencies and the extra: no PyTorch among them."""
    sys.path.insert(0, str(ROOT / "containers"))
    try:
        from requirements import requirements
    finally:
        sys.path.pop(0)
    names = {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for r in requirements(str(ROOT / "pyproject.toml"), ["serve"])}
    assert {"onnxruntime", "fastapi", "uvicorn", "numpy", "pillow", "scipy"} <= names
    assert not names & {"torch", "torchvision", "onnx", "onnxscript", "jupyterlab"}, names
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "mnist-course[serve]" in extras["course"] and any("serve" in d for d in extras["dev"])
