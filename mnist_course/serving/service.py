"""The course's models as a web service (FastAPI + uvicorn): upload a picture, get the digit back.

    mnist-course serve --model cnn --port 8000      # or: make serve

Routes (README "Ship your model"; the API at /openapi.json, Swagger UI at /docs with ``--docs``):

- ``POST /predict?model=cnn&k=3`` with the picture (PNG or JPEG, any size, dark ink on light paper or
  light on dark) in the multipart form field ``file`` -> ``drawing.predict_image(...).to_dict()`` plus
  ``model``, ``engine``, ``inference_ms`` and ``input_png`` (the 28x28 model input, enlarged 4 times).
  The preprocessing is :func:`mnist_course.drawing.predict_image`'s, the one code path of the pad too.
- ``GET /`` the drawing page (mnist_course/serving/web/index.html), ``GET /static/<path>`` its files,
  ``GET /vendor/onnxruntime-web/<path>`` onnxruntime-web from ``make web-deps``,
  ``GET /health``, ``GET /models``, ``GET /models/<name>.onnx`` (the file ``make export`` wrote); the
  GET routes answer HEAD too.
- The page's in-browser engine is optional: the service starts and answers without onnxruntime-web
  (no npm needed); ``GET /models`` says ``"browser_engine": {"available": false, "detail": "<how to
  get it>"}`` and the page shows that line, until ``make web-deps`` has run (no restart needed).
- Bad input: JSON ``{"detail": "<what was wrong and what to send instead>"}`` with 413 (upload over the
  size cap, or a picture with more pixels than the pixel cap: a decompression bomb), 415 (not
  multipart, or a file that is not declared PNG/JPEG), 422 (no field ``file``, undecodable bytes, bad
  ``k``), 404 (unknown model or path), 408 (headers or body too slow), 400 (a Host not allowed),
  503 (busy: no turn within the queue timeout). A blank picture is a 200 with ``"digit": null,
  "status": "no digit"``.
- Limits (docs/shipping.md, "Limits"): upload bytes, pixels per picture and in flight, pictures at
  once, header and body deadlines (a header deadline needs :func:`guarded_protocol`: uvicorn has
  none), connections, allowed Host names. A picture's header is read before anything is decoded;
  a JPEG is decoded at the size drawing.predict_image reads (1/2 to 1/8, its draft).

Two engines (``--engine``): ``pytorch`` serves the course checkpoints; ``onnx`` serves the files
``mnist-course export`` wrote (``models/onnx/<name>.onnx``) with ONNX Runtime and never imports PyTorch,
so that ``pip install mnist-course[serve]`` (no PyTorch) and the service image run it; ``auto``, the
default, is ``pytorch`` when PyTorch is installed. Both answer through the same
``drawing.predict_image``; the ONNX file's metadata gives the mean, std, classes and accuracy.

The models are loaded once at startup, in eval mode, with one PyTorch thread (``--threads``); a
course model of the wrong architecture, or an ONNX file that is not the served checkpoint's export
(:func:`check_onnx`), stops the start-up with one line (:class:`StartupError`) naming the fix;
requests run in the server's thread pool (``--parallel`` at once, :class:`Gate`), each one a forward pass under ``torch.inference_mode``
(no state is written, so concurrent requests need no lock: tests/test_serve_load.py checks every
answer under load, with :mod:`mnist_course.bench.load`). Only the benchmark and the command line
import this module.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import re
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from .. import drawing

if TYPE_CHECKING:   # the pytorch engine loads PyTorch; the onnx engine never does
    import torch

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024     # the whole request body
MAX_PIXELS = 25_000_000                 # a 24-megapixel camera photo fits; a decompression bomb does not
MAX_PIXELS_IN_FLIGHT = 2 * MAX_PIXELS   # decoded pixels of all the pictures being answered at once
PARALLEL = 2                            # pictures decoded and predicted at once (threads); the rest wait
QUEUE_TIMEOUT_S = 30.0                  # the longest a request waits for its turn before a 503
HEADER_TIMEOUT_S = 10.0                 # a request's headers must arrive within this (from its first byte)
BODY_TIMEOUT_S = 30.0                   # and its body within this (from the end of the headers)
MAX_CONNECTIONS = 64                    # open connections + requests at once (uvicorn's limit_concurrency)
ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1")   # the Host headers answered (DNS rebinding)
ENGINE = "pytorch"                      # the engine of course checkpoints; ONNX files: OnnxModel.ENGINE
ENGINES = ("auto", "pytorch", "onnx")
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


class OnnxModel:
    """An exported model run by ONNX Runtime, for drawing.predict_probs: ``numpy_logits(X)``, X normalised
    float32 (N, 1, 28, 28) -> (N, 10) logits. No PyTorch involved."""

    ENGINE = "onnx"

    def __init__(self, session, path: Path):
        self.session, self.path = session, Path(path)
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def numpy_logits(self, X: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(X, np.float32)})[0]


@dataclass
class ServedModel:
    """A model the service answers with: eval-mode module (N, 1, 28, 28) -> (N, 10) logits (or an
    :class:`OnnxModel`), and its info."""

    name: str
    model: torch.nn.Module
    mean: float
    std: float
    classes: list[str]
    accuracy: float | None = None
    info: dict = field(default_factory=dict)

    @property
    def engine(self) -> str:
        """"onnx" for an OnnxModel, "pytorch" for a PyTorch module."""
        return OnnxModel.ENGINE if hasattr(self.model, "numpy_logits") else ENGINE

    @classmethod
    def from_info(cls, name: str, model: torch.nn.Module, info: dict) -> ServedModel:
        return cls(name, model.eval(), float(info.get("mean", drawing.MNIST_MEAN)),
                   float(info.get("std", drawing.MNIST_STD)), [str(c) for c in info.get("classes", drawing.CLASSES)],
                   info.get("test_acc"), info)


class StartupError(RuntimeError):
    """The service refuses to start; its message (one line) says what is wrong and how to fix it."""


def load_models(names: Sequence[str], default: str) -> dict[str, ServedModel]:
    """Load course models by name ('cnn', 'mlp') on the CPU. The default one is trained quickly if missing
    (pretrained.load_course_model's rule) and its errors stop the service; another one that cannot be
    loaded (missing, trained in fast mode while this is full mode, or not the architecture its name
    says: pretrained.check_course_architecture) is left out with a warning."""
    from ..pretrained import check_course_architecture, load_course_model

    out = {}
    for name in dict.fromkeys([default, *names]):
        try:
            model, info = load_course_model(name, device="cpu", train_if_missing=(name == default))
            check_course_architecture(name, model, info.get("path", f"course model {name!r}"))
        except Exception as e:
            if name == default:
                raise
            print(f"serve: leaving out model {name!r}: {e}", file=sys.stderr)
            continue
        out[name] = ServedModel.from_info(name, model, info)
    return out


def load_onnx_models(names: Sequence[str], default: str, path_of: Callable[[str], Path | None],
                     threads: int | None = 1) -> dict[str, ServedModel]:
    """The exported files path_of(name) ('cnn' -> models/onnx/cnn.onnx) run by ONNX Runtime (`threads`
    threads each), with the mean, std, classes and accuracy their metadata give; no PyTorch. The default
    model's file must be there and be an export of mnist-course (StartupError naming the fix); another
    one that is missing or unreadable is left out with a warning."""
    from .export import INPUT_NAME, OUTPUT_NAME, ExportError, load_onnx

    out = {}
    for name in dict.fromkeys([default, *names]):
        path = path_of(name)
        try:
            if path is None or not path.is_file():
                raise StartupError(f"serve: no ONNX file for model {name!r} at {path}: export it with "
                                   f"`mnist-course export --model {name}` (or mount a folder holding "
                                   f"onnx/{name}.onnx and set MNIST_COURSE_MODELS to it)")
            session, meta = load_onnx(path, threads)
            inputs, outputs = session.get_inputs(), session.get_outputs()
            shape_in, shape_out = list(inputs[0].shape), list(outputs[0].shape)
            if (len(inputs), len(outputs)) != (1, 1) or (inputs[0].name, outputs[0].name) != (INPUT_NAME, OUTPUT_NAME) \
                    or shape_in[1:] != [1, drawing.SIZE, drawing.SIZE] or shape_out[1:] != [len(meta["classes"])]:
                raise StartupError(f"serve: {path} does not take {INPUT_NAME!r} (N, 1, 28, 28) to {OUTPUT_NAME!r} "
                                   f"(N, {len(meta['classes'])}) (it takes {inputs[0].name!r} {shape_in} to "
                                   f"{outputs[0].name!r} {shape_out}): export it again with "
                                   f"`mnist-course export --model {name} --force`")
        except (StartupError, ExportError, OSError) as e:
            if name == default:
                if isinstance(e, StartupError):
                    raise
                raise StartupError(f"serve: cannot serve {path} as model {name!r}: {e}") from e
            print(f"serve: leaving out model {name!r}: {e}", file=sys.stderr)
            continue
        info = {**meta, "onnx": str(path)}
        out[name] = ServedModel(name, OnnxModel(session, path), float(meta["mean"]), float(meta["std"]),
                                [str(c) for c in meta["classes"]], meta.get("accuracy"), info)
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


def check_onnx(m: ServedModel, path: Path | None) -> None:
    """StartupError unless the ONNX file at `path`, which the service would advertise and serve for model
    `m`, is m exported from the checkpoint it was loaded from (m.info["path"]): export.verify_file (the
    checkpoint's SHA-256 in the file's metadata, then the same logits on a fixed batch). Nothing to check
    without a file or without a checkpoint (the stand-ins that tests give)."""
    checkpoint = m.info.get("path")
    if path is None or not path.is_file() or not checkpoint:
        return
    import torch

    from .export import ExportError, verify_file

    try:
        with torch.inference_mode():
            verify_file(path, m.model, m.name, checkpoint, m.mean, m.std, m.classes)
    except (ExportError, OSError) as e:
        reason = str(e).split("; export it again")[0].rstrip(".").replace(str(path), "it", 1)  # the fix: below
        raise StartupError(f"serve: refusing to serve {path} as model {m.name!r}: {reason}. Export it "
                           f"again from the served checkpoint: `mnist-course export --model {m.name} --force` "
                           "(or delete the file)") from e


class QuietStartupFailure:
    """ASGI middleware: when start-up fails with a StartupError (its line in failure["line"]), the server logs
    that line instead of the traceback Starlette sends along with "lifespan.startup.failed"."""

    def __init__(self, app, failure: dict):
        self.app, self.failure = app, failure

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def send_one_line(message):
            if message["type"] == "lifespan.startup.failed" and self.failure.get("line"):
                message = {**message, "message": self.failure["line"]}
            await send(message)

        await self.app(scope, receive, send_one_line)


# ------------------------------------------------------------------------------------- the app

def create_app(models: dict[str, ServedModel] | None = None, names: Sequence[str] = ("cnn", "mlp"),
               default: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS, threads: int | None = None, export: bool = False,
               onnx_path: Callable[[str], Path | None] = onnx_default_path, web_dir: Path = WEB_DIR,
               vendor: Path | None = None, max_pixels_in_flight: int = MAX_PIXELS_IN_FLIGHT,
               parallel: int = PARALLEL, queue_timeout: float = QUEUE_TIMEOUT_S,
               body_timeout: float = BODY_TIMEOUT_S, allowed_hosts: Sequence[str] = ALLOWED_HOSTS,
               docs: bool = False, engine: str = "pytorch"):
    """The FastAPI app. `models`: name -> ServedModel (tests give small fakes); None loads the course
    models `names` at startup, `default` first (default: the first name). `threads`: PyTorch CPU threads
    set at startup (None: leave as is). `export`: write missing ONNX files at startup (never overwrite).
    The ONNX file of every model loaded from a checkpoint is checked first (:func:`check_onnx`); a start-up
    that fails raises StartupError, which a server logs as its one line (:class:`QuietStartupFailure`).
    Limits (docs/shipping.md): `max_pixels` per picture and `max_pixels_in_flight` among the pictures
    being answered, at most `parallel` of them at once, each waiting at most `queue_timeout` s for its
    turn (then 503); the body must arrive within `body_timeout` s (then 408); only requests whose Host
    is in `allowed_hosts` are answered ("*": any; then 400). `docs`: Swagger UI at /docs (it loads
    from a CDN; /openapi.json is always served). `engine`: how `names` are loaded when `models` is None:
    "pytorch" (the course checkpoints, :func:`load_models`) or "onnx" (their exported files, onnx_path(name),
    run by ONNX Runtime: :func:`load_onnx_models`; PyTorch is then never imported)."""
    if engine not in ENGINES[1:]:
        raise ValueError(f"engine must be one of {ENGINES[1:]}, got {engine!r}")
    served: dict[str, ServedModel] = {}
    state = {"default": default}
    failure: dict = {}

    def start() -> None:
        if models is None and engine == "onnx":
            loaded = load_onnx_models(names, default or names[0], onnx_path, threads)
        else:
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            loaded = models if models is not None else load_models(names, default or names[0])
        if not loaded:
            raise StartupError("serve: no model to serve")
        served.update(loaded)
        if state["default"] not in served:
            state["default"] = next(iter(served))
        if export and models is None and engine == "pytorch":
            export_missing(list(served), onnx_path)
        for m in served.values():           # before any file is advertised
            if m.info.get("path"):
                check_onnx(m, onnx_path(m.name))

    @asynccontextmanager
    async def lifespan(app):
        errors: tuple = (StartupError, FileNotFoundError)
        if models is not None or engine == "pytorch":
            from ..checkpoint import CheckpointError
            from ..pretrained import FastModelError

            errors += (CheckpointError, FastModelError)
        try:
            start()
        except errors as e:
            served.clear()
            error = e if isinstance(e, StartupError) else StartupError(f"serve: cannot start: {e}")
            failure["line"] = str(error)
            raise error from e
        yield
        served.clear()

    app = FastAPI(title="mnist-course digit service", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None,
                  description="Upload a picture of a digit, get the course model's answer. "
                              "README section 'Ship your model'.")
    app.add_middleware(QuietStartupFailure, failure=failure)
    app.add_middleware(AllowedHosts, hosts=allowed_hosts)
    gate = Gate(parallel, max(max_pixels_in_flight, 1), queue_timeout)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request, exc):   # one line, no traceback: nobody is left to answer
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        logging.getLogger("uvicorn.error").warning("serve: %s went away during %s %s (%s); nothing answered",
                                                   client, request.method, request.url.path, exc)
        return JSONResponse({"detail": "client disconnected"}, status_code=400)

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

    if not docs:
        @app.get("/docs", include_in_schema=False)
        def no_docs():
            raise HTTPException(404, "the interactive docs are off (Swagger UI loads from a CDN): start the "
                                     "service with --docs for /docs, or read the API at /openapi.json")

    @app.head("/health", include_in_schema=False)
    @app.get("/health")
    def health():
        """Is the service up, and with which models."""
        torch = sys.modules.get("torch")    # None: the onnx engine, which never loads it
        return {"status": "ok", "models": sorted(served), "default": state["default"],
                "engine": served[state["default"]].engine if state["default"] in served else None,
                "torch_threads": torch.get_num_threads() if torch is not None else None}

    @app.head("/models", include_in_schema=False)
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
        try:
            target = (root / rel).resolve()
            found = target.is_relative_to(root) and target.is_file()
        except (ValueError, OSError):      # a NUL byte, a name too long
            found = False
        if not found:
            raise HTTPException(404, f"no file {rel!r} here")
        media = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
        return FileResponse(target, media_type=media.get(target.suffix))

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page():
        return file_under(web_dir, "index.html", f"the drawing page is not in this copy ({web_dir / 'index.html'} "
                                                 "is missing); the API works: see /openapi.json (or /docs "
                                                 "with --docs)")

    @app.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(path: str):
        return file_under(web_dir, path, f"the drawing page's folder {web_dir} is missing")

    @app.api_route("/vendor/onnxruntime-web/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
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
        body = await read_capped(request, max_upload_bytes, body_timeout)
        data, part_type = file_field(body, ctype)
        if part_type.split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise HTTPException(415, f'the field "file" is {part_type}, not a PNG or JPEG picture: ' + SEND)
        im = open_picture(data, max_pixels)            # the header only: 413/422 before decoding
        async with gate.turn(im.width * im.height):
            if await request.is_disconnected():      # gave up while waiting: no work for nobody
                raise ClientDisconnect("before its turn")
            return JSONResponse(await run_in_threadpool(answer, served_model, im, k))

    return app


CLOSE = {"Connection": "close"}      # the rest of the body is not read: the connection cannot be reused


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.3g} MB"


# ------------------------------------------------------------------------------ the request path

async def read_capped(request, max_bytes: int, timeout: float = BODY_TIMEOUT_S) -> bytes:
    """The request body, refused with 413 as soon as it is over `max_bytes`: first by its declared
    Content-Length, then by the bytes actually received (chunked or lying clients), chunk by chunk;
    408 when it has not all arrived `timeout` s after the headers (a slow or stalled client);
    ClientDisconnect (one log line, see create_app) when the client goes away."""
    def too_big(size: str) -> HTTPException:
        return HTTPException(413, f"the upload ({size}) is over the {_mb(max_bytes)} limit: send a smaller "
                                  "picture (a digit needs no more than 1000x1000 pixels)", headers=CLOSE)

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_big(f"Content-Length {int(declared):,} bytes")
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                message = await request.receive()
        except TimeoutError:
            raise HTTPException(408, f"the upload did not arrive within {timeout:g} s ({len(buf):,} bytes came): "
                                     "send the whole picture at once", headers=CLOSE) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect(f"{len(buf):,} bytes of the upload received")
        buf += message.get("body", b"")
        if len(buf) > max_bytes:
            raise too_big(f"more than {max_bytes:,} bytes received")
        if not message.get("more_body", False):
            return bytes(buf)


_FILENAME_STAR = re.compile(rb";\s*filename\*\s*=", re.IGNORECASE)


def file_field(body: bytes, content_type: str, max_parts: int = 20) -> tuple[bytes, str]:
    """(bytes, content type) of the multipart field "file" in a body already read (`content_type`: the
    request's, with its boundary); a file part is one with a filename, or only an RFC 5987 filename*
    (python-multipart, and so Starlette's forms, read that as a text field). 422 when the field is
    missing, the body malformed or over `max_parts` parts. The part's bytes are copied once."""
    try:
        from python_multipart.exceptions import MultipartParseError
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:                   # python-multipart before 0.0.13 (pyproject allows 0.0.9)
        from multipart.exceptions import MultipartParseError
        from multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(422, "the multipart body could not be read (no boundary in its Content-Type): " + SEND)
    parts: list[dict] = []
    header = [b"", b""]

    def begin():
        if len(parts) >= max_parts:
            raise MultipartParseError(f"more than {max_parts} parts")
        parts.append({"headers": {}, "data": None, "done": False})

    def header_end():
        parts[-1]["headers"][header[0].strip().lower()] = header[1].strip()
        header[:] = [b"", b""]

    def headers_done():
        part = parts[-1]
        disposition = part["headers"].get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        part["name"] = options.get(b"name", b"").decode("latin-1")
        part["is_file"] = b"filename" in options or bool(_FILENAME_STAR.search(disposition))
        if part["name"] == "file" and part["is_file"] and not any(p.get("data") is not None for p in parts):
            part["data"] = []                     # only the first file part named "file" is kept

    def data(chunk, start, end):
        if parts[-1]["data"] is not None:
            parts[-1]["data"].append(chunk[start:end])

    callbacks = {"on_part_begin": begin, "on_header_end": header_end, "on_headers_finished": headers_done,
                 "on_part_data": data, "on_part_end": lambda: parts[-1].update(done=True),
                 "on_header_field": lambda b, s, e: header.__setitem__(0, header[0] + b[s:e]),
                 "on_header_value": lambda b, s, e: header.__setitem__(1, header[1] + b[s:e])}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:      # a malformed multipart body (bad boundary, too many parts)
        raise HTTPException(422, f"the multipart body could not be read ({e}): " + SEND) from e
    found = next((p for p in parts if p["data"] is not None), None)
    if found is None:
        fields = ", ".join(repr(p.get("name", "")) for p in parts) or "no fields"
        raise HTTPException(422, f'no file in the multipart field "file" (got {fields}): ' + SEND)
    if not found["done"]:
        raise HTTPException(422, 'the multipart body ends inside the field "file" (cut short?): ' + SEND)
    return b"".join(found["data"]), found["headers"].get(b"content-type", b"").decode("latin-1")


def open_picture(data: bytes, max_pixels: int = MAX_PIXELS):
    """PNG/JPEG bytes -> PIL image with only its header read (not decoded). 422 when not a PNG/JPEG,
    413 when the header declares more than `max_pixels` pixels (so a decompression bomb is never
    expanded). A JPEG larger than drawing.MAX_SIDE is set to decode at 1/2, 1/4 or 1/8 size (its
    `draft`), as drawing.predict_image reads a file: its size is then the reduced one."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise HTTPException(422, 'the field "file" is empty: ' + SEND)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise HTTPException(413, f"the picture has too many pixels to decode safely, a decompression bomb? ({e}) "
                                 "Send a smaller picture, e.g. 280x280") from e
    except UnidentifiedImageError as e:
        raise HTTPException(422, f"the file is not a PNG or JPEG picture (it starts with {data[:12]!r}): "
                                 + SEND) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(422, f"the PNG or JPEG picture could not be read ({e}), damaged or cut short? "
                                 + SEND) from e
    if im.width * im.height > max_pixels:
        raise HTTPException(413, f"the picture declares {im.width}x{im.height} = {im.width * im.height:,} "
                                 f"pixels, over the {max_pixels:,} limit (a decompression bomb?): "
                                 "send a smaller picture, e.g. 280x280")
    if im.format == "JPEG" and max(im.size) > drawing.MAX_SIDE:
        im.draft(im.mode, (drawing.MAX_SIDE, drawing.MAX_SIDE))
    return im


def load_picture(im):
    """Decode a picture from :func:`open_picture` (in place; returns it); 422 when damaged."""
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(422, f"the PNG or JPEG picture could not be decoded ({e}), damaged or cut short? "
                                 + SEND) from e
    return im


def decode(data: bytes, max_pixels: int = MAX_PIXELS):
    """PNG/JPEG bytes -> loaded PIL image (open_picture, then load_picture): 422 when undecodable, 413
    when the header declares more than `max_pixels` pixels (checked before decoding)."""
    return load_picture(open_picture(data, max_pixels))


def answer(m: ServedModel, im, k: int) -> dict:
    """Decode a picture from :func:`open_picture`, preprocess and predict (drawing.predict_image) -> the
    JSON of POST /predict."""
    start = time.perf_counter()
    try:
        load_picture(im)
        pred = drawing.predict_image(im, m.model, k=k, mean=m.mean, std=m.std, classes=m.classes)
    except ValueError as e:   # an image predict_image cannot read (e.g. empty)
        raise HTTPException(422, f"{e} " + SEND) from e
    finally:
        big = im.width * im.height > TRIM_PIXELS
        im.close()
        if big:
            release_memory()
    out = pred.to_dict()
    out.update(model=m.name, engine=m.engine, inference_ms=1000 * (time.perf_counter() - start),
               input_png=None if pred.image is None else input_png(pred.image))
    return out


def input_png(image, scale: int = 4) -> str:
    """The (28, 28) model input in [0, 1] -> a data: URL of its PNG, `scale` times larger with sharp pixels:
    drawing.png_bytes's pixels, compressed fast (zlib level 1: 0.19 instead of 0.45 ms, 1.4 kB)."""
    from PIL import Image

    a = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    im = Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


TRIM_PIXELS = 4_000_000     # after a picture larger than this, freed memory goes back to the system


def release_memory() -> None:
    """Give the heap's free memory back to the system (glibc's malloc_trim; elsewhere nothing). Without it
    the pages of a large decode stay with the process after it is freed (3.5 GB kept after 32 such uploads)."""
    global _malloc_trim
    if _malloc_trim is None:
        import ctypes

        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


class Gate:
    """Turns for the CPU work of POST /predict: at most `parallel` pictures at once and at most `pixels`
    decoded pixels among them (each counts its width x height, at most `pixels`); first come, first
    served; a request that has waited `timeout` s gets a 503. One event loop's requests only."""

    def __init__(self, parallel: int, pixels: int, timeout: float):
        self.parallel, self.pixels, self.timeout = max(parallel, 1), pixels, timeout
        self.busy = self.used = 0
        self.queue: deque[tuple[int, asyncio.Future]] = deque()

    def _fits(self, need: int) -> bool:
        return self.busy < self.parallel and self.used + need <= self.pixels

    def _take(self, need: int) -> None:
        self.busy += 1
        self.used += need

    def _wake(self) -> None:
        while self.queue and self._fits(self.queue[0][0]):
            need, fut = self.queue.popleft()
            if not fut.done():
                self._take(need)
                fut.set_result(None)

    @asynccontextmanager
    async def turn(self, pixels: int):
        need = min(pixels, self.pixels)
        if self.queue or not self._fits(need):
            entry = (need, asyncio.get_running_loop().create_future())
            self.queue.append(entry)
            try:
                await asyncio.wait_for(entry[1], self.timeout)
            except (TimeoutError, asyncio.TimeoutError):
                raise HTTPException(503, f"the service is busy ({self.busy} pictures being read, "
                                         f"{len(self.queue)} waiting): try again in a few seconds",
                                    headers={"Retry-After": "5"}) from None
            finally:
                if entry in self.queue:
                    self.queue.remove(entry)
                    self._wake()
        else:
            self._take(need)
        try:
            yield
        finally:
            self.busy -= 1
            self.used -= need
            self._wake()


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    return any(a == "*" or host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in allowed)


class AllowedHosts:
    """ASGI middleware: answer only requests whose Host header (port left out) is in `hosts` ("*": any,
    "*.example.org": its subdomains); the others get a 400 saying how to allow it (DNS rebinding: a web
    page elsewhere must not reach a service on this machine by a name of its own)."""

    def __init__(self, app, hosts: Sequence[str]):
        self.app, self.hosts = app, tuple(h.strip().lower().strip("[]") for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            raw = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip().lower()
            host = raw[1:raw.find("]")] if raw.startswith("[") else raw.rsplit(":", 1)[0] if raw.count(":") == 1 \
                else raw
            if not _host_allowed(host, self.hosts):
                what = f"the Host header {raw!r} is" if raw else "a request with no Host header is"
                name = host or "NAME"
                detail = (f"{what} not answered here: this service answers to {', '.join(self.hosts)}. Open it as "
                          f"http://127.0.0.1:<port>/, or start it with --allowed-hosts {name} (or "
                          f"MNIST_COURSE_ALLOWED_HOSTS={name}) to answer to that name too")
                await JSONResponse({"detail": detail}, status_code=400, headers=CLOSE)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def guarded_protocol(header_timeout: float = HEADER_TIMEOUT_S):
    """uvicorn's h11 protocol class with a header deadline: a connection whose request headers are not
    all in `header_timeout` s after its first byte (or after the connection opened) gets a 408 and is
    closed. uvicorn has none (its timeout_keep_alive restarts at every byte): a client sending one byte
    a second held a connection forever. The body's deadline is read_capped's."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                if self._header_timer is None:
                    self._arm()                   # the first bytes of a next request on this connection
            else:
                self._disarm()                    # the headers are in

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _timed_out(self) -> None:
            self._header_timer = None
            if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
                return
            if self.conn.our_state is h11.IDLE:   # nothing sent on this connection since its last answer
                body = json.dumps({"detail": f"the request headers did not arrive within {self.header_timeout:g} s "
                                             "of the first byte: send the whole request at once"}).encode()
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            self.transport.close()

    GuardedH11Protocol.header_timeout = header_timeout
    return GuardedH11Protocol


def server_options(header_timeout: float = HEADER_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS,
                   log_level: str = "warning") -> dict:
    """The keyword arguments of uvicorn.run / uvicorn.Config that `mnist-course serve` uses (tests use
    the same): the h11 protocol with a header deadline (:func:`guarded_protocol`), at most
    `max_connections` connections and requests at once (then 503), uvicorn's 5 s keep-alive."""
    return {"http": guarded_protocol(header_timeout), "limit_concurrency": max_connections,
            "timeout_keep_alive": 5, "log_level": log_level}


# ---------------------------------------------------------------------------------------- the CLI

def torch_installed() -> bool:
    """Whether PyTorch can be imported here (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):      # blocked, or a stand-in in sys.modules without a spec
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mnist-course serve",
                                description="The course models as a web service with a drawing page (FastAPI + uvicorn).")
    p.add_argument("--model", default="cnn", help="the default model: cnn or mlp (default cnn)")
    p.add_argument("--models", default="cnn,mlp", help="the course models to load, comma-separated (default cnn,mlp)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="pytorch: the course checkpoints; onnx: their exported files (models/onnx/<name>.onnx) with "
                        "ONNX Runtime, no PyTorch needed; auto (default): pytorch when PyTorch is installed")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per model call, PyTorch's or ONNX Runtime's (default 1)")
    p.add_argument("--max-mb", type=float, default=MAX_UPLOAD_BYTES / 1024 / 1024, help="upload size cap in MB")
    p.add_argument("--no-export", action="store_true", help="do not export missing ONNX files at startup")
    p.add_argument("--allowed-hosts", default=None,
                   help="host names answered, comma-separated ('*': any; default $MNIST_COURSE_ALLOWED_HOSTS or "
                        f"{','.join(ALLOWED_HOSTS)}; the --host address is added)")
    p.add_argument("--docs", action="store_true", help="interactive API docs at /docs (Swagger UI, from a CDN)")
    p.add_argument("--parallel", type=int, default=PARALLEL,
                   help=f"pictures decoded and predicted at once (default {PARALLEL})")
    p.add_argument("--header-timeout", type=float, default=HEADER_TIMEOUT_S,
                   help=f"seconds a request's headers may take (default {HEADER_TIMEOUT_S:g})")
    p.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT_S,
                   help=f"seconds an upload may take (default {BODY_TIMEOUT_S:g})")
    args = p.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        engine = "pytorch" if torch_installed() else "onnx"
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if engine == "pytorch":
        from ..pretrained import COURSE_MODELS

        unknown = [n for n in [args.model, *names] if n not in COURSE_MODELS]
        if unknown:
            p.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(COURSE_MODELS)}")
    else:
        from .export import default_path

        for n in [args.model, *names]:
            try:
                default_path(n)
            except ValueError as e:
                p.error(str(e))
    if args.threads < 1 or not 0 < args.max_mb <= 1024 or not 0 < args.port < 65536 or args.parallel < 1:
        p.error("--threads and --parallel must be >= 1, --max-mb in (0, 1024], --port in 1..65535")
    if not (args.header_timeout > 0 and args.body_timeout > 0):
        p.error("--header-timeout and --body-timeout must be > 0 seconds")
    from ..settings import allowed_hosts

    hosts = allowed_hosts(ALLOWED_HOSTS) if args.allowed_hosts is None else \
        [h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
    if args.host not in ("0.0.0.0", "::", *hosts):      # a wildcard address is no name a client sends
        hosts.append(args.host)
    if args.host not in LOOPBACK:
        print(f"serve: WARNING: --host {args.host} makes the service reachable from other machines; it has no "
              "authentication. Use the default 127.0.0.1 unless you mean it.", file=sys.stderr)
    import uvicorn

    app = create_app(names=names, default=args.model, threads=args.threads, export=not args.no_export,
                     max_upload_bytes=int(args.max_mb * 1024 * 1024), parallel=args.parallel,
                     body_timeout=args.body_timeout, allowed_hosts=hosts, docs=args.docs, engine=engine)
    print(f"serve: http://{'[' + args.host + ']' if ':' in args.host else args.host}:{args.port}/ "
          f"(drawing page), {'/docs' if args.docs else '/openapi.json'} (API); answers to {', '.join(hosts)}; "
          f"engine {engine}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, **server_options(args.header_timeout))
    return 0

