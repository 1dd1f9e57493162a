"""A learner's own copy of the course notebooks (what `make lab` opens).

JupyterLab saves a notebook, outputs and all, whenever you run it (and autosaves every few
minutes), so working in ``notebooks/`` would change tracked files. `make lab` therefore works in
``my-notebooks/`` (git-ignored): the first time, each course notebook is copied there; afterwards
your copies are never touched. When the course's version of a notebook changes (a `git pull`),
you are told which copies are older and how to get the new version, and nothing is overwritten.

    mnist-course lab --copy-only            # copy what is missing into my-notebooks/, report updates
    mnist-course lab --copy-only --dest DIR # another folder
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from ..settings import repo_root, resolve_path

DEFAULT_DEST = "my-notebooks"
_VERSIONS = ".course-versions.json"  # course notebook -> SHA-256 of the version that was copied


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    versions_file = dest / _VERSIONS
    try:
        versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{versions_file} is not valid JSON ({e}); delete it to start the record afresh "
                         "(your notebooks are not affected)") from e
    report: dict[str, list[str]] = {"copied": [], "kept": [], "updated_upstream": []}
    for nb in notebooks:
        target, digest = dest / nb.name, _sha256(nb)
        if target.exists():
            stale = nb.name in versions and versions[nb.name] != digest
            report["updated_upstream" if stale else "kept"].append(nb.name)
            continue
        shutil.copy2(nb, target)
        versions[nb.name] = digest
        report["copied"].append(nb.name)
    versions_file.write_text(json.dumps(versions, indent=1, sort_keys=True) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-course lab",
                                     description="Copy the course notebooks into your own folder (never overwriting).")
    parser.add_argument("--dest", default=None, help=f"your folder (default: <repo>/{DEFAULT_DEST})")
    args = parser.parse_args(argv)
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
              f"version, rename yours (e.g. {Path(name).stem}-mine.ipynb) and run `make lab` again.")
    print(f"your notebooks: {dest} (git-ignored; notebooks/ stays as the course ships it)")
    return 0

