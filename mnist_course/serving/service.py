"""The course's models as a web service (FastAPI + uvicorn): upload a picture, get the digit back.

    mnist-course serve --model cnn --port 8000      # or: make serve

Routes (README "Ship your model"; interactive docs at /docs):

- ``POST /predict?model=cnn&k=3`` with the picture (PNG or JPEG, any size, dark ink on light paper or
  light on dark) in the multipart form field ``file`` -> ``drawing.predict_image(...).to_dict()`` plus
  ``model``, ``engine``, ``inference_ms`` and ``input_png`` (the 28x28 model input, enlarged 4 times).
  The preprocessing is :func:`mnist_course.drawing.predict_image`'s, the one code path of the pad too.
- ``GET /`` the drawing page (mnist_course/serving/web/index.html), ``GET /static/<path>`` its files,
  ``GET /vendor/onnxruntime-web/<path>`` onnxruntime-web from ``make web-deps``,
  ``GET /health``, ``GET /models``, ``GET /models/<name>.onnx`` (the file ``make export`` wrote).
- The page's in-browser engine is optional: the service starts and answers without onnxruntime-web
  (no npm needed); ``GET /models`` says ``"browser_engine": {"available": false, "detail": "<how to
  get it>"}`` and the page shows that line, until ``make web-deps`` has run (no restart needed).
- Bad input: JSON ``{"detail": "<what was wrong and what to send instead>"}`` with 413 (upload over the
  size cap, or a picture with more pixels than the pixel cap: a decompression bomb), 415 (not
  multipart, or a file that is not declared PNG/JPEG), 422 (no field ``file``, undecodable bytes, bad
  ``k``), 404 (unknown model). A blank picture is a 200 with ``"digit": null, "status": "no digit"``.

The models are loaded once at startup, in eval mode, with one PyTorch thread (``--threads``);
requests run in the server's thread pool, each one a forward pass under ``torch.inference_mode``
(no state is written, so concurrent requests need no lock: tests/test_serve_load.py checks every
answer under load, with :mod:`mnist_course.bench.load`). Only the benchmark and the command line
import this module.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from .. import drawing

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024     # the whole request body
MAX_PIXELS = 25_000_000                 # a 24-megapixel camera photo fits; a decompression bomb does not
ENGINE = "pytorch"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "application/octet-stream", "")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ORT_ENTRY = "ort.wasm.min.mjs"          # the onnxruntime-web module the page imports (app.js)
SEND = ('send a PNG or JPEG picture in the multipart form field "file", '
        'e.g. curl -F "file=@digit.png" http://127.0.0.1:8000/predict')


def vendor_dir() -> Path:
    """Where `make web-deps` installs onnxruntime-web's browser files (build/ is git-ignored)."""
    from ..settings import repo_root

    return repo_root() / "build" / "web-deps" / "node_modules" / "onnxruntime-web" / "dist"


def browser_engine(root: Path) -> dict:
    """{"available": bool, "detail": None | why not and how to get it}: can the page run the model in
    the browser, i.e. is onnxruntime-web (`make web-deps`) in `root`."""
    if (root / ORT_ENTRY).is_file():
        return {"available": True, "detail": None}
    return {"available": False,
            "detail": f"the in-browser engine is not installed (onnxruntime-web: {root / ORT_ENTRY} is missing); "
                      "on the server, run `make web-deps` (npm), then reload the page. "
                      "The answers come from the server meanwhile."}


def onnx_default_path(name: str) -> Path:
    """mnist_course.serving.export.default_path(name), imported when first asked (onnx loads only then)."""
    from .export import default_path

    return Path(default_path(name))


@dataclass
class ServedModel:
    """A model the service answers with: eval-mode module (N, 1, 28, 28) -> (N, 10) logits, and its info."""

    name: str
    model: torch.nn.Module
    mean: float
    std: float
    classes: list[str]
    accuracy: float | None = None
    info: dict = field(default_factory=dict)

    @classmethod
    def from_info(cls, name: str, model: torch.nn.Module, info: dict) -> ServedModel:
        return cls(name, model.eval(), float(info.get("mean", drawing.MNIST_MEAN)),
                   float(info.get("std", drawing.MNIST_STD)), [str(c) for c in info.get("classes", drawing.CLASSES)],
                   info.get("test_acc"), info)


def load_models(names: Sequence[str], default: str) -> dict[str, ServedModel]:
    """Load course models by name ('cnn', 'mlp') on the CPU. The default one is trained quickly if missing
    (pretrained.load_course_model's rule) and its errors stop the service; another one that cannot be
    loaded (missing, or trained in fast mode while this is full mode) is left out with a warning."""
    from ..pretrained import load_course_model

    out = {}
    for name in dict.fromkeys([default, *names]):
        try:
            model, info = load_course_model(name, device="cpu", train_if_missing=(name == default))
        except Exception as e:
            if name == default:
                raise
            print(f"serve: leaving out model {name!r}: {e}", file=sys.stderr)
            continue
        out[name] = ServedModel.from_info(name, model, info)
    return out


def export_missing(names: Sequence[str], path_of: Callable[[str], Path | None]) -> None:
    """Export each course model whose ONNX file is missing (mnist_course.serving.export); never overwrite one."""
    for name in names:
        path = path_of(name)
        if path is None or path.exists():
            continue
        try:
            from .export import export_onnx

            print(f"serve: exporting {name} to {path} (for the page's in-browser mode)", file=sys.stderr)
            export_onnx(name, path=path, overwrite=False)
        except Exception as e:  # the service works without it: /models says "onnx": null
            print(f"serve: could not export {name} to ONNX ({type(e).__name__}: {e}); "
                  "run `make export` for the in-browser mode", file=sys.stderr)


# ------------------------------------------------------------------------------------- the app

def create_app(models: dict[str, ServedModel] | None = None, names: Sequence[str] = ("cnn", "mlp"),
               default: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS, threads: int | None = None, export: bool = False,
               onnx_path: Callable[[str], Path | None] = onnx_default_path, web_dir: Path = WEB_DIR,
               vendor: Path | None = None):
    """The FastAPI app. `models`: name -> ServedModel (tests give small fakes); None loads the course
    models `names` at startup, `default` first (default: the first name). `threads`: PyTorch CPU threads
    set at startup (None: leave as is). `export`: write missing ONNX files at startup (never overwrite)."""
    served: dict[str, ServedModel] = {}
    state = {"default": default}

    @asynccontextmanager
    async def lifespan(app):
        if threads is not None:
            torch.set_num_threads(threads)
        loaded = models if models is not None else load_models(names, default or names[0])
        if not loaded:
            raise RuntimeError("no model to serve")
        served.update(loaded)
        if state["default"] not in served:
            state["default"] = next(iter(served))
        if export and models is None:
            export_missing(list(served), onnx_path)
        yield
        served.clear()

    app = FastAPI(title="mnist-course digit service", lifespan=lifespan,
                  description="Upload a picture of a digit, get the course model's answer. "
                              "README section 'Ship your model'.")

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):   # one sentence instead of pydantic's list
        parts = [f"{' '.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return JSONResponse({"detail": "bad request: " + "; ".join(parts) + ". Send e.g. POST /predict?model="
                             f"{state['default']}&k=3 with " + SEND.removeprefix("send ")}, status_code=422)

    def get_model(name: str | None) -> ServedModel:
        name = name or state["default"]
        if name not in served:
            raise HTTPException(404, f"unknown model {name!r}: the models here are "
                                     f"{', '.join(sorted(served))} (GET /models); use ?model={state['default']}")
        return served[name]

    def vendor_root() -> Path:
        return vendor if vendor is not None else vendor_dir()

    def onnx_url(name: str) -> str | None:
        path = onnx_path(name)
        return f"/models/{name}.onnx" if path is not None and path.is_file() else None

    @app.get("/health")
    def health():
        """Is the service up, and with which models."""
        return {"status": "ok", "models": sorted(served), "default": state["default"],
                "engine": ENGINE, "torch_threads": torch.get_num_threads()}

    @app.get("/models")
    def list_models():
        """The models this service answers with, their normalisation, classes and ONNX file, and
        whether the page can run them in the browser (onnxruntime-web from `make web-deps`)."""
        return {"models": [{"name": m.name, "accuracy": m.accuracy, "mean": m.mean, "std": m.std,
                            "classes": m.classes, "onnx": onnx_url(m.name)} for m in served.values()],
                "default": state["default"], "browser_engine": browser_engine(vendor_root())}

    @app.get("/models/{name}.onnx")
    def onnx_file(name: str):
        """The model exported to ONNX (`make export`), for the page's in-browser mode."""
        get_model(name)
        path = onnx_path(name)
        if path is None or not path.is_file():
            raise HTTPException(404, f"no ONNX file for model {name!r}"
                                     f"{'' if path is None else f' at {path}'}: run `make export` "
                                     f"(mnist-course export --model {name}), then ask again.")
        return FileResponse(path, media_type="application/octet-stream", filename=f"{name}.onnx")

    def file_under(root: Path, rel: str, missing: str):
        root = root.resolve()
        if not root.is_dir():
            raise HTTPException(404, missing)
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, f"no file {rel!r} here")
        media = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
        return FileResponse(target, media_type=media.get(target.suffix))

    @app.get("/", include_in_schema=False)
    def page():
        return file_under(web_dir, "index.html", f"the drawing page is not in this copy ({web_dir / 'index.html'} "
                                                 "is missing); the API works: see /docs")

    @app.get("/static/{path:path}", include_in_schema=False)
    def static(path: str):
        return file_under(web_dir, path, f"the drawing page's folder {web_dir} is missing")

    @app.get("/vendor/onnxruntime-web/{path:path}", include_in_schema=False)
    def vendor_file(path: str):
        root = vendor_root()
        engine = browser_engine(root)
        if not engine["available"] and not (root / path).is_file():   # no `make web-deps`, or it did not finish
            raise HTTPException(404, engine["detail"])
        return file_under(root, path, f"no onnxruntime-web folder at {root}")

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"],
                   "properties": {"file": {"type": "string", "format": "binary",
                                           "description": "a PNG or JPEG picture of one digit"}}}}}}})
    async def predict(request: Request, model: str | None = None, k: int = 3):
        """The model's answer for an uploaded picture: top-k classes and probabilities, or "no digit"."""
        served_model = get_model(model)
        if not 1 <= k <= len(served_model.classes):
            raise HTTPException(422, f"k={k}: ask for between 1 and {len(served_model.classes)} classes, e.g. k=3")
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise HTTPException(415, f"the request is {ctype or 'without a content type'}, not multipart/form-data: "
                                     + SEND)
        body = await read_capped(request, max_upload_bytes)
        data, part_type = await file_field(request, body)
        if part_type.split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise HTTPException(415, f'the field "file" is {part_type}, not a PNG or JPEG picture: ' + SEND)
        return await run_in_threadpool(answer, served_model, data, k, max_pixels)

    return app


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


async def read_capped(request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is over `max_bytes`: first by its declared
    Content-Length, then by the bytes actually received (chunked or lying clients), chunk by chunk."""
    def too_big(size: str) -> HTTPException:
        return HTTPException(413, f"the upload ({size}) is over the {_mb(max_bytes)} limit: send a smaller "
                                  "picture (a digit needs no more than 1000x1000 pixels)")

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_big(f"Content-Length {int(declared):,} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > max_bytes:
            raise too_big(f"more than {max_bytes:,} bytes received")
    return bytes(buf)


async def file_field(request, body: bytes) -> tuple[bytes, str]:
    """(bytes, content type) of the multipart field "file" of a body already read; 422 when it is missing."""
    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    except Exception as e:  # a malformed multipart body (bad boundary, too many parts)
        detail = getattr(e, "detail", None) or str(e)
        raise HTTPException(422, f"the multipart body could not be read ({detail}): " + SEND) from e
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            fields = ", ".join(repr(k) for k in form.keys()) or "no fields"
            raise HTTPException(422, f'no file in the multipart field "file" (got {fields}): ' + SEND)
        return await upload.read(), upload.content_type or ""
    finally:
        await form.close()


def decode(data: bytes, max_pixels: int = MAX_PIXELS):
    """PNG/JPEG bytes -> loaded PIL image. 422 when undecodable, 413 when the header declares more than
    `max_pixels` pixels (checked before decoding, so a decompression bomb is never expanded)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise HTTPException(422, 'the field "file" is empty: ' + SEND)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
            if im.width * im.height > max_pixels:
                raise HTTPException(413, f"the picture declares {im.width}x{im.height} = {im.width * im.height:,} "
                                         f"pixels, over the {max_pixels:,} limit (a decompression bomb?): "
                                         "send a smaller picture, e.g. 280x280")
            im.load()
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise HTTPException(413, f"the picture has too many pixels to decode safely, a decompression bomb? ({e}) "
                                 "Send a smaller picture, e.g. 280x280") from e
    except UnidentifiedImageError as e:
        raise HTTPException(422, f"the file is not a PNG or JPEG picture (it starts with {data[:12]!r}): "
                                 + SEND) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(422, f"the PNG or JPEG picture could not be decoded ({e}), damaged or cut short? "
                                 + SEND) from e
    return im


def answer(m: ServedModel, data: bytes, k: int, max_pixels: int = MAX_PIXELS) -> dict:
    """Decode, preprocess and predict (drawing.predict_image) -> the JSON of POST /predict."""
    start = time.perf_counter()
    im = decode(data, max_pixels)
    try:
        with torch.inference_mode():
            pred = drawing.predict_image(im, m.model, k=k, mean=m.mean, std=m.std, classes=m.classes)
    except ValueError as e:   # an image predict_image cannot read (e.g. empty)
        raise HTTPException(422, f"{e} " + SEND) from e
    out = pred.to_dict()
    png = None if pred.image is None else drawing.png_bytes(pred.image, scale=4)
    out.update(model=m.name, engine=ENGINE, inference_ms=1000 * (time.perf_counter() - start),
               input_png=None if png is None else "data:image/png;base64," + base64.b64encode(png).decode())
    return out


# ---------------------------------------------------------------------------------------- the CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mnist-course serve",
                                description="The course models as a web service with a drawing page (FastAPI + uvicorn).")
    p.add_argument("--model", default="cnn", help="the default model: cnn or mlp (default cnn)")
    p.add_argument("--models", default="cnn,mlp", help="the course models to load, comma-separated (default cnn,mlp)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")
    p.add_argument("--max-mb", type=float, default=MAX_UPLOAD_BYTES / 1024 / 1024, help="upload size cap in MB")
    p.add_argument("--no-export", action="store_true", help="do not export missing ONNX files at startup")
    args = p.parse_args(argv)
    from ..pretrained import COURSE_MODELS

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in [args.model, *names] if n not in COURSE_MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(COURSE_MODELS)}")
    if args.threads < 1 or not 0 < args.max_mb <= 1024 or not 0 < args.port < 65536:
        p.error("--threads must be >= 1, --max-mb in (0, 1024], --port in 1..65535")
    if args.host not in LOOPBACK:
        print(f"serve: WARNING: --host {args.host} makes the service reachable from other machines; it has no "
              "authentication. Use the default 127.0.0.1 unless you mean it.", file=sys.stderr)
    import uvicorn

    app = create_app(names=names, default=args.model, threads=args.threads, export=not args.no_export,
                     max_upload_bytes=int(args.max_mb * 1024 * 1024))
    print(f"serve: http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
          "(drawing page), /docs (API)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

