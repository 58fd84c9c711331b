"""No module imports a private name (``_name``) from another package (docs/design.md, "Layers").

A package's private names are its own: another package that needs one gets a public name instead.
Checked by parsing every module's imports (``from pkg.mod import _name``, ``import pkg._mod``,
``from . import _name``) and attribute reads through an imported project module (``mod._name``).
Within one package (the folder holding the module) private names are fair game. The test
harness's helper modules (``tests/_*.py``: fakes, tiny runs) are shared with ``scripts/`` and
``bench/`` on purpose; their underscore keeps pytest from collecting them, so importing such a
module is allowed, but not a private name inside it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
FOLDERS = [*PACKAGES, "scripts", "bench"]  # tests is among the packages
HARNESS = "tests"  # its private modules are shared helpers, see above


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def is_package(dotted: str) -> bool:
    return (ROOT / dotted.replace(".", "/")).is_dir()


def is_module(dotted: str) -> bool:
    return is_package(dotted) or (ROOT / dotted.replace(".", "/")).with_suffix(".py").is_file()


def package_of(dotted: str) -> str:
    """The package a project module belongs to: itself if it is a package folder, else its parent."""
    return dotted if is_package(dotted) else dotted.rpartition(".")[0]


def home_of(path: Path) -> str:
    """The dotted package holding a file under ROOT."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def is_project(dotted: str) -> bool:
    return dotted.split(".")[0] in FOLDERS


def resolve(node: ast.ImportFrom, home: str) -> str:
    if not node.level:
        return node.module or ""
    base = home.split(".")[: len(home.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_module(dotted: str) -> bool:
    """A project module path with a private part, outside the test harness's helpers."""
    return dotted.split(".")[0] != HARNESS and any(is_private(p) for p in dotted.split("."))


def attribute_path(node: ast.expr) -> list[str]:
    """``a.b.c`` as ["a", "b", "c"]; [] for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else []


def import_violations(node: ast.Import | ast.ImportFrom, home: str) -> list[str]:
    found = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if is_project(alias.name) and private_module(alias.name) and package_of(alias.name) != home:
                found.append(f"{node.lineno}: import {alias.name}")
        return found
    target = resolve(node, home)
    for alias in node.names if is_project(target) else ():
        full = f"{target}.{alias.name}"
        owner = full if is_package(full) else package_of(target)
        if owner != home and (private_module(target) or is_private(alias.name)):
            found.append(f"{node.lineno}: from {target} import {alias.name}")
    return found


def violations_in(source: str, home: str) -> list[str]:
    """Each use of another package's private name in one module's source, as 'line: what'."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: dict[str, str] = {}  # a name bound by `import x.y [as z]` -> the project module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found += import_violations(node, home)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_project(alias.name):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
            continue
        path = attribute_path(node.value)
        if not path or path[0] not in aliases:
            continue
        module = ".".join([aliases[path[0]], *path[1:]])
        if is_module(module) and package_of(module) != home:
            found.append(f"{node.lineno}: {module}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_from_another_package():
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            home = home_of(path)
            found += [f"{path.relative_to(ROOT)}:{v}" for v in violations_in(path.read_text(), home)]
    assert not found, "private names imported across packages:\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_private_import():
    source = ("from hardware.rig import _open_camera\n"
              "import acquisition._hidden\n"
              "import reconstruction.data as data\n"
              "data._cache_key()\n")
    assert [v.split(":")[0] for v in violations_in(source, "speckle_lab")] == ["1", "2", "4"]


def test_the_check_allows_private_names_inside_their_own_package():
    source = "from hardware.rig import _open_camera\nfrom . import _helpers\nimport os\nos._exit(0)\n"
    assert violations_in(source, "hardware") == []
