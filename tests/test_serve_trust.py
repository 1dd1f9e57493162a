"""What the service trusts at start-up, and what a killed export leaves.

- The ONNX file it would advertise and serve for a course model must be that model exported from the
  checkpoint it loaded (the checkpoint's SHA-256 in the file's metadata, the same logits on a fixed
  batch); otherwise it refuses to start with one line naming `mnist-course export`.
- A course model's checkpoint must hold the architecture its name says ("cnn": the course CNN).
- An export killed with SIGKILL leaves no temporary file for good: none while it verifies, and the
  next export removes what one killed mid-write left.

Course models here are untrained course architectures saved in a temporary models folder (fast
mode), so nothing is trained; the one dynamo export (seconds) is shared by the module."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from fastapi.testclient import TestClient

from mnist_course import drawing as dr
from mnist_course.models import build_model
from mnist_course.serving import service as serve

LOCAL = "http://127.0.0.1"
INFO = {"mean": dr.MNIST_MEAN, "std": dr.MNIST_STD, "test_acc": 0.5, "classes": [str(i) for i in range(10)],
        "dataset": "mnist"}
FIX = "mnist-course export --model cnn --force"


def course_cnn(seed: int):
    torch.manual_seed(seed)
    return build_model("cnn").eval()


def fast_env(monkeypatch, home):
    monkeypatch.setenv("MNIST_COURSE_MODELS", str(home))
    monkeypatch.setenv("MNIST_COURSE_FAST", "1")
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A models folder holding course model 'cnn' (an untrained course CNN, seed 0) and its export."""
    from mnist_course.pretrained import save_course_model
    from mnist_course.serving.export import export_onnx

    home = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as m:
        fast_env(m, home)
        save_course_model(course_cnn(0), "cnn", INFO)
        export_onnx("cnn", verify=False)
    return home


@pytest.fixture()
def home(exported, tmp_path, monkeypatch):
    """This test's copy of `exported`, in fast mode: (models folder, the ONNX file of 'cnn')."""
    home = tmp_path / "models"
    shutil.copytree(exported, home)
    fast_env(monkeypatch, home)
    return home, home / "fast" / "onnx" / "cnn.onnx"


def app(tmp_path):
    return serve.create_app(names=("cnn",), default="cnn", export=False, vendor=tmp_path / "no-web-deps")


def refusal(tmp_path) -> str:
    """The one line with which the app refuses to start (it must refuse)."""
    with pytest.raises(Exception) as e, TestClient(app(tmp_path), base_url=LOCAL):
        pass
    assert type(e.value).__name__ == "StartupError", repr(e.value)
    return str(e.value)


# ------------------------------------------------------------------------- item 1: the ONNX file

def test_the_file_exported_from_the_served_checkpoint_is_served_and_a_stale_one_is_refused(home, tmp_path):
    from mnist_course.pretrained import save_course_model
    from mnist_course.serving.export import file_sha256, load_onnx

    models, onnx = home
    meta = load_onnx(onnx)[1]                                 # the export says where it came from
    weights = models / "fast" / "course_cnn.safetensors"
    assert (meta["checkpoint"], meta["checkpoint_sha256"]) == (weights.name, file_sha256(weights))
    with TestClient(app(tmp_path), base_url=LOCAL) as c:       # the good file: advertised and served
        assert c.get("/models").json()["models"][0]["onnx"] == "/models/cnn.onnx"
        assert c.get("/models/cnn.onnx").content == onnx.read_bytes()
    save_course_model(course_cnn(1), "cnn", INFO, overwrite=True)   # retrained since the export
    line = refusal(tmp_path)
    assert f"refusing to serve {onnx} as model 'cnn'" in line and "exported from another checkpoint" in line
    assert FIX in line and "\n" not in line


def _edit(onnx_path, change):
    import onnx

    proto = onnx.load(str(onnx_path))
    change(proto)
    onnx_path.write_bytes(proto.SerializeToString())


def _set_meta(key, value):
    def change(proto):
        entries = {e.key: e for e in proto.metadata_props}
        if value is None:
            kept = [e for e in proto.metadata_props if e.key != key]
            del proto.metadata_props[:]
            proto.metadata_props.extend(kept)
        else:
            entries[key].value = value
    return change


def _shift_a_bias(proto):
    import numpy as np
    from onnx import numpy_helper

    last = [t for t in proto.graph.initializer if len(t.dims) == 1 and t.data_type == 1][-1]   # a float bias
    last.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(last) + np.float32(0.5), last.name))


TAMPERED = {  # what was done to a good file -> what the refusal must say
    "garbage": (lambda path: path.write_bytes(b"\x00 not an onnx model " * 50), "not a readable ONNX model"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:5000]), "not a readable ONNX model"),
    "exported before checksums": (lambda path: _edit(path, _set_meta("checkpoint_sha256", None)),
                                  "does not say which checkpoint"),
    "weights changed, checksum kept": (lambda path: _edit(path, _shift_a_bias), "does not compute what"),
    "another model's name": (lambda path: _edit(path, _set_meta("model", "mlp")), "model 'mlp' instead of 'cnn'"),
    "another normalisation": (lambda path: _edit(path, _set_meta("mean", "0.5")), "mean 0.5 instead of"),
}


@pytest.mark.parametrize("how", TAMPERED)
def test_a_file_that_is_not_the_served_model_is_refused_with_the_fix(home, tmp_path, how):
    _, onnx = home
    tamper, says = TAMPERED[how]
    tamper(onnx)
    line = refusal(tmp_path)
    assert says in line and FIX in line and str(onnx) in line


def test_without_a_file_the_service_starts_and_advertises_none(home, tmp_path):
    _, onnx = home
    onnx.unlink()
    with TestClient(app(tmp_path), base_url=LOCAL) as c:
        assert c.get("/models").json()["models"][0]["onnx"] is None


def _serve(home, port) -> subprocess.Popen:
    env = {**os.environ, "MNIST_COURSE_MODELS": str(home), "MNIST_COURSE_FAST": "1", "OMP_NUM_THREADS": "1",
           "MNIST_COURSE_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "mnist_course", "serve", "--model", "cnn", "--models", "cnn",
                             "--no-export", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_real_server_stops_with_one_line_and_no_traceback(home, tmp_path):
    import httpx

    from mnist_course.bench.load import free_port
    from mnist_course.pretrained import save_course_model

    save_course_model(course_cnn(1), "cnn", INFO, overwrite=True)
    port = free_port()
    proc = _serve(home[0], port)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            pytest.fail(f"the server started with a stale ONNX file (GET /health: {status})")
        assert proc.poll() is not None, "the server neither started nor stopped within 120 s"
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "Traceback" not in err and "exported from another checkpoint" in err and FIX in err, err[-3000:]
    assert sum("refusing to serve" in line for line in err.splitlines()) == 1, err[-3000:]


# --------------------------------------------------------------------- item 2: the architecture

def test_an_mlp_stored_as_the_course_cnn_is_refused(home, tmp_path):
    from mnist_course.pretrained import save_course_model

    save_course_model(build_model("mlp"), "cnn", INFO, overwrite=True)
    line = refusal(tmp_path)
    assert "stored as course model 'cnn', the course CNN with 98,682 parameters, but it is an MLP with " \
           "669,706 parameters" in line and "notebook 06" in line and "\n" not in line


def test_a_wrong_architecture_in_another_slot_is_left_out_with_a_warning(home, tmp_path, capsys):
    from mnist_course.pretrained import save_course_model

    save_course_model(build_model("cnn_wide"), "mlp", INFO)      # a CNN where the MLP belongs
    loaded = serve.load_models(["cnn", "mlp"], default="cnn")
    assert list(loaded) == ["cnn"]
    err = capsys.readouterr().err
    assert "leaving out model 'mlp'" in err and "the course MLP with 669,706 parameters, but it is a CNN" in err


@pytest.mark.parametrize("name, model, ok", [("cnn", "cnn", True), ("mlp", "mlp", True), ("cnn", "cnn_wide", False),
                                             ("cnn", "mlp", False), ("mlp", "mlp_small", False),
                                             ("mlp", "cnn", False)])
def test_check_course_architecture(name, model, ok):
    from mnist_course.checkpoint import CheckpointError
    from mnist_course.pretrained import check_course_architecture

    if ok:
        check_course_architecture(name, build_model(model))
    else:
        with pytest.raises(CheckpointError, match=f"course model '{name}'"):
            check_course_architecture(name, build_model(model), "x.safetensors")


# ---------------------------------------------------------------- item 9: an export killed mid-way

HOOK = r"""
import sys, time
from pathlib import Path
from mnist_course.serving import export

def pause(what):
    print(what, flush=True)
    time.sleep(600)

if sys.argv[1] == "write":           # stop half-way through writing the file (atomic_write's temporary one)
    real = export.atomic_write
    def slow_write(path, data, overwrite=True):
        def write(tmp):
            if callable(data):
                data(tmp)
            else:
                Path(tmp).write_bytes(data[: len(data) // 2])
            pause("writing " + tmp)
        return real(path, write, overwrite)
    export.atomic_write = slow_write
else:                                # stop while it compares with PyTorch on the test set
    export.verify_onnx = lambda *args, **kwargs: pause("verifying")
sys.exit(export.main(sys.argv[2:]))
"""


def tiny_checkpoint(path):
    from mnist_course.checkpoint import save_model

    torch.manual_seed(0)
    save_model(build_model("mlp_small"), path, INFO)
    return path


def kill_export_at(stage: str, args: list[str], timeout: float = 120.0) -> str:
    """Run `mnist-course export ARGS` in a subprocess that pauses at `stage`; SIGKILL it there. Returns
    the line it printed on pausing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MNIST_COURSE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", HOOK, stage, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                pytest.fail(f"the export did not reach {stage!r} within {timeout:g} s")
            line = proc.stdout.readline().strip()
        assert line.split(" ")[0] == {"write": "writing", "verify": "verifying"}[stage], \
            (line, proc.stderr.read() if proc.poll() is not None else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return line


def test_an_export_killed_mid_write_leaves_a_temporary_file_the_next_export_removes(tmp_path, capsys):
    from mnist_course.serving.export import export_onnx, load_onnx

    source, out = tiny_checkpoint(tmp_path / "tiny.safetensors"), tmp_path / "shipped" / "tiny.onnx"
    line = kill_export_at("write", ["--checkpoint", str(source), "--out", str(out), "--no-verify"])
    leftovers = [p.name for p in out.parent.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) == 1 and line.endswith(leftovers[0]) and not out.exists()   # the fault is real
    export_onnx(source, out, verify=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.onnx", "tiny.onnx.lock"]
    assert load_onnx(out)[1]["model"] == "tiny"
    assert f"removing {out.parent / leftovers[0]}" in capsys.readouterr().err


def test_an_export_killed_while_it_verifies_leaves_nothing(tmp_path, mnist):
    source, out = tiny_checkpoint(tmp_path / "tiny.safetensors"), tmp_path / "shipped" / "tiny.onnx"
    kill_export_at("verify", ["--checkpoint", str(source), "--out", str(out)])
    assert not out.parent.exists() or sorted(p.name for p in out.parent.iterdir()) == []


def test_temporaries_are_atomic_writes_own_files_only(tmp_path):
    from mnist_course.files import temporaries

    target = tmp_path / "cnn.onnx"
    mine = [tmp_path / ".cnn.onnx.0123abcd.tmp", tmp_path / ".cnn.onnx.ffffffff.tmp"]
    others = [".mlp.onnx.0123abcd.tmp", ".cnn.onnx.tmp", "cnn.onnx.0123abcd.tmp", ".cnn.onnx.0123abcd.tmp.keep",
              ".cnn.onnx.0123abcx.tmp", ".xcnn.onnx.0123abcd.tmp"]
    for p in [*mine, *(tmp_path / name for name in others)]:
        p.write_text("x")
    assert temporaries(target) == mine
    assert temporaries(tmp_path / "missing" / "cnn.onnx") == []
