"""The example notebooks run, headless, as committed: a change that breaks an example fails CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_notebooks  # noqa: E402

NAMES = sorted(make_notebooks.NOTEBOOKS)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_the_cells_of_its_script(name):
    committed = nbformat.read(ROOT / "examples" / name, as_version=4)
    expected = make_notebooks.notebook(make_notebooks.NOTEBOOKS[name])
    assert [c.source for c in committed.cells] == [c.source for c in expected.cells]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_without_error(name, tmp_path):
    for f in (ROOT / "examples").glob("*.toml"):
        shutil.copy(f, tmp_path / f.name)
    nb = nbformat.read(ROOT / "examples" / name, as_version=4)
    make_notebooks.execute(nb, tmp_path, timeout_s=120)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors


def test_api_reference_builds(tmp_path):
    out = tmp_path / "api"
    subprocess.run([sys.executable, "-m", "pdoc", "speckle_lab.api", "speckle_lab.interactive",
                    "speckle_core.runfile.selection", "-o", str(out)], check=True, capture_output=True)
    page = (out / "speckle_lab" / "api.html").read_text()
    for name in ("open_rig", "plan", "acquire", "open_run", "train", "evaluate", "predict", "RunStopped"):
        assert f'id="{name}"' in page, name
