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


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("speckle_core/errors.py", "import speckle_lab.cli  # noqa", "Layers"),
    ("hardware/lut.py", "import acquisition.plan  # noqa", "Layers"),
    ("acquisition/inspect.py", "import reconstruction.metrics  # noqa", "Layers"),
    ("acquisition/plan.py", "import tests._fake_rig  # noqa", "never imports the tests"),
    ("acquisition/plan.py", "import hardware.sim.optics  # noqa", "simulated rig"),
    ("hardware/drivers/manual.py", "from hardware.sim import devices  # noqa", "simulated rig"),
    ("acquisition/engine.py", "import acquisition.acquire  # noqa", "one entry point"),
])
def test_an_injected_import_breaks_its_contract(tmp_path, module, line, contract):
    tree = copy_of_the_tree(tmp_path)
    inject(tree / module, line)
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout[-3000:]
