"""A learner's own copy of the course notebooks, and JupyterLab on it (``mnist-course lab``).

JupyterLab saves a notebook, outputs and all, whenever you run it (and autosaves every few
minutes), so working in ``notebooks/`` would change tracked files. ``mnist-course lab`` therefore
works in ``my-notebooks/`` (git-ignored): the first time, each course notebook is copied there,
without outputs (the course keeps a few reference outputs in git for nbval; your copy opens
clean); afterwards your copies are never touched. When the course's version of a notebook
changes (a `git pull`), you are told which copies are older and how to get the new version, and
nothing is overwritten.

    mnist-course lab                        # copy what is missing, then open JupyterLab on my-notebooks/
    mnist-course lab --copy-only            # only copy (and report updates)
    mnist-course lab --dest DIR             # another folder

JupyterLab runs from this Python's environment, with that environment's bin/ folder first on
PATH, so `mnist-course status` works in JupyterLab's terminal; as root (e.g. in a container) it
gets --allow-root, which JupyterLab otherwise demands.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..settings import repo_root, resolve_path

DEFAULT_DEST = "my-notebooks"
_VERSIONS = ".course-versions.json"  # course notebook -> SHA-256 of the version that was copied


def clean_copy(path: Path) -> str:
    """The notebook at `path` as a learner's copy gets it: no outputs, no execution counts."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a valid notebook ({e})") from e
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def prepare(dest: str | Path | None = None, source: str | Path | None = None) -> dict[str, list[str]]:
    """Copy every course notebook missing from `dest` (default <repo>/my-notebooks) and list the rest.

    Returns {"copied": [...], "kept": [...], "updated_upstream": [...]} (file names): copied now;
    already there and left alone; already there while the course's version changed since it was
    copied. Existing files are never overwritten.
    """
    source = Path(source) if source is not None else repo_root() / "notebooks"
    dest = resolve_path(dest) if dest is not None else repo_root() / DEFAULT_DEST
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no course notebooks (NN_name.ipynb) in {source}")
    dest.mkdir(parents=True, exist_ok=True)
    versions_file = dest / _VERSIONS  # digests of the copies as made (without outputs)
    try:
        versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{versions_file} is not valid JSON ({e}); delete it to start the record afresh "
                         "(your notebooks are not affected)") from e
    report: dict[str, list[str]] = {"copied": [], "kept": [], "updated_upstream": []}
    for nb in notebooks:
        text = clean_copy(nb)
        target, digest = dest / nb.name, hashlib.sha256(text.encode("utf-8")).hexdigest()
        if target.exists():
            stale = nb.name in versions and versions[nb.name] != digest
            report["updated_upstream" if stale else "kept"].append(nb.name)
            continue
        target.write_text(text, encoding="utf-8")
        versions[nb.name] = digest
        report["copied"].append(nb.name)
    versions_file.write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    return report


def jupyter_command(dest: Path, options: list[str] | tuple[str, ...] = (), uid: int | None = None,
                    shell: str | None = None) -> list[str]:
    """The command line that opens JupyterLab on `dest` with `options`, from this Python (so from
    this environment). For uid 0 (default: this process's effective uid) it adds --allow-root.
    On POSIX, JupyterLab's terminals run `shell` (default $SHELL) as a plain shell: JupyterLab
    started without a terminal would make it a login shell, whose /etc/profile resets PATH."""
    uid = os.geteuid() if uid is None and hasattr(os, "geteuid") else uid
    command = [sys.executable, "-m", "jupyterlab", str(dest)]
    if uid == 0 and "--allow-root" not in options:
        command.append("--allow-root")
    shell = shell or os.environ.get("SHELL") or shutil.which("sh")
    if os.name == "posix" and shell:
        command.append(f"--ServerApp.terminado_settings=shell_command={shlex.quote(shell)}")
    return [*command, *options]


def jupyter_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default os.environ) with this environment's scripts folder (where `mnist-course`
    is) first on PATH, so JupyterLab's terminals find the course's command."""
    env = dict(os.environ if environ is None else environ)
    scripts = sysconfig.get_path("scripts")
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != scripts]
    env["PATH"] = os.pathsep.join([scripts, *rest])
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnist-course lab",
        description="Copy the course notebooks into your own folder (never overwriting yours; the copies "
                    "carry no outputs) and open JupyterLab there.")
    parser.add_argument("--dest", default=None, help=f"your folder (default: <repo>/{DEFAULT_DEST}; a relative "
                                                     "path is taken from the repository folder)")
    parser.add_argument("--copy-only", action="store_true", help="only copy the notebooks; do not start JupyterLab")
    parser.add_argument("jupyter_options", nargs="*", metavar="-- JUPYTER_OPTION",
                        help="options for JupyterLab, after --, e.g. mnist-course lab -- --no-browser --port 8889")
    args = parser.parse_args(argv)
    if args.copy_only and args.jupyter_options:
        parser.error(f"--copy-only starts no JupyterLab, so {' '.join(args.jupyter_options)} would be unused")
    try:
        report = prepare(args.dest)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dest = resolve_path(args.dest) if args.dest else repo_root() / DEFAULT_DEST
    if report["copied"]:
        print(f"copied into {dest}: {', '.join(report['copied'])}")
    for name in report["updated_upstream"]:
        print(f"note: the course's {name} changed since your copy was made; your copy is kept. To get the new "
              f"version, rename yours (e.g. {Path(name).stem}-mine.ipynb) and run `mnist-course lab` again.")
    print(f"your notebooks: {dest} (git-ignored; notebooks/ stays as the course ships it)")
    if args.copy_only:
        return 0
    command = jupyter_command(dest, args.jupyter_options)
    print("starting JupyterLab:", " ".join(command), flush=True)
    env = jupyter_environment()
    os.chdir(dest)  # where JupyterLab's terminals start, so that `mnist-course status` reads your notebooks
    if os.name == "posix":  # JupyterLab takes this process's place: Ctrl-C and signals go straight to it
        os.execve(command[0], command, env)
    return subprocess.call(command, env=env)
