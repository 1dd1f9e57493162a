"""Print the requirements of pyproject.toml's extras, one per line, for the Containerfiles.

    python3 containers/requirements.py pyproject.toml serve          # the base dependencies + [serve]
    python3 containers/requirements.py pyproject.toml course --no-torch

The images install these first, from pyproject.toml alone, so that a change of the library's code
rebuilds only the last layer (pip install --no-deps of the package). Self-references
("mnist-course[serve]") are expanded; --no-torch leaves out torch and torchvision (the lab image
installs them first, from the PyTorch index it is given). Standard library only (Python >= 3.11).
"""

import re
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the images have 3.11)
    import tomli as tomllib


def requirements(pyproject: str, extras: list[str], no_torch: bool = False) -> list[str]:
    project = tomllib.load(open(pyproject, "rb"))["project"]
    name, optional = project["name"], project.get("optional-dependencies", {})
    out, seen = list(project.get("dependencies", [])), set()

    def add(extra: str) -> None:
        if extra in seen:
            return
        if extra not in optional:
            sys.exit(f"requirements.py: {pyproject} has no extra {extra!r} (it has {', '.join(optional)})")
        seen.add(extra)
        for req in optional[extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req.replace(" ", ""))
            if own:
                for inner in own.group(1).split(","):
                    add(inner)
            elif req not in out:
                out.append(req)

    for extra in extras:
        add(extra)
    if no_torch:
        out = [r for r in out if re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() not in ("torch", "torchvision")]
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-torch"]
    if not args:
        sys.exit(__doc__)
    print("\n".join(requirements(args[0], args[1:], "--no-torch" in sys.argv)))
