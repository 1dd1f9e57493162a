"""The web service under hostile or unlucky clients: slow and silent clients,
clients that go away, huge pictures many at once, odd paths, methods, uploads and Host headers.

The server is a real uvicorn (`serve.server_options`, the options `mnist-course serve` runs with)
in a thread of this process, on 127.0.0.1, with small stand-in models; every wait is bounded to a few
seconds. The same routes with FastAPI's TestClient are in tests/test_serve.py."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import uvicorn
from fakes import Fixed, bar_image
from fastapi.testclient import TestClient
from PIL import Image, ImageFile
from torch import nn

from mnist_course import drawing as dr
from mnist_course.bench import load
from mnist_course.serving import service as serve

LOCAL = "http://127.0.0.1"


def png(a: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, dtype=np.uint8)).save(buf, format=fmt, **kw)
    return buf.getvalue()


class Slow(nn.Module):
    """Fixed(3)'s answer after `seconds`; counts how many forward passes run at once (`peak`)."""

    def __init__(self, seconds: float = 0.3):
        super().__init__()
        self.inner, self.seconds = Fixed(3), seconds
        self.lock, self.now, self.peak = threading.Lock(), 0, 0

    def forward(self, X):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1
        return self.inner(X)


def app_with(model: nn.Module | None = None, **kw):
    models = {"three": serve.ServedModel("three", model if model is not None else Fixed(3), 0.5, 0.25,
                                         list(dr.CLASSES), 0.5)}
    return serve.create_app(models, default="three", **kw)


@contextmanager
def live(app, **options):
    """A real uvicorn on 127.0.0.1 in a thread, with the service's own options; yields its port."""
    port = load.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **serve.server_options(**options)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def trickle(port: int, head: bytes, drip: bytes = b"x", every: float = 0.2, limit: float = 4.0) -> tuple[float, bytes]:
    """Send `head`, then `drip` every `every` s, as a slow client does, until the server answers 408 or
    closes the connection (or `limit` s pass), and read until the server closes it; returns (seconds until
    the 408, or until the close, and everything the server sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=limit)
    s.settimeout(every)
    start, got, answered = time.monotonic(), b"", None
    try:
        if head:
            s.sendall(head)
        while time.monotonic() - start < limit:
            try:
                data = s.recv(65536)
            except TimeoutError:
                data = None
            except OSError:              # reset by the server after its answer
                break
            if data == b"":              # closed by the server
                break
            got += data or b""
            if answered is None and b"HTTP/1.1 408" in got:
                answered = time.monotonic() - start   # the answer's head and body may come in two reads
            if drip and answered is None:
                try:
                    s.sendall(drip)
                except OSError:          # closed by the server
                    break
        return (answered if answered is not None else time.monotonic() - start), got
    finally:
        s.close()


def multipart_raw(data: bytes, disposition: str, boundary: str = "b0undary") -> tuple[bytes, dict]:
    body = (f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: image/png\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


# -------------------------------------------------------------------------- slow and silent clients

@pytest.mark.parametrize("first", [b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"],
                         ids=["first request", "next request on a kept-alive connection"])
def test_headers_sent_one_byte_at_a_time_are_cut_off(first):
    with live(app_with(), header_timeout=1.0) as port:
        took, got = trickle(port, first + b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert took < 2.5, f"a client trickling its headers held the connection for {took:.1f} s"
    answers = got.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == (2 if first else 1) and answers[-1].startswith(b"408") and b"headers" in answers[-1], got


def test_a_connection_that_sends_nothing_is_closed():
    with live(app_with(), header_timeout=1.0) as port:
        took, got = trickle(port, b"", drip=b"")
    assert took < 2.5, f"a silent connection was held for {took:.1f} s"


def test_a_body_sent_one_byte_at_a_time_gets_408():
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n")
    with live(app_with(body_timeout=1.0), header_timeout=5.0) as port:
        took, got = trickle(port, head)
    assert took < 2.5, f"a client trickling its upload held the request for {took:.1f} s"
    assert got.startswith(b"HTTP/1.1 408") and b"within 1 s" in got, got[:300]
    assert b"connection: close" in got.lower()


def test_timeouts_do_not_cut_a_slow_answer_or_a_kept_alive_connection():
    """The header and body deadlines are the client's: a request sent at once whose answer takes longer
    than both is answered, and the connection then serves the next request."""
    with live(app_with(Slow(seconds=1.5), body_timeout=0.5), header_timeout=0.5) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body, headers = multipart_raw(png(bar_image()), 'form-data; name="file"; filename="d.png"')
        for _ in range(2):
            conn.request("POST", "/predict", body=body, headers=headers)
            r = conn.getresponse()
            assert r.status == 200, r.read()
            assert r.read()
        conn.close()


def test_a_client_that_goes_away_mid_upload_leaves_one_line_not_a_traceback(capfd):
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\n" + b"x" * 500)
    with live(app_with()) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head)
        time.sleep(0.2)
        s.close()
        deadline = time.monotonic() + 3
        err = ""
        while time.monotonic() < deadline and "predict" not in err:
            time.sleep(0.1)
            err += capfd.readouterr().err
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200         # still serving
        conn.close()
    err += capfd.readouterr().err
    assert "Traceback" not in err and "ClientDisconnect" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "went away" in lines[0] and "505 bytes" in lines[0], lines


def test_a_request_whose_client_left_while_waiting_is_not_answered(capfd):
    model = Slow(seconds=1.0)
    body, headers = multipart_raw(png(bar_image()), 'form-data; name="file"; filename="d.png"')
    request = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + headers["content-type"].encode()
               + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with live(app_with(model, parallel=1)) as port:
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        first.sendall(request)                        # takes the only turn for a second
        time.sleep(0.3)
        gone = socket.create_connection(("127.0.0.1", port), timeout=10)
        gone.sendall(request)                         # waits for its turn, and leaves
        time.sleep(0.2)
        gone.close()
        assert first.recv(100).startswith(b"HTTP/1.1 200")
        first.close()
        time.sleep(1.5)                               # the second turn's time, had it been taken
    assert model.inner.calls == 1, f"{model.inner.calls} forward passes: one for a client that had gone"
    err = capfd.readouterr().err
    assert "went away" in err and "before its turn" in err and "Traceback" not in err, err


# ------------------------------------------------------------------------------- memory: pixels

def test_pixels_in_flight_are_bounded():
    """Six pictures at once, with room for two: never more than two decoded and predicted at once,
    and every one answered."""
    model = Slow(seconds=0.3)
    picture = png(bar_image())
    with live(app_with(model, max_pixels_in_flight=2 * 280 * 280, parallel=8)) as port:
        statuses = []

        def one():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            body, headers = multipart_raw(picture, 'form-data; name="file"; filename="d.png"')
            conn.request("POST", "/predict", body=body, headers=headers)
            statuses.append(conn.getresponse().status)
            conn.close()

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert statuses == [200] * 6
    assert model.peak == 2, f"{model.peak} pictures decoded at once, with room for 2"


def test_a_request_waits_for_its_turn_a_bounded_time():
    model = Slow(seconds=1.5)
    app = app_with(model, max_pixels_in_flight=280 * 280, queue_timeout=0.3)
    with live(app) as port:
        results = []

        def one():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            body, headers = multipart_raw(png(bar_image()), 'form-data; name="file"; filename="d.png"')
            conn.request("POST", "/predict", body=body, headers=headers)
            r = conn.getresponse()
            results.append((r.status, r.getheader("retry-after"), r.read()))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert sorted(s for s, _, _ in results) == [200, 503], results
    status, retry, text = next(r for r in results if r[0] == 503)
    assert retry and b"busy" in text and b"try again" in text


def test_a_large_jpeg_is_decoded_reduced(monkeypatch, tmp_path):
    """A 4000x3000 photo is decoded at 1/8 size (JPEG draft), the size drawing.predict_image reads a
    file at: the same answer, an 8x smaller decode."""
    picture = np.asarray(Image.fromarray(bar_image()).resize((4000, 3000), Image.Resampling.BILINEAR))
    data = png(255 - picture, "JPEG", quality=90)
    (tmp_path / "photo.jpg").write_bytes(data)
    decoded = []
    original = ImageFile.ImageFile.load

    def load(self):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with TestClient(app_with(), base_url=LOCAL) as c:
        out = c.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")}).json()
    assert decoded and max(max(s) for s in decoded) <= 500, f"decoded at {decoded}"
    expected = dr.predict_image(tmp_path / "photo.jpg", Fixed(3), mean=0.5, std=0.25).to_dict()
    assert out["status"] == expected["status"] and out["digit"] == expected["digit"]


# ------------------------------------------------------------------- paths, methods, uploads, hosts

@pytest.mark.parametrize("path", ["/static/%00", "/static/a%00.js", "/vendor/onnxruntime-web/%00"])
def test_a_nul_in_a_path_is_404(path, tmp_path):
    (tmp_path / "ort").mkdir()
    (tmp_path / "ort" / serve.ORT_ENTRY).write_text("export {};")
    with TestClient(app_with(vendor=tmp_path / "ort"), base_url=LOCAL, raise_server_exceptions=False) as c:
        r = c.get(path)
    assert r.status_code == 404 and isinstance(r.json()["detail"], str), r.text


@pytest.mark.parametrize("path", ["/", "/health", "/models", "/static/app.js"])
def test_head_is_200_without_a_body(path):
    with live(app_with()) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("HEAD", path)
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"")
        conn.request("GET", path)                 # the same connection: nothing was left unread
        r = conn.getresponse()
        assert r.status == 200 and r.read()
        conn.close()


@pytest.mark.parametrize("disposition", [
    "form-data; name=\"file\"; filename*=UTF-8''digit.png",
    "form-data; name=\"file\"; filename*=UTF-8''%E2%80%9Cmy%20digit%E2%80%9D.png",
    'form-data; name="file"; filename="d.png"; filename*=UTF-8\'\'d.png'], ids=["ascii", "utf-8", "both"])
def test_an_upload_named_only_by_filename_star_is_accepted(disposition):
    body, headers = multipart_raw(png(bar_image()), disposition)
    with TestClient(app_with(), base_url=LOCAL) as c:
        r = c.post("/predict", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["digit"] == "3", r.text


@pytest.mark.parametrize("host, ok", [("127.0.0.1:8000", True), ("localhost", True), ("LOCALHOST:1", True),
                                      ("[::1]:8000", True), ("evil.example", False),
                                      ("127.0.0.1.evil.example", False), ("", False)])
def test_only_allowed_hosts_are_answered(host, ok):
    with TestClient(app_with(), base_url=LOCAL) as c:
        r = c.get("/health", headers={"host": host})
    if ok:
        assert r.status_code == 200
    else:
        d = r.json()["detail"]
        assert r.status_code == 400 and "Host" in d and "--allowed-hosts" in d and "MNIST_COURSE_ALLOWED_HOSTS" in d
        assert (host and repr(host) in d) or "no Host header" in d


def test_allowed_hosts_can_be_widened(monkeypatch):
    with TestClient(app_with(allowed_hosts=["digits.example", "*.lab.example"]), base_url=LOCAL) as c:
        assert c.get("/health", headers={"host": "digits.example:80"}).status_code == 200
        assert c.get("/health", headers={"host": "a.lab.example"}).status_code == 200
        assert c.get("/health", headers={"host": "localhost"}).status_code == 400
    with TestClient(app_with(allowed_hosts=["*"]), base_url=LOCAL) as c:
        assert c.get("/health", headers={"host": "anything.example"}).status_code == 200
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: started.append(app))
    monkeypatch.setenv("MNIST_COURSE_ALLOWED_HOSTS", "env.example")
    serve.main(["--host", "10.1.2.3"])
    serve.main(["--allowed-hosts", "flag.example"])
    for app, yes, no in ((started[0], ("env.example", "10.1.2.3"), ("localhost", "flag.example")),
                         (started[1], ("flag.example", "127.0.0.1"), ("env.example",))):
        c = TestClient(app, base_url=LOCAL)           # no `with`: the routes, not the models
        for h in yes:
            assert c.get("/health", headers={"host": h}).status_code == 200, h
        for h in no:
            assert c.get("/health", headers={"host": h}).status_code == 400, h


def test_docs_are_off_by_default_and_on_with_a_flag(monkeypatch):
    with TestClient(app_with(), base_url=LOCAL) as c:
        r = c.get("/docs")
        assert r.status_code == 404 and "--docs" in r.json()["detail"] and "/openapi.json" in r.json()["detail"]
        assert c.get("/redoc").status_code == 404
        assert "/predict" in c.get("/openapi.json").json()["paths"]     # served here: no CDN
    with TestClient(app_with(docs=True), base_url=LOCAL) as c:
        assert c.get("/docs").status_code == 200
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: started.append(app))
    serve.main(["--docs"])
    assert TestClient(started[0], base_url=LOCAL).get("/docs").status_code == 200


def test_server_options_bound_connections_and_use_the_guard():
    options = serve.server_options()
    assert options["limit_concurrency"] == serve.MAX_CONNECTIONS and options["http"].header_timeout > 0
