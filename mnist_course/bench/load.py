"""The service under load: a real uvicorn process on 127.0.0.1 and a bounded load test.

:func:`running_server` starts ``mnist-course serve`` on a free port and stops it afterwards;
:func:`load_test` sends a bounded number of requests from a few clients and checks every answer;
:func:`service_rows` are the benchmark's service rows: latency, requests/s against a bare FastAPI
endpoint (:func:`bare_app`) under the same clients in the same run, and the server's peak memory under
32 uploads of a 16-bit 5000x4999 PNG at once (:func:`memory_rows`). tests/test_serve_load.py uses the
same functions, so the test and the benchmark measure one thing.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from .. import drawing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def running_server(args: Sequence[str] = (), host: str = "127.0.0.1", startup_timeout: float = 120.0,
                   env: dict | None = None) -> Iterator[str]:
    """Start `python -m mnist_course serve --host host --port <free> *args` as a real uvicorn process,
    wait (at most `startup_timeout` s) until /health answers, yield its URL; always stop it afterwards."""
    with _process(["-m", "mnist_course", "serve", *args], host, startup_timeout, env) as (url, _):
        yield url


@contextmanager
def _process(argv: Sequence[str], host: str, startup_timeout: float, env: dict | None) -> Iterator[tuple[str, int]]:
    """running_server for `python *argv --host host --port <free>`: yields (URL, process id)."""
    port = free_port(host)
    log = tempfile.TemporaryFile()
    cmd = [sys.executable, *argv, "--host", host, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-3000:]

    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}:\n{tail()}")
            try:
                conn = http.client.HTTPConnection(host, port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer /health within {startup_timeout} s:\n{tail()}")
            time.sleep(0.2)
        yield f"http://{host}:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def multipart(data: bytes, filename: str = "digit.png", content_type: str = "image/png") -> tuple[bytes, str]:
    """(body, Content-Type header) of a multipart/form-data request with `data` in the field "file"."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def answer_key(answer: dict) -> str:
    """The part of a /predict answer (or Prediction.to_dict()) the load test compares: the status and the
    top class, e.g. "digit 7", "not sure 4", "no digit" -- the same for a weak model that is often unsure."""
    top = answer["topk"][0]["label"] if answer.get("topk") else ""
    return f"{answer['status']} {top}".strip()


def load_test(url: str, payloads: Sequence[bytes], expected: Sequence[str] | None = None,
              n_requests: int = 2000, concurrency: int = 8, time_limit: float = 120.0, model: str | None = None,
              timeout: float = 30.0) -> dict:
    """POST request i = payloads[i % len(payloads)] (PNG bytes) to url/predict from `concurrency` clients
    (threads, keep-alive connections) until `n_requests` are sent or `time_limit` s have passed.
    `expected[j]`: the :func:`answer_key` payload j must get; None: each payload's answer to one request
    sent alone beforehand. Returns {"requests", "answered", "errors", "wrong", "not_sent", "lost",
    "p50_ms", "p99_ms", "wall_s", "per_s", "error_examples"}; latencies are end to end, per request."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    path = "/predict" + (f"?model={model}" if model else "")
    bodies = [multipart(p) for p in payloads]

    def post(conn: http.client.HTTPConnection, j: int) -> tuple[int, dict]:
        body, ctype = bodies[j]
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:      # e.g. a plain-text 500 page
            return resp.status, {"text": raw[:200].decode(errors="replace")}

    if expected is None:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        expected = []
        for j in range(len(bodies)):
            status, out = post(conn, j)
            if status != 200:
                raise RuntimeError(f"payload {j} got HTTP {status}: {out}")
            expected.append(answer_key(out))
        conn.close()
    if len(expected) != len(payloads):
        raise ValueError(f"{len(payloads)} payloads but {len(expected)} expected answers")

    lock = threading.Lock()
    next_i = iter(range(n_requests))
    results: dict[int, tuple[float, str]] = {}   # i -> (ms, "ok" | "wrong" | "error: ...")
    deadline = time.perf_counter() + time_limit

    def client():
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        while time.perf_counter() < deadline:
            with lock:
                i = next(next_i, None)
            if i is None:
                break
            j = i % len(bodies)
            start = time.perf_counter()
            try:
                status, out = post(conn, j)
                got = answer_key(out) if status == 200 else None
                outcome = ("ok" if got == expected[j] else f"wrong: {got} != {expected[j]}") \
                    if status == 200 else f"error: HTTP {status} {str(out)[:200]}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                outcome = f"error: {type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
            with lock:
                results[i] = (1000 * (time.perf_counter() - start), outcome)
        conn.close()

    t0 = time.perf_counter()
    workers = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=time_limit + 2 * timeout)
    wall = time.perf_counter() - t0
    with lock:
        done = dict(results)
    ms = np.array([t for t, _ in done.values()]) if done else np.array([np.nan])
    errors = [o for _, o in done.values() if o.startswith("error")]
    wrong = [o for _, o in done.values() if o.startswith("wrong")]
    sent = len(done)
    return {"requests": n_requests, "clients": concurrency, "answered": sent - len(errors),
            "errors": len(errors), "wrong": len(wrong), "not_sent": n_requests - sent,
            "lost": sorted(set(range(n_requests)) - set(done))[:20] if sent < n_requests else [],
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "wall_s": wall, "per_s": sent / wall, "error_examples": (errors + wrong)[:5]}


def digit_payloads(n: int = 20, seed: int = 0) -> list[bytes]:
    """PNG bytes of n MNIST test digits redrawn on 280x280 canvases (drawing.draw_digit_on_canvas) and a
    blank canvas: what the load test sends."""
    from ..data import load_mnist

    data = load_mnist("mnist")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.X_test), size=n, replace=False)
    pictures = [drawing.draw_digit_on_canvas(data.X_test[i].numpy(), rng) for i in idx]
    return [drawing.png_bytes(p) for p in pictures] + [drawing.png_bytes(np.zeros((280, 280), np.uint8))]


CONSTANT_ANSWER = {"digit": "3", "status": "digit", "reason": None,
                   "topk": [{"label": "3", "probability": 0.99}, {"label": "5", "probability": 0.006},
                            {"label": "8", "probability": 0.002}],
                   "probabilities": [0.0, 0.0, 0.0, 0.99, 0.0, 0.006, 0.0, 0.0, 0.002, 0.0],
                   "seconds": 0.001, "model_seconds": 0.0005, "model": "cnn", "engine": "pytorch",
                   "inference_ms": 1.0, "input_png": None}


def bare_app():
    """The reference of the throughput row: a bare FastAPI app, POST /predict -> CONSTANT_ANSWER (the
    upload is not read) and GET /health, run by uvicorn with its defaults (:func:`running_bare`)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/predict")
    async def predict():
        return CONSTANT_ANSWER

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app


@contextmanager
def running_bare(host: str = "127.0.0.1", startup_timeout: float = 60.0) -> Iterator[str]:
    """:func:`bare_app` in a real uvicorn process on a free port (as running_server); yields its URL."""
    argv = ["-m", "uvicorn", f"{__name__}:bare_app", "--factory", "--log-level", "warning"]
    with _process(argv, host, startup_timeout, None) as (url, _):
        yield url


def big_png16(width: int = 5000, height: int = 4999, seed: int = 0) -> bytes:
    """A real 16-bit grayscale PNG, width x height: a drawn digit (drawing.draw_digit_on_canvas of an
    MNIST-like bar) enlarged; about a hundred kB that decode to 2 bytes a pixel."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    digit = np.zeros((28, 28), np.float32)
    digit[4:24, 12:16] = 1.0
    canvas = drawing.draw_digit_on_canvas(digit, rng)
    big = np.asarray(Image.fromarray(canvas).resize((width, height), Image.Resampling.BILINEAR))
    buf = io.BytesIO()
    Image.fromarray(big.astype(np.uint16) * 257).save(buf, format="PNG")
    return buf.getvalue()


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1024 / 1024


def memory_rows(n_requests: int = 64, concurrency: int = 32, time_limit: float = 180.0,
                model: str = "cnn", server: Sequence[str] | None = None) -> list[dict]:
    """The server's resident memory (MB) under `concurrency` clients uploading :func:`big_png16` at once
    (`n_requests` in all, bounded by `time_limit` s), sampled every 10 ms: idle before, the peak, and
    2 s after the load. `server`: the server's Python arguments (default `-m mnist_course serve`).
    Rows {"task", "model", "ms": None, "value", "unit": "MB", "goal", "errors", ...}."""
    payload = big_png16()
    server = ["-m", "mnist_course", "serve"] if server is None else list(server)
    with _process([*server, "--model", model, "--models", model, "--no-export"], "127.0.0.1", 120.0,
                  None) as (url, pid):
        idle = _rss_mb(pid)
        peak, stop = [idle], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_mb(pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            r = load_test(url, [payload], n_requests=n_requests, concurrency=concurrency, time_limit=time_limit,
                          timeout=time_limit)
        finally:
            stop.set()
            sampler.join(5)
        time.sleep(2)
        after = _rss_mb(pid)
    what = (f"service: RSS, {concurrency} clients uploading a 16-bit 5000x4999 PNG "
            f"({len(payload) // 1024} kB; {r['requests'] - r['not_sent']} requests, {r['errors']} errors, "
            f"{r['wrong']} wrong)")
    extra = {"model": model, "ms": None, "unit": "MB", "errors": r["errors"], "wrong": r["wrong"],
             "not_sent": r["not_sent"], "wall_s": round(r["wall_s"], 1)}
    return [{"task": "service: RSS idle, before the load", "value": round(idle), "goal": "", **extra},
            {"task": what + ", peak", "value": round(peak[0]), "goal": "<= 1024 MB", **extra},
            {"task": what + ", 2 s after", "value": round(after), "goal": "", **extra}]


def service_rows(models=None, n_requests: int = 2000, concurrency: int = 8, time_limit: float = 180.0,
                 quick: bool = False, memory: bool = True) -> list[dict]:
    """p50 and p99 end-to-end latency (ms) of POST /predict on a real uvicorn process (127.0.0.1, one
    PyTorch thread) under :func:`load_test`, per course model; the first model's requests/s as a ratio
    to :func:`bare_app`'s under the same load test right after (same clients, same payloads); and
    :func:`memory_rows` (`memory`). `models`: names, or a dict whose keys are the names (its modules are
    not used: the server loads the course models itself). Rows {"task", "model", "ms", "goal", "errors",
    "wrong", "not_sent", "wall_s"}; the ratio and memory rows have "ms": None, "value" and "unit".
    quick: 200 requests and 32 uploads (the benchmark's --quick run)."""
    if quick:
        n_requests = min(n_requests, 200)
    names = ["cnn"] if models is None else [n for n in models if n in ("cnn", "mlp")]
    payloads = digit_payloads()
    rows, per_s = [], {}
    for name in names:
        with running_server(["--model", name, "--models", name, "--no-export"]) as url:
            r = load_test(url, payloads, n_requests=n_requests, concurrency=concurrency, time_limit=time_limit)
        per_s[name] = r
        extra = {"errors": r["errors"], "wrong": r["wrong"], "not_sent": r["not_sent"], "wall_s": round(r["wall_s"], 1)}
        what = (f"service: POST /predict, 280x280 PNG, {r['requests'] - r['not_sent']:,} requests from "
                f"{concurrency} clients ({r['errors']} errors, {r['wrong']} wrong)")
        rows.append({"task": what + ", p50", "model": name, "ms": round(r["p50_ms"], 2), "goal": "", **extra})
        rows.append({"task": what + ", p99", "model": name, "ms": round(r["p99_ms"], 2),
                     "goal": "<= 50 ms" if concurrency == 8 else "", **extra})
    if names:
        with running_bare() as url:
            b = load_test(url, payloads, n_requests=n_requests, concurrency=concurrency, time_limit=time_limit)
        s = per_s[names[0]]
        rows.append({"task": f"service: requests/s, as a ratio to a bare FastAPI endpoint returning a constant "
                             f"(same {concurrency} clients, same run: {s['per_s']:.0f} vs {b['per_s']:.0f} requests/s; "
                             f"bare p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms)",
                     "model": names[0], "ms": None, "value": round(s["per_s"] / b["per_s"], 2), "unit": "x",
                     "goal": ">= 0.5x", "errors": b["errors"], "wrong": b["wrong"], "not_sent": b["not_sent"],
                     "wall_s": round(b["wall_s"], 1)})
    if memory and names:
        rows += memory_rows(n_requests=32 if quick else 64, model=names[0])
    return rows
