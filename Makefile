# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.speckle-lab-installed

.PHONY: setup demo test lint bench docs notebooks clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) bash scripts/setup_env.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/speckle-lab demo --out runs/demo

test: $(STAMP)
	bash scripts/install_xvfb.sh || echo "warning: Xvfb could not be installed; display-window tests will skip"
	bash scripts/install_chromium.sh || echo "warning: chromium could not be installed; browser tests will skip (fail under CI)"
	$(MAKE) --no-print-directory lint
	$(PY) -c "from hardware.sim.kernels import compile_all; compile_all()"  # numba's cache, once
	$(PY) -m pytest

# The static checks make test runs first: ruff (C901 <= 12), the layer contracts, pyright (basic).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	PYTHONPATH=. $(VENV)/bin/lint-imports --no-cache
	bash scripts/install_node.sh || echo "warning: Node.js could not be installed; pyright needs it"
	$(VENV)/bin/pyright

bench: $(STAMP)
	$(PY) bench/run_all.py

# The Python API reference (HTML, from the docstrings) in docs/api/: open docs/api/index.html.
docs: $(STAMP)
	$(PY) -m pdoc speckle_lab.api speckle_lab.interactive speckle_core.runfile.selection speckle_core.errors -o docs/api

# Rewrites and re-executes examples/*.ipynb (make test executes them too, without writing).
notebooks: $(STAMP)
	$(PY) scripts/make_notebooks.py

clean:
	rm -rf $(VENV) runs .pytest_cache
