#!/usr/bin/env bash
# Creates the virtual environment (if missing) and installs speckle-lab into it.
# torch==2.13.0 (a local CPU wheel on the lab's build machines) is installed only when
# no torch is importable: a torch the user already has is never replaced or downgraded.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    echo "setup: no torch found, installing torch==2.13.0"
    "$py" -m pip install --quiet "torch==2.13.0"
else
    echo "setup: keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
fi
# pylablib-lightweight installs the same `pylablib` package as full pylablib (which pulls PyQt5,
# pyqtgraph and numba): a venv made before the switch drops the full one first, so the two never
# overwrite each other's files.
if "$py" -m pip show --quiet pylablib >/dev/null 2>&1; then
    echo "setup: replacing pylablib with pylablib-lightweight"
    "$py" -m pip uninstall --quiet --yes pylablib
    # pip leaves what only full pylablib asked for (PyQt5 ~200 MB, pyqtgraph, rpyc): drop each one
    # that no other installed package requires.
    leftovers=$("$py" "$(dirname "$0")/gui_leftovers.py")
    if [ -n "$leftovers" ]; then
        echo "setup: removing what only full pylablib needed: $leftovers"
        # shellcheck disable=SC2086  # one word per package
        "$py" -m pip uninstall --quiet --yes $leftovers
    fi
    if "$py" -m pip show --quiet pylablib-lightweight >/dev/null 2>&1; then  # its files went too
        "$py" -m pip install --quiet --force-reinstall --no-deps pylablib-lightweight
    fi
fi
"$py" -m pip install --quiet -e ".[test]"
echo "setup: done ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
