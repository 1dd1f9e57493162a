"""The web service as a real uvicorn process on 127.0.0.1 (`mnist-course serve`), driven by a
bounded load test (load.load_test, the function `make benchmark` uses too): every request answered,
zero errors, each answer equal to predict_image's in this process. The server is always stopped."""

from __future__ import annotations

import io
import socket
import time

import pytest
from PIL import Image

from mnist_course import drawing
from mnist_course.bench import load

pytestmark = pytest.mark.slow          # about a minute and a half: three server starts and the load test

N_REQUESTS = 2000      # about 10 s on 2 busy CPU cores (measured: see the printed wall time)
CLIENTS = 8
TIME_LIMIT_S = 120     # the load test stops sending after this, and the test then fails (not_sent > 0)


def port_is_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


def test_load_test_on_a_real_server(mnist, capsys):
    payloads = load.digit_payloads(n=20, seed=0)          # 20 MNIST test digits on canvases + a blank one
    start = time.perf_counter()
    with load.running_server(["--model", "cnn", "--models", "cnn", "--no-export", "--threads", "1"]) as url:
        print(f"server up in {time.perf_counter() - start:.1f} s at {url}")
        # the known answers: the same course model, the same one code path, in this process
        from mnist_course.pretrained import load_course_model

        model, info = load_course_model("cnn", device="cpu", train_if_missing=False)
        expected = [load.answer_key(drawing.predict_image(Image.open(io.BytesIO(p)), model, mean=info["mean"],
                                                           std=info["std"]).to_dict()) for p in payloads]
        # status and top class: a fast-mode model (CI) is often "not sure", and mix-ups must still show
        assert expected[-1] == "no digit" and len({e.split()[-1] for e in expected[:-1]}) >= 6, expected
        r = load.load_test(url, payloads, expected, n_requests=N_REQUESTS, concurrency=CLIENTS,
                            time_limit=TIME_LIMIT_S)
    assert port_is_closed(url)
    with capsys.disabled():
        print(f"\nload test: {r['requests']} requests, {r['clients']} clients, {r['errors']} errors, "
              f"{r['wrong']} wrong, {r['not_sent']} not sent; p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
              f"{r['wall_s']:.1f} s ({r['per_s']:.0f} requests/s)")
    assert r["errors"] == 0 and r["wrong"] == 0, r["error_examples"]
    assert r["not_sent"] == 0 and r["lost"] == [] and r["answered"] == N_REQUESTS
    assert r["p50_ms"] <= r["p99_ms"]


def test_server_is_stopped_when_the_block_fails(mnist):
    with pytest.raises(RuntimeError, match="inside the block"):
        with load.running_server(["--model", "cnn", "--models", "cnn", "--no-export"]) as url:
            raise RuntimeError("inside the block")
    assert port_is_closed(url)


def test_a_server_that_cannot_start_is_reported():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="unknown model"):
        with load.running_server(["--model", "resnet"], startup_timeout=60):
            pass
    assert time.perf_counter() - start < 60
