"""mnist-course train under faults: two trainings into one --out, a full disk, a
read-only folder, and damaged files in a run folder. Each ends in one clear line and a non-zero exit,
never a traceback, and the last finished epoch stays resumable."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from mnist_course import files
from mnist_course.tooling.train import main

TINY = ["--model", "mlp_small", "--optimizer", "sgd", "--lr", "0.01", "--epochs", "3", "--val-size", "50",
        "--quiet"]


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    from fake_data import tiny_mnist

    monkeypatch.setenv("MNIST_COURSE_FAST", "0")
    monkeypatch.setenv("MNIST_COURSE_PROGRESS", "0")
    return tiny_mnist(tmp_path / "data", monkeypatch)


def cli(argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of main(argv); an argument error's SystemExit counts as its code."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The one 'error:' line of stderr (argparse's usage line before it allowed); fails on anything else."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", "  "))]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    return lines[0]


def results(out: Path):
    m = json.loads((out / "metrics.json").read_text())
    rows = json.loads((out / "history.json").read_text())["rows"]
    return m["val_acc"], m["test_acc"], m["best_epoch"], [{k: v for k, v in r.items() if k != "time"} for r in rows]


def leftovers(out: Path) -> list[str]:
    return [f.name for f in out.iterdir() if f.name.endswith(".tmp")] if out.is_dir() else []


# ---------------------------------------------------------------------------------------- 6. one lock

RUNNER = textwrap.dedent("""
    import hashlib, os, sys, time
    from pathlib import Path
    from mnist_course import data
    raw = Path(os.environ["MNIST_COURSE_DATA"]) / "MNIST" / "raw"
    data.SHA256["mnist"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in raw.iterdir()}
    from mnist_course.tooling.train import main
    go = Path(sys.argv[1])
    (go.parent / f"ready-{os.getpid()}").touch()
    while not go.exists():  # both processes start main() at the same instant
        time.sleep(0.002)
    sys.exit(main(sys.argv[2:]))
""")


def subprocess_env(data_root: Path) -> dict:
    return {**os.environ, "MNIST_COURSE_DATA": str(data_root), "MNIST_COURSE_FAST": "0",
            "MNIST_COURSE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


def test_two_trainings_started_together_into_one_out_one_trains_the_other_is_refused(tiny, tmp_path):
    runner, go, out = tmp_path / "runner.py", tmp_path / "go", tmp_path / "run"
    runner.write_text(RUNNER)
    seeds = (1, 2)
    procs = [subprocess.Popen([sys.executable, str(runner), str(go), *TINY, "--seed", str(seed), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(tiny)) for seed in seeds]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(c == 0 for c in codes) == [False, True], (codes, outputs)
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    line = error_line(outputs[loser][1])
    assert codes[loser] == 1 and f"--out {out} is in use" in line and f"pid {procs[winner].pid}" in line, line
    assert "wait" in line and "another --out" in line
    assert json.loads((out / "config.json").read_text())["seed"] == seeds[winner]  # one run's files only
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == seeds[winner]
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 3


def test_a_training_into_an_out_that_another_holds_is_refused_and_writes_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    with files.locked(out):  # as a training started a second earlier holds it
        code, _, err = cli([*TINY, "--out", out], capsys)
        assert code == 1 and f"--out {out} is in use by another" in error_line(err)
        assert not out.exists()
        interrupted_ok = cli([*TINY, "--out", out, "--resume"], capsys)[0]
        assert interrupted_ok != 0
    assert cli([*TINY, "--out", out], capsys)[0] == 0  # released: the next one trains
    assert cli(["--out", out, "--resume"], capsys)[0] == 0  # and a resume takes the lock again


# ------------------------------------------------------------------------------ 7. a full disk

class Faults:
    """Makes the n-th file write into `folder` fail with OSError(code), as a full disk would: files.atomic_write
    then leaves the previous version of that file and no temporary file. Counts the writes."""

    def __init__(self, monkeypatch, folder: Path, n: int | None = None, code: int = errno.ENOSPC):
        self.folder, self.n, self.code, self.count, self.real = folder, n, code, 0, os.replace
        monkeypatch.setattr(os, "replace", self.replace)

    def replace(self, src, dst):
        if Path(dst).parent == self.folder:
            self.count += 1
            if self.count == self.n:
                raise OSError(self.code, os.strerror(self.code), str(src))
        return self.real(src, dst)


def test_a_full_disk_at_any_write_is_one_line_and_the_run_then_finishes_the_same(tiny, tmp_path, capsys):
    with pytest.MonkeyPatch.context() as m:
        counter = Faults(m, tmp_path / "whole")
        assert cli([*TINY, "--out", tmp_path / "whole"], capsys)[0] == 0
    expected, writes = results(tmp_path / "whole"), counter.count
    assert writes >= 8  # config, metrics, and best/state/history after each of 3 epochs (best only if improved)
    failed = []
    for n in range(1, writes + 1):
        out = tmp_path / f"full-{n}"
        with pytest.MonkeyPatch.context() as m:
            Faults(m, out, n)
            code, _, err = cli([*TINY, "--out", out], capsys)
        line = error_line(err)
        assert code == 1 and "No space left on device" in line and "free some space" in line, (n, line)
        # what the line says to do, done once the disk has room again
        argv = ["--out", out, "--resume"] if f"--out {out} --resume" in line else [*TINY, "--out", out]
        assert "run the same command again" in line or argv[-1] == "--resume", line
        code, _, err = cli(argv, capsys)
        if code != 0 or results(out) != expected or leftovers(out):
            failed.append((n, line, code, err))
    assert not failed, failed


@pytest.mark.parametrize("name, error", [
    ("state.pt", RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")),
    ("best.safetensors", "safetensors"),
])
def test_a_full_disk_inside_the_libraries_writers_is_named_too(tiny, tmp_path, name, error, capsys, monkeypatch):
    """torch.save and safetensors do not raise OSError on a full disk (seen on a 64 KiB tmpfs)."""
    import safetensors.torch
    from safetensors import SafetensorError

    if error == "safetensors":
        error = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    out, calls = tmp_path / "run", []
    writer = {"state.pt": (torch, "save"), "best.safetensors": (safetensors.torch, "save_file")}[name]
    real = getattr(*writer)

    def failing(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the second epoch's
            Path(path).write_bytes(b"half")
            raise error
        return real(obj, path, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(*writer, failing)
        code, _, err = cli([*TINY, "--out", out], capsys)
    line = error_line(err)
    assert code == 1 and f"could not write {out / name}" in line and f"--out {out} --resume" in line, line
    assert not leftovers(out)
    assert cli(["--out", out, "--resume"], capsys)[0] == 0
    assert len(json.loads((out / "history.json").read_text())["rows"]) == 3


def can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(sys.platform != "linux" or not can_mount(),
                                 reason="needs `unshare -m` and mount (root) for a real small or read-only tmpfs")

IN_TMPFS = RUNNER.replace("go = Path(sys.argv[1])", "go = Path(sys.argv[1]); go.touch()")


@needs_mount
def test_a_real_full_tmpfs_then_room_again_finishes_the_same_run(tiny, tmp_path):
    runner, disk = tmp_path / "runner.py", tmp_path / "disk"
    runner.write_text(IN_TMPFS)
    disk.mkdir()
    run = f"{sys.executable} {runner} {tmp_path / 'go'} {' '.join(TINY)}"
    script = f"""
        {run} --out {tmp_path / 'whole'} || exit 10
        mount -t tmpfs -o size=150k tmpfs {disk} || exit 11
        {run} --out {disk / 'run'} 2> {tmp_path / 'full.err'}; echo $? > {tmp_path / 'full.rc'}
        mount -o remount,size=2m {disk} || exit 12
        {run} --out {disk / 'run'} --resume || exit 13
        cp -r {disk / 'run'} {tmp_path / 'copy'}
    """
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=subprocess_env(tiny))
    assert done.returncode == 0, done.stderr
    line = error_line((tmp_path / "full.err").read_text())
    assert (tmp_path / "full.rc").read_text().strip() == "1" and "free some space" in line, line
    assert results(tmp_path / "copy") == results(tmp_path / "whole") and not leftovers(tmp_path / "copy")


# --------------------------------------------------------------------------- 7. a read-only folder

@pytest.mark.parametrize("code, words", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")])
@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_that_cannot_be_written_is_one_line(tiny, tmp_path, code, words, resume, capsys, monkeypatch):
    """As root, chmod stops nothing: the file system calls under tmp_path/ro fail as a read-only mount's would."""
    import builtins

    ro, real_open, real_mkdir = tmp_path / "ro", builtins.open, os.mkdir
    out = ro / "run"
    if resume:
        assert cli([*TINY, "--epochs", "1", "--out", out], capsys)[0] == 0
        (out / "metrics.json").unlink()  # an interrupted run
    ro.mkdir(exist_ok=True)
    before = sorted(p.name for p in ro.rglob("*"))

    def under_ro(path) -> bool:
        return isinstance(path, (str, os.PathLike)) and str(Path(path).absolute()).startswith(str(ro) + os.sep)

    def fake_open(path, mode="r", *args, **kwargs):
        if under_ro(path) and any(c in mode for c in "wax+"):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, mode, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if under_ro(path):
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    exit_code, _, err = cli(["--out", out, "--resume"] if resume else [*TINY, "--out", out], capsys)
    line = error_line(err)
    assert exit_code == 1 and words in line and "--out" in line and str(ro) in line, line
    assert sorted(p.name for p in ro.rglob("*")) == before


@needs_mount
def test_a_real_read_only_mount_is_one_line(tiny, tmp_path):
    runner, disk = tmp_path / "runner.py", tmp_path / "disk"
    runner.write_text(IN_TMPFS)
    disk.mkdir()
    script = (f"mount -t tmpfs -o ro,size=1m tmpfs {disk} || exit 11; "
              f"{sys.executable} {runner} {tmp_path / 'go'} {' '.join(TINY)} --out {disk / 'run'}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(tiny))
    line = error_line(done.stderr)
    assert done.returncode == 1 and "Read-only file system" in line and "--out" in line, line


# ------------------------------------------------------------------------ 8. damaged files in a run

@pytest.fixture()
def interrupted_run(tiny, tmp_path, capsys):
    """A run folder as an interrupted run leaves it: epoch 1 of 3 done, no metrics.json."""
    from mnist_course import training

    out, real_fit = tmp_path / "run", training.fit

    def fit(*args, on_epoch_end=None, **kwargs):
        def stop(epoch, history):
            on_epoch_end(epoch, history)
            raise KeyboardInterrupt  # as Ctrl-C would, after epoch 1

        return real_fit(*args, on_epoch_end=stop, **kwargs)

    with pytest.MonkeyPatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(training, "fit", fit)
        main([*TINY, "--out", str(out)])
    return out, torch.load(out / "state.pt", weights_only=True)


def garbage_states(state: dict) -> dict:
    return {
        "random bytes": os.urandom(4000),
        "text": b"hello, this is not a checkpoint\n",
        "a list": [1, 2, 3],
        "a model's weights only": state["model"],
        "weights that are not tensors": {**state, "model": "weights"},
        "a history without rows": {**state, "history": {"meta": {}}},
        "an epoch that is not a number": {**state, "epoch": "three"},
    }


@pytest.mark.parametrize("case", list(garbage_states({"model": None})))
def test_a_damaged_state_pt_is_named_with_what_is_wrong_and_what_to_do(interrupted_run, case, capsys):
    out, state = interrupted_run
    garbage = garbage_states(state)[case]
    if isinstance(garbage, bytes):
        (out / "state.pt").write_bytes(garbage)
    else:
        torch.save(garbage, out / "state.pt")
    code, _, err = cli(["--out", out, "--resume"], capsys)
    line = error_line(err)
    assert code == 1 and str(out / "state.pt") in line, line
    assert "not a training state" in line and "arbitrary code" not in line, line
    assert "delete the folder or pass a new --out" in line, line


def garbage_configs(config: dict) -> dict:
    return {
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00",
        "cut short": b'{"model": "mlp_sm',
        "a list": b"[1, 2]",
        "null": b"null",
        "an unknown model": json.dumps({**config, "model": "resnet"}).encode(),
        "epochs as text": json.dumps({**config, "epochs": "abc"}).encode(),
        "a learning rate as text": json.dumps({**config, "lr": "x"}).encode(),
        "no model": json.dumps({k: v for k, v in config.items() if k != "model"}).encode(),
        "augmentation as a number": json.dumps({**config, "augment": 3}).encode(),
    }


@pytest.mark.parametrize("case, what", [
    ("binary", "not valid JSON"), ("cut short", "not valid JSON"), ("a list", "a JSON list, not an object"),
    ("null", "null, not an object"), ("an unknown model", "'model' is 'resnet'"),
    ("epochs as text", "'epochs' is 'abc'"), ("a learning rate as text", "'lr' is 'x'"),
    ("no model", "no 'model'"), ("augmentation as a number", "'augment' is 3"),
])
def test_a_damaged_config_json_is_named_with_what_is_wrong_and_what_to_do(interrupted_run, case, what, capsys):
    out, _ = interrupted_run
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_bytes(garbage_configs(config)[case])
    code, _, err = cli(["--out", out, "--resume"], capsys)
    line = error_line(err)
    assert code == 2 and str(out / "config.json") in line and what in line, line
    assert "delete the folder or pass a new --out" in line, line


@pytest.mark.parametrize("content", [b"[]", b'{"rows": 3}'])
def test_a_damaged_history_json_is_named(interrupted_run, content, capsys):
    out, _ = interrupted_run
    (out / "history.json").write_bytes(content)
    code, _, err = cli(["--out", out, "--resume"], capsys)
    line = error_line(err)
    assert code == 2 and str(out / "history.json") in line and "delete the folder or pass a new --out" in line
