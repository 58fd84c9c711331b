"""The import contracts of pyproject.toml (docs/design.md, "Layers") hold, and fail when broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def copy_of_the_tree(tmp_path: Path) -> Path:
    """The packages' Python files and pyproject.toml, in a temporary folder."""
    for package in CONFIG["root_packages"]:
        if (ROOT / package).is_dir():
            shutil.copytree(ROOT / package, tmp_path / package,
                            ignore=shutil.ignore_patterns("__pycache__", "static", "*.toml", "*.png"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def inject(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


INJECTED = [  # (module, an import it must not make, the contract that forbids it)
    ("speckle_core/errors.py", "import speckle_lab.cli  # noqa", "Layers"),
    ("hardware/lut.py", "import acquisition.plan  # noqa", "Layers"),
    ("acquisition/inspect.py", "import reconstruction.metrics  # noqa", "Layers"),
    ("acquisition/plan.py", "import tests._fake_rig  # noqa", "never imports the tests"),
    ("hardware/drivers/manual.py", "from hardware.sim import devices  # noqa", "simulated rig"),
    ("acquisition/engine.py", "import acquisition.acquire  # noqa", "one entry point"),
]


def test_injected_imports_break_their_contracts(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    for module, line, _ in INJECTED:
        inject(tree / module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    for module, line, contract in INJECTED:
        importer = module.removesuffix(".py").replace("/", ".")
        words = line.split()
        imported = words[1] if words[0] == "import" else f"{words[1]}.{words[3]}"
        assert contract in broken and importer in broken and imported in broken, (module, broken[-3000:])
