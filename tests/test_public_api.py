"""The package's face: every public module is ``mc.<name>`` (``mc.<room>.<name>`` inside a room),
listed by ``dir()`` and ``mc.__all__``; ``import mnist_course`` loads no room beyond the learner's
core; the package docstring names every room.

The attribute checks run in a fresh interpreter (:data:`PROBE`): once a module is imported, Python
sets it as an attribute of its package, so in this process ``mc.photos`` would work even with
"photos" dropped from ``SUBMODULES``. The probe therefore asks each package the way a fresh
import answers: the attributes its ``__init__`` set, else its lazy ``__getattr__``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import mnist_course as mc
from mnist_course.tooling.rooms import PACKAGE, ROOMS

# What only a room loads: `import mnist_course` must load none of it.
ROOM_ONLY = [f"{PACKAGE}.{room}" for room in ROOMS[1:]] + ["fastapi", "uvicorn", "onnx", "onnxruntime",
                                                          "papermill", "nbconvert"]


def public_modules() -> list[str]:
    """Every public module and sub-package of the package (no _private part, no __main__)."""
    return sorted(info.name for info in pkgutil.walk_packages(mc.__path__, f"{PACKAGE}.")
                  if not any(part.startswith("_") for part in info.name.split(".")[1:]))


MODULES = public_modules()
PACKAGES = [PACKAGE] + [name for name in MODULES if hasattr(sys.modules.get(name), "__path__")]

PROBE = r"""
import importlib, json, sys
modules, packages, room_only = json.loads(sys.argv[1])
import mnist_course as mc
{prelude}
report = {{"loaded": sorted(m for m in sys.modules if any(m == r or m.startswith(r + ".") for r in room_only)),
          "dir": {{}}, "all": {{}}, "modules": {{}}}}
fresh = {{}}  # package -> its attributes right after its own import, before anything else loads


def ask(package, name):
    attrs = fresh[package]
    if name in attrs:
        return attrs[name]
    if "__getattr__" not in attrs:
        raise AttributeError(f"{{package}} has no attribute {{name!r}} and no lazy __getattr__")
    return attrs["__getattr__"](name)


for package in packages:  # the top package first, then each room, each asked before its modules load
    parent, _, name = package.rpartition(".")
    obj = ask(parent, name) if parent else mc
    fresh[package] = dict(vars(obj))
    report["dir"][package] = dir(obj)
    report["all"][package] = list(getattr(obj, "__all__", []))
for full in modules:
    parent, _, name = full.rpartition(".")
    try:
        got = ask(parent, name)
        want = importlib.import_module(full)
        ok = got is want and getattr(sys.modules[parent], name) is want
        report["modules"][full] = "ok" if ok else f"{{parent}}.{{name}} is {{got!r}}, not the module {{want!r}}"
    except Exception as e:
        report["modules"][full] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(report))
"""


def probe(prelude: str = "") -> dict:
    """What a fresh interpreter sees after `import mnist_course as mc` and then `prelude`."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(prelude=prelude),
                           json.dumps([MODULES, PACKAGES, ROOM_ONLY])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def fresh():
    return probe()


def test_the_walk_finds_the_rooms_and_their_modules():
    assert {f"{PACKAGE}.{room}" for room in ROOMS[1:]} <= set(PACKAGES)
    assert {f"{PACKAGE}.settings", f"{PACKAGE}.serving.export", f"{PACKAGE}.tooling.rooms"} <= set(MODULES)
    assert f"{PACKAGE}.__main__" not in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_every_public_module_is_an_attribute_of_its_package(fresh, name):
    assert fresh["modules"][name] == "ok", (
        f"{name}: {fresh['modules'][name]}; add {name.rpartition('.')[2]!r} to "
        f"{name.rpartition('.')[0]}.SUBMODULES (or import it in that package's __init__)")


@pytest.mark.parametrize("package", PACKAGES)
def test_dir_lists_every_module_of_a_fresh_package(fresh, package):
    """`mc.<TAB>` in a notebook completes every module, loaded or not."""
    children = {m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == package}
    assert children - set(fresh["dir"][package]) == set()


def test_all_lists_every_top_level_module(fresh):
    children = {m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == PACKAGE}
    assert children - set(fresh["all"][PACKAGE]) == set()
    assert [name for name in mc.__all__ if not hasattr(mc, name)] == []


def test_importing_the_package_loads_no_room(fresh):
    assert fresh["loaded"] == [], "`import mnist_course` loaded " + ", ".join(fresh["loaded"])


def test_the_probe_sees_a_name_dropped_from_submodules():
    dropped = probe('mc.SUBMODULES = tuple(n for n in mc.SUBMODULES if n != "photos")\n'
                    'import mnist_course.serving as s\ns.SUBMODULES = ("service",)')
    assert dropped["modules"][f"{PACKAGE}.photos"].startswith("AttributeError")
    assert dropped["modules"][f"{PACKAGE}.serving.export"].startswith("AttributeError")
    assert dropped["modules"][f"{PACKAGE}.serving.service"] == "ok"
    assert dropped["loaded"] == [f"{PACKAGE}.serving"]  # the prelude's own import, seen


def test_the_docstring_names_every_room_once():
    bullets = [line for line in mc.__doc__.splitlines() if line.startswith("- ")]
    for room in ROOMS:
        where = f"``{PACKAGE}`` itself" if room == "core" else f"``{PACKAGE}.{room}``"
        assert len([b for b in bullets if b.startswith(f"- {where}")]) == 1, f"no line '- {where} ...' for {room}"
    assert len(bullets) == len(ROOMS), bullets
