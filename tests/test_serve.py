"""Tests for mnist_course.serving.service with FastAPI's TestClient and small stand-in models: every route and
every bad input (README "Ship your model"). The real uvicorn process and the load test are in
tests/test_serve_load.py."""

from __future__ import annotations

import base64
import io
import itertools
import struct
import sys
import types
import zlib

import anyio
import httpx
import numpy as np
import pytest
import torch
from fakes import Fixed, bar_image
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from mnist_course import drawing as dr
from mnist_course.serving import service as serve

MEAN, STD = 0.5, 0.25           # not MNIST's: a service that ignores the model's own mean/std is caught
LOCAL = "http://127.0.0.1"      # an allowed Host (TestClient's own "testserver" is not: tests/test_serve_hostile.py)
KEYS = {"digit", "status", "reason", "topk", "probabilities", "seconds", "model_seconds",
        "model", "engine", "inference_ms", "input_png"}


class Uniform(nn.Module):
    """The same logit for every class: probabilities 0.1 each, the model cannot tell."""

    def forward(self, X):
        return torch.zeros(len(X), 10)


def random_cnn() -> nn.Module:
    """An untrained CNN with fixed weights: its answer depends on the picture (unlike Fixed)."""
    from mnist_course.models import build_model

    torch.manual_seed(0)
    return build_model("cnn_wide").eval()


def png(a: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, dtype=np.uint8)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def served(name, model, accuracy=0.5):
    return serve.ServedModel(name, model, MEAN, STD, list(dr.CLASSES), accuracy)


@pytest.fixture()
def models():
    return {"three": served("three", Fixed(3)), "seven": served("seven", Fixed(7)),
            "cnn": served("cnn", random_cnn()), "unsure": served("unsure", Uniform())}


@pytest.fixture()
def client(models, tmp_path):
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "three.onnx").write_bytes(b"fake onnx bytes")
    app = serve.create_app(models, default="three", onnx_path=lambda name: onnx / f"{name}.onnx",
                           vendor=tmp_path / "no-web-deps")
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def post(client, data: bytes, name="d.png", ctype="image/png", **params):
    return client.post("/predict", params=params, files={"file": (name, data, ctype)})


def detail(r) -> str:
    d = r.json()["detail"]
    assert isinstance(d, str), d          # one sentence, never pydantic's list
    return d


# ------------------------------------------------------------------------------------- answers

def test_predict_returns_the_interface_json_from_predict_image(client, models):
    picture = bar_image(h=200, w=60)
    r = post(client, png(picture), model="cnn", k=4)
    assert r.status_code == 200
    out = r.json()
    assert set(out) == KEYS
    expected = dr.predict_image(picture, models["cnn"].model, k=4, mean=MEAN, std=STD).to_dict()
    np.testing.assert_allclose(out["probabilities"], expected["probabilities"], atol=1e-6)
    assert [t["label"] for t in out["topk"]] == [t["label"] for t in expected["topk"]]
    assert out["digit"] == expected["digit"] and out["status"] == expected["status"]
    assert (out["model"], out["engine"]) == ("cnn", "pytorch")
    assert out["inference_ms"] >= 1000 * out["seconds"]          # decoding + predict_image
    head, b64 = out["input_png"].split(",", 1)
    assert head == "data:image/png;base64"
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
    assert shown.shape == (112, 112)                             # the 28x28 input, enlarged 4 times
    expected_input = dr.predict_image(picture, models["cnn"].model, mean=MEAN, std=STD).image
    np.testing.assert_array_equal(shown[::4, ::4], (np.clip(expected_input, 0, 1) * 255).round().astype(np.uint8))


def test_default_model_and_model_choice(client):
    assert post(client, png(bar_image())).json()["digit"] == "3"
    out = post(client, png(bar_image()), model="seven").json()
    assert (out["digit"], out["model"]) == ("7", "seven")


def test_any_size_format_and_polarity_give_the_same_answer(client):
    light_on_dark = bar_image(h=200, w=60)
    big = np.asarray(Image.fromarray(light_on_dark).resize((1500, 1500), Image.Resampling.NEAREST))
    answers = [post(client, png(light_on_dark), model="cnn").json(),
               post(client, png(255 - light_on_dark), model="cnn").json(),                 # dark on light
               post(client, png(255 - light_on_dark, "JPEG", quality=95), "d.jpg", "image/jpeg", model="cnn").json(),
               post(client, png(np.stack([big] * 3, axis=2)), model="cnn").json()]        # RGB, 1500x1500
    for out in answers[1:]:
        assert out["digit"] == answers[0]["digit"]
        np.testing.assert_allclose(out["probabilities"], answers[0]["probabilities"], atol=0.02)


@pytest.mark.parametrize("picture", [np.full((300, 200), 255, np.uint8), np.zeros((280, 280), np.uint8),
                                     np.full((64, 64), 128, np.uint8)], ids=["white", "black", "grey"])
def test_blank_picture_is_no_digit_never_a_guess(client, models, picture):
    calls = models["three"].model.calls
    r = post(client, png(picture))
    assert r.status_code == 200
    out = r.json()
    assert out["digit"] is None and out["status"] == "no digit"
    assert isinstance(out["reason"], str) and out["reason"]
    assert out["topk"] == [] and out["probabilities"] is None and out["input_png"] is None
    assert models["three"].model.calls == calls                  # the model was not even asked


def test_not_sure_passes_through(client, models):
    picture = bar_image()
    out = post(client, png(picture), model="unsure").json()
    expected = dr.predict_image(picture, models["unsure"].model, mean=MEAN, std=STD)
    assert expected.status == "not sure"
    assert (out["digit"], out["status"], out["reason"]) == (None, "not sure", expected.reason)
    assert len(out["topk"]) == 3 and len(out["probabilities"]) == 10


@pytest.mark.parametrize("k, ok", [(1, True), (10, True), (0, False), (11, False), ("two", False)])
def test_k(client, k, ok):
    r = post(client, png(bar_image()), k=k)
    if ok:
        assert r.status_code == 200 and len(r.json()["topk"]) == k
    else:
        assert r.status_code == 422 and "k" in detail(r) and "k=3" in detail(r)


# ---------------------------------------------------------------------------------- bad input

def test_unknown_model_is_404_naming_the_models(client):
    for r in (post(client, png(bar_image()), model="resnet"), client.get("/models/resnet.onnx")):
        assert r.status_code == 404
        assert "resnet" in detail(r) and all(n in detail(r) for n in ("three", "seven", "cnn"))


@pytest.mark.parametrize("how", ["other field", "text field", "urlencoded", "no body"])
def test_missing_file_field(client, how):
    if how == "other field":
        r = client.post("/predict", files={"image": ("d.png", png(bar_image()), "image/png")})
    elif how == "text field":
        r = client.post("/predict", files={"x": ("", b"")}, data={"file": "digit.png"})
    elif how == "urlencoded":
        r = client.post("/predict", data={"file": "digit.png"})
    else:
        r = client.post("/predict")
    assert r.status_code == (415 if how in ("urlencoded", "no body") else 422)
    assert 'multipart form field "file"' in detail(r)


def test_not_an_image(client):
    gif = png(bar_image(), "GIF")
    cases = {  # (data, filename, declared type) -> status
        (b"hello, world", "d.png", "image/png"): 422,                 # undecodable bytes
        (png(bar_image())[:60], "d.png", "image/png"): 422,           # truncated PNG
        (b"", "d.png", "image/png"): 422,                             # empty file
        (gif, "d.gif", "image/png"): 422,                             # a GIF is not PNG/JPEG, whatever it says
        (png(bar_image()), "d.txt", "text/plain"): 415,               # declared as something else
        (gif, "d.gif", "image/gif"): 415,
    }
    for (data, name, ctype), status in cases.items():
        r = post(client, data, name, ctype)
        assert r.status_code == status, (name, ctype, r.text)
        assert "PNG or JPEG" in detail(r)
    r = client.post("/predict", content=png(bar_image()), headers={"content-type": "image/png"})
    assert r.status_code == 415 and "multipart/form-data" in detail(r)


def test_upload_over_the_cap_is_413(models):
    app = serve.create_app(models, default="three", max_upload_bytes=20_000)
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)  # ~40 kB as PNG
    with TestClient(app, base_url=LOCAL) as c:
        assert post(c, png(bar_image(size=100))).status_code == 200
        r = post(c, png(noise))
        assert r.status_code == 413 and "limit" in detail(r) and "smaller" in detail(r)


def _stream(app, headers: dict, total: int, chunk: int = 65536) -> tuple[int, str, int]:
    """POST to /predict a body of `total` bytes sent lazily in chunks, as a real client streams it;
    returns (status, detail, bytes the app pulled from the client)."""
    pulled = 0

    async def body():
        nonlocal pulled
        while pulled < total:
            pulled += chunk
            yield b"x" * chunk

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as c:
                r = await c.post("/predict", content=body(),
                                 headers={"content-type": "multipart/form-data; boundary=x", **headers})
                return r.status_code, r.json()["detail"], pulled

    return anyio.run(main)


@pytest.mark.parametrize("headers", [{}, {"content-length": "1000"}], ids=["chunked", "lying Content-Length"])
def test_cap_counts_the_bytes_actually_read(models, headers):
    cap = 1_000_000
    app = serve.create_app(models, default="three", max_upload_bytes=cap)
    status, message, pulled = _stream(app, headers, total=40 * cap)
    assert status == 413 and "limit" in message
    assert pulled <= cap + 2 * 65536                 # stopped reading at the cap, not at 40 MB


def test_declared_size_over_the_cap_is_refused_unread(models):
    cap = 1_000_000
    app = serve.create_app(models, default="three", max_upload_bytes=cap)
    status, message, pulled = _stream(app, {"content-length": str(40 * cap)}, total=40 * cap)
    assert status == 413 and f"Content-Length {40 * cap:,}" in message
    assert pulled <= 65536                           # refused by the header, before reading the body


def _png_header_only(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height pixels (a decompression bomb's header)."""
    data = png(np.zeros((1, 1), np.uint8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def _zero_png(width: int, height: int) -> bytes:
    """A real, valid all-black PNG of width x height 8-bit pixels: a few hundred kB that decode to
    width * height bytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (width + 1)                       # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture()
def never_decode(monkeypatch):
    """Decoding a picture's pixels fails the test (a 500 from TestClient)."""
    from PIL import ImageFile

    def load(self):
        raise AssertionError(f"decoded a {self.size} picture")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.parametrize("size", [(30000, 30000), (8000, 8000)], ids=["900 Mpixel header", "64 Mpixel real"])
def test_decompression_bomb_refused_before_decoding(client, never_decode, size):
    data = _png_header_only(*size) if size[0] == 30000 else _zero_png(*size)
    assert len(data) < 200_000
    r = post(client, data)
    assert r.status_code == 413
    assert f"{size[0] * size[1]:,}".replace(",", "") in detail(r).replace(",", "") and "smaller picture" in detail(r)


def test_pixel_cap_is_the_apps_own(models):
    app = serve.create_app(models, default="three", max_pixels=100 * 100)
    with TestClient(app, base_url=LOCAL) as c:
        assert post(c, png(bar_image(size=100))).status_code == 200
        r = post(c, png(bar_image(size=101)))
        assert r.status_code == 413 and "101x101" in detail(r)


# ------------------------------------------------------------------------------ the other routes

def test_health_and_models(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["default"] == "three" and set(h["models"]) == {"three", "seven", "cnn", "unsure"}
    m = client.get("/models").json()
    assert m["default"] == "three"
    by_name = {x["name"]: x for x in m["models"]}
    assert set(by_name) == set(h["models"])
    assert by_name["three"] == {"name": "three", "accuracy": 0.5, "mean": MEAN, "std": STD,
                                "classes": list(dr.CLASSES), "onnx": "/models/three.onnx"}
    assert by_name["seven"]["onnx"] is None                      # not exported


def test_onnx_file(client):
    r = client.get("/models/three.onnx")
    assert r.status_code == 200 and r.content == b"fake onnx bytes"
    r = client.get("/models/seven.onnx")
    assert r.status_code == 404 and "make export" in detail(r) and "--model seven" in detail(r)


def test_page_static_and_vendor(models, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<html>pad</html>")
    (web / "app.js").write_text("let x = 1;")
    (tmp_path / "secret.txt").write_text("secret")
    vendor = tmp_path / "ort"
    vendor.mkdir()
    (vendor / "ort.wasm").write_bytes(b"\0asm")
    (vendor / "ort.min.mjs").write_text("export {};")
    app = serve.create_app(models, web_dir=web, vendor=vendor)
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/").text == "<html>pad</html>"
        r = c.get("/static/app.js")
        assert r.text == "let x = 1;" and r.headers["content-type"].startswith("text/javascript")
        for bad in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/nope.js"):
            r = c.get(bad)
            assert r.status_code == 404 and r.text != "secret"
        r = c.get("/vendor/onnxruntime-web/ort.wasm")
        assert r.content == b"\0asm" and r.headers["content-type"] == "application/wasm"
        assert c.get("/vendor/onnxruntime-web/ort.min.mjs").headers["content-type"].startswith("text/javascript")
    app = serve.create_app(models, web_dir=tmp_path / "empty", vendor=tmp_path / "missing")
    with TestClient(app, base_url=LOCAL) as c:
        r = c.get("/")
        assert r.status_code == 404 and "/openapi.json" in detail(r)
        r = c.get("/vendor/onnxruntime-web/ort.min.js")
        assert r.status_code == 404 and "make web-deps" in detail(r)


@pytest.mark.parametrize("vendor", ["empty", "missing"])
def test_serving_needs_no_npm(models, tmp_path, vendor):
    """Without `make web-deps` (an empty or missing vendor folder) the page and the server's answers
    work; /models and the vendor route say that the in-browser engine is unavailable and how to get
    it, and the page has the line that shows it."""
    root = tmp_path / "vendor"
    if vendor == "empty":
        root.mkdir()
    app = serve.create_app(models, default="three", vendor=root)
    with TestClient(app, base_url=LOCAL) as c:
        page = c.get("/")
        assert page.status_code == 200 and "<canvas" in page.text.lower()
        assert 'id="engine-note"' in page.text            # the line app.js fills from /models
        for name in ("app.js", "preprocess.js", "style.css"):
            assert c.get(f"/static/{name}").status_code == 200, name
        out = post(c, png(bar_image())).json()
        assert (out["digit"], out["status"]) == ("3", "digit")
        engine = c.get("/models").json()["browser_engine"]
        assert engine["available"] is False
        assert "make web-deps" in engine["detail"] and "onnxruntime-web" in engine["detail"]
        r = c.get(f"/vendor/onnxruntime-web/{serve.ORT_ENTRY}")
        assert r.status_code == 404 and "make web-deps" in detail(r)
        assert "browser_engine" in c.get("/static/app.js").text    # the page reads it
    root.mkdir(exist_ok=True)
    (root / serve.ORT_ENTRY).write_text("export {};")                  # `make web-deps` done: no restart needed
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/models").json()["browser_engine"] == {"available": True, "detail": None}
        assert c.get(f"/vendor/onnxruntime-web/{serve.ORT_ENTRY}").status_code == 200


def test_make_serve_does_not_install_npm_packages():
    """`make serve` starts the service without npm (offline it failed after a long npm timeout)."""
    from mnist_course.settings import repo_root

    makefile = repo_root() / "Makefile"
    if not makefile.is_file():
        pytest.skip(f"no Makefile at {makefile} (an installed copy of the package)")
    lines = makefile.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("serve:"))
    recipe = [lines[start]] + [line for line in itertools.takewhile(lambda s: s.startswith("\t"), lines[start + 1:])]
    assert not any("web-deps" in line or "npm" in line for line in recipe), \
        f"make serve needs npm: {recipe} (the in-browser engine is optional: `make web-deps`)"


def test_the_real_page_is_served(client):
    if not (serve.WEB_DIR / "index.html").is_file():
        pytest.skip("mnist_course/serving/web/index.html is not there yet")
    r = client.get("/")
    assert r.status_code == 200 and "<canvas" in r.text.lower()


def test_docs_describe_the_upload(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"


# ------------------------------------------------------------------------- startup and the CLI

def test_startup_exports_only_missing_files(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("mnist_course.serving.export")
    fake.export_onnx = lambda name, path=None, overwrite=False, **kw: (
        calls.append((name, path, overwrite)), path.write_bytes(b"new"))
    monkeypatch.setitem(sys.modules, "mnist_course.serving.export", fake)
    (tmp_path / "cnn.onnx").write_bytes(b"mine")
    serve.export_missing(["cnn", "mlp"], lambda name: tmp_path / f"{name}.onnx")
    assert calls == [("mlp", tmp_path / "mlp.onnx", False)]
    assert (tmp_path / "cnn.onnx").read_bytes() == b"mine"         # never overwritten


def test_cli_refuses_bad_options_and_warns_off_loopback(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        serve.main(["--model", "resnet"])
    assert "unknown model" in capsys.readouterr().err
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: started.append((host, port)))
    serve.main(["--port", "8123"])
    assert started == [("127.0.0.1", 8123)] and "WARNING" not in capsys.readouterr().err
    serve.main(["--host", "0.0.0.0"])
    assert started[-1] == ("0.0.0.0", 8000) and "WARNING" in capsys.readouterr().err


def test_only_the_default_model_is_required(monkeypatch, capsys):
    from mnist_course import pretrained

    def load(name, device=None, train_if_missing=True):
        if name == "mlp":
            raise pretrained.FastModelError("mlp was trained in fast mode")
        from mnist_course.models import build_model  # the course CNN's architecture (it is checked)

        return build_model("cnn").eval(), {"mean": MEAN, "std": STD, "classes": list(dr.CLASSES), "test_acc": 0.9}

    monkeypatch.setattr(pretrained, "load_course_model", load)
    loaded = serve.load_models(["cnn", "mlp"], default="cnn")
    assert list(loaded) == ["cnn"] and loaded["cnn"].mean == MEAN and loaded["cnn"].accuracy == 0.9
    assert "leaving out model 'mlp'" in capsys.readouterr().err
    with pytest.raises(pretrained.FastModelError):
        serve.load_models(["cnn", "mlp"], default="mlp")
